"""POST /api/v1/lineage and GET /lineage in-process: validation, bounds, retries, hostile events."""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from exporter_helpers import JSON_HEADERS, FakeClock
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)

from exporters.app import create_app
from exporters.config import ExporterConfig
from exporters.errors import CardinalityError
from exporters.keys import REGISTRY
from exporters.openlineage import LineageRecorder, decode_event, pipeline_name
from exporters.registry import PipelineRegistry
from exporters.testing import sample_value, samples
from rules.spec import parse_spec

LINEAGE = "/api/v1/lineage"
ROWS = {"outputStatistics": {"rowCount": 7}}
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PRODUCER = "https://example.test/producer"
SPEC = """
defaults:
  sla: 30m
  heartbeat_timeout: 5m
openlineage:
  run_ttl: 1h
  lineage_ttl: 2h
"""


def run_event(
    event_type: str = "START",
    *,
    run_id: str | None = None,
    job: str = "nightly",
    at: float = 1_799_999_000.0,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "eventType": event_type,
        "eventTime": _iso(at),
        "run": {"runId": run_id or str(uuid.uuid4())},
        "job": {"namespace": "tests", "name": job},
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
    }
    body.update(extra)
    return body


def _iso(at: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat()


def dataset(name: str, **facets: Any) -> dict[str, Any]:
    return {"namespace": "s3://lake", "name": name, **facets}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_app(clock: FakeClock, spec: str = SPEC, max_pipelines: int = 50, **config: Any) -> Any:
    registry = PipelineRegistry(parse_spec(spec, "t.yml"), clock=clock, max_pipelines=max_pipelines)
    return create_app(
        registry,
        config=ExporterConfig(probe_dependencies=False, max_pipelines=max_pipelines, **config),
    )


@pytest.fixture
async def client(aiohttp_client: Any, clock: FakeClock) -> TestClient:
    client: TestClient = await aiohttp_client(make_app(clock))
    return client


async def post(client: TestClient, body: Any, **headers: str) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await client.post(LINEAGE, data=data, headers={**JSON_HEADERS, **headers})
    return resp.status, await resp.json()


async def metrics(client: TestClient) -> str:
    return await (await client.get("/metrics")).text()


# -- what may post --------------------------------------------------------------
@pytest.mark.parametrize("path", ["/events", LINEAGE])
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
async def test_simple_request_content_types_are_415(
    client: TestClient, path: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps({"pipeline": "p", "event": "heartbeat"}).encode()
    resp = await client.post(path, data=body, headers=headers)
    assert resp.status == 415
    answer = await resp.json()
    assert answer["reason"] == "content_type" and answer["path"] == "Content-Type"
    assert "p" not in client.app[REGISTRY]
    text = await metrics(client)
    assert (
        sample_value(text, "pipemedic_exporter_events_rejected_total", reason="content_type") == 1
    )


@pytest.mark.parametrize("path", ["/events", LINEAGE])
async def test_bearer_token_when_configured(
    aiohttp_client: Any, clock: FakeClock, path: str
) -> None:
    client = await aiohttp_client(make_app(clock, bearer_token="tok"))
    body = {"pipeline": "p", "event": "heartbeat"} if path == "/events" else run_event(job="p")
    data = json.dumps(body).encode()
    for auth in (None, "Bearer nope", "Basic dG9rOg==", "Bearer tok"):
        headers = {**JSON_HEADERS, **({"Authorization": auth} if auth else {})}
        resp = await client.post(path, data=data, headers=headers)
        assert resp.status == (200 if auth == "Bearer tok" else 401), auth
        if resp.status == 401:
            assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert (
        sample_value(
            await metrics(client), "pipemedic_exporter_events_rejected_total", reason="unauthorized"
        )
        == 3
    )


# -- validation -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"run": {"runId": "not-a-uuid"}}, "$.run.runId"),
        ({"run": {"runId": "'; DROP TABLE runs; --"}}, "$.run.runId"),
        ({"eventTime": "yesterday"}, "$.eventTime"),
        ({"eventTime": "0001-01-01T00:00:00+01:00"}, "$.eventTime"),
        ({"eventType": "EXPLODED"}, "$.eventType"),
        ({"job": {"namespace": "tests"}}, "$.job"),
        ({"job": {"namespace": "tests", "name": ""}}, "$.job.name"),
        ({"job": {"namespace": "tests", "name": "x" * 1025}}, "$.job.name"),
        ({"producer": 7}, "$.producer"),
        ({"schemaURL": None}, "$.schemaURL"),
        (
            {"run": {"runId": str(uuid.uuid4()), "facets": {"parent": {"job": {}}}}},
            "$.run.facets.parent",
        ),
        (
            {
                "outputs": [
                    {
                        "namespace": "s3://x",
                        "name": "t",
                        "outputFacets": {"outputStatistics": {"rowCount": -1}},
                    }
                ]
            },
            "$.outputs[0].outputFacets.outputStatistics.rowCount",
        ),
        ({"outputs": [dataset("t")] * 1001}, "$.outputs"),
    ],
)
async def test_bad_core_fields_are_400_naming_the_path(
    client: TestClient, change: dict[str, Any], path: str
) -> None:
    body = run_event()
    body.update(change)
    status, answer = await post(client, body)
    assert status == 400, answer
    assert answer["path"].startswith(path), answer


async def test_missing_core_fields_and_kinds(client: TestClient) -> None:
    body = run_event()
    del body["eventTime"]
    status, answer = await post(client, body)
    assert (status, answer["path"]) == (400, "$")
    assert "eventTime" in answer["error"]
    no_job = run_event()
    del no_job["job"]
    status, answer = await post(client, no_job)
    assert (status, answer["path"]) == (400, "$.job")
    status, answer = await post(client, b"")
    assert (status, answer["reason"]) == (400, "invalid_json")
    status, answer = await post(client, b'{"eventTime": NaN}')
    assert (status, answer["reason"]) == (400, "invalid_json")
    inf = json.dumps(run_event(outputs=[dataset("t")])).replace('"t"}', '"t", "x": Infinity}')
    status, answer = await post(client, inf.encode())
    assert (status, answer["reason"]) == (400, "invalid_json")


async def test_unknown_facets_and_fields_are_accepted(client: TestClient) -> None:
    body = run_event(
        "COMPLETE",
        inputs=[dataset("in", facets={"vendorThing": {"_producer": "x", "deep": [[{"a": 1}]]}})],
        outputs=[dataset("out", outputFacets={"outputStatistics": {"rowCount": 5, "size": 9}})],
        someFutureField={"anything": True},
    )
    body["run"]["facets"] = {"nominalTime": {"nominalStartTime": "2024-01-01T00:00:00Z"}}
    body["job"]["facets"] = {"sql": {"query": "select 1"}}
    status, answer = await post(client, body)
    assert (status, answer) == (200, {"accepted": 1})


async def test_gzip_body_and_bombs(client: TestClient) -> None:
    body = gzip.compress(json.dumps(run_event(job="zipped")).encode())
    status, answer = await post(client, body, **{"Content-Encoding": "gzip"})
    assert (status, answer) == (200, {"accepted": 1})
    bomb = gzip.compress(b" " * (20 * 1024 * 1024))
    status, answer = await post(client, bomb, **{"Content-Encoding": "gzip"})
    assert (status, answer["reason"]) == (413, "too_large")
    assert (await client.get("/-/healthy")).status == 200


# -- hostile events ---------------------------------------------------------------
async def test_huge_facets_and_deep_nesting_are_bounded(client: TestClient) -> None:
    huge = run_event(outputs=[dataset("t", facets={"blob": {"x": "a" * 900_000}})])
    status, _ = await post(client, huge)
    assert status == 200  # under the 1 MiB body limit: accepted, the unknown facet unread
    over = run_event(outputs=[dataset("t", facets={"blob": {"x": "a" * 1_100_000}})])
    status, answer = await post(client, over)
    assert (status, answer["reason"]) == (413, "too_large")
    deep = json.dumps(run_event()).replace(
        '"producer"', '"x": ' + "[" * 200_000 + "]" * 200_000 + ', "producer"'
    )
    status, answer = await post(client, deep.encode())
    assert (status, answer["reason"]) == (400, "invalid_json")
    nested: dict[str, Any] = {"name": "leaf", "type": "int"}
    for i in range(20):
        nested = {"name": f"n{i}", "type": "struct", "fields": [nested]}
    body = run_event(outputs=[dataset("t", facets={"schema": {"fields": [nested]}})])
    status, answer = await post(client, body)
    assert status == 400
    assert answer["path"].startswith("$.outputs[0].facets.schema.fields[0].fields[0]")
    assert "deeper than 8" in answer["error"]
    assert (await client.get("/-/healthy")).status == 200


async def test_metacharacters_never_reach_labels_raw(client: TestClient) -> None:
    evil = 'a"} or vector(1) # \n{{ with query "up" }}\\'
    body = run_event(
        "COMPLETE",
        job=evil,
        outputs=[{"namespace": 'ns"\n', "name": '{job="x"} \\ ' + "é" * 300}],
    )
    status, _ = await post(client, body)
    assert status == 200
    text = await metrics(client)
    parsed = samples(text)  # the exposition still parses
    name = pipeline_name(evil)
    assert sample_value(text, "pipeline_runs_total", pipeline=name, status="success") == 1
    labels = [
        dict(lbls)
        for (metric, lbls) in parsed
        if metric == "pipeline_dataset_last_update_timestamp_seconds"
    ]
    assert len(labels) == 1
    shown = labels[0]["dataset"]
    assert len(shown) <= 256 and not set(shown) & set('"\\\n{} é')
    assert not set(labels[0]["pipeline"]) & set('"\\\n{} ')


def test_hundred_thousand_job_names_are_bounded(clock: FakeClock) -> None:
    registry = PipelineRegistry(parse_spec(SPEC, "t.yml"), clock=clock, max_pipelines=1000)
    recorder = LineageRecorder(registry, max_datasets=100, max_open_runs=5000)
    refused = 0
    for i in range(100_000):
        body = json.dumps(run_event("START", job=f"job_{i}", outputs=[dataset(f"t{i}")])).encode()
        try:
            recorder.record(decode_event(body))
        except CardinalityError:
            refused += 1
    assert len(registry) == 1000
    assert refused == 99_000
    assert len(recorder.runs) <= 5000
    assert len(recorder.graph) <= 100
    assert recorder.graph.refused == 1000 - 100


# -- the mapping ------------------------------------------------------------------
async def test_retries_change_nothing(client: TestClient, clock: FakeClock) -> None:
    run_id = str(uuid.uuid4())
    start = run_event("START", run_id=run_id, at=clock.now - 100)
    done = run_event(
        "COMPLETE",
        run_id=run_id,
        at=clock.now - 40,
        outputs=[dataset("t", outputFacets={"outputStatistics": {"rowCount": 10}})],
    )
    for body in (start, start, done, done, done):
        status, _ = await post(client, body)
        assert status == 200
    status, answer = await post(client, run_event("FAIL", run_id=run_id, at=clock.now))
    assert answer == {"accepted": 0, "duplicate": True}  # the run already ended
    text = await metrics(client)
    assert sample_value(text, "pipeline_runs_total", pipeline="nightly", status="success") == 1
    assert sample_value(text, "pipeline_runs_total", pipeline="nightly", status="failure") == 0
    assert sample_value(text, "pipeline_records_processed_total", pipeline="nightly") == 10
    assert sample_value(text, "pipeline_last_run_duration_seconds", pipeline="nightly") == 60
    assert sample_value(text, "pipeline_last_run_output_records", pipeline="nightly") == 10
    events = "pipemedic_exporter_lineage_events_total"
    assert sample_value(text, events, event_type="START", outcome="duplicate") == 1
    assert sample_value(text, events, event_type="COMPLETE", outcome="duplicate") == 2
    assert sample_value(text, events, event_type="FAIL", outcome="duplicate") == 1


async def test_openmetrics_exposition_parses_with_lineage_families(
    client: TestClient, clock: FakeClock
) -> None:
    await post(
        client,
        run_event("COMPLETE", at=clock.now, outputs=[dataset("t", outputFacets=ROWS)]),
    )
    await post(client, run_event("COMPLETE", job="reader", at=clock.now, inputs=[dataset("t")]))
    resp = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    families = {f.name: f for f in parse_openmetrics(await resp.text())}
    assert families["pipemedic_exporter_lineage_events"].type == "counter"
    assert families["pipeline_upstream_info"].samples[0].labels == {
        "pipeline": "reader",
        "upstream": "nightly",
    }
    assert families["pipeline_last_run_output_records"].samples[0].value == 7


async def test_a_start_never_ended_turns_pipeline_up_to_zero(
    client: TestClient, clock: FakeClock
) -> None:
    await post(client, run_event("START", at=clock.now))
    text = await metrics(client)
    started = sample_value(text, "pipeline_last_run_start_timestamp_seconds", pipeline="nightly")
    assert started == pytest.approx(clock.now)
    clock.advance(29 * 60)  # no heartbeat for 29 minutes: still within sla (30m) + 5m
    assert sample_value(await metrics(client), "pipeline_up", pipeline="nightly") == 1
    clock.advance(7 * 60)
    assert sample_value(await metrics(client), "pipeline_up", pipeline="nightly") == 0


async def test_run_memory_ttl_and_cap_are_metrics(aiohttp_client: Any, clock: FakeClock) -> None:
    client = await aiohttp_client(make_app(clock, max_open_runs=3))
    for i in range(5):
        await post(client, run_event("START", job=f"j{i}", at=clock.now))
    text = await metrics(client)
    assert sample_value(text, "pipemedic_exporter_lineage_open_runs") == 3
    assert sample_value(text, "pipemedic_exporter_lineage_max_open_runs") == 3
    assert sample_value(text, "pipemedic_exporter_lineage_run_ttl_seconds") == 3600
    assert sample_value(text, "pipemedic_exporter_lineage_runs_evicted_total", reason="cap") == 2
    clock.advance(3601)
    text = await metrics(client)
    assert sample_value(text, "pipemedic_exporter_lineage_open_runs") == 0
    assert sample_value(text, "pipemedic_exporter_lineage_runs_evicted_total", reason="ttl") == 3


async def test_max_datasets_and_learned_edges_expire(aiohttp_client: Any, clock: FakeClock) -> None:
    client = await aiohttp_client(make_app(clock, max_datasets=2))
    await post(client, run_event("COMPLETE", job="up", at=clock.now, outputs=[dataset("a")]))
    await post(
        client,
        run_event(
            "COMPLETE",
            job="down",
            at=clock.now,
            inputs=[dataset("a")],
            outputs=[dataset("b"), dataset("c")],
        ),
    )
    text = await metrics(client)
    assert sample_value(text, "pipeline_upstream_info", pipeline="down", upstream="up") == 1
    assert sample_value(text, "pipemedic_exporter_lineage_datasets") == 2
    assert sample_value(text, "pipemedic_exporter_lineage_datasets_refused_total") == 1
    assert sample_value(text, "pipeline_runs_total", pipeline="down", status="success") == 1
    clock.advance(2 * 3600 + 1)  # lineage_ttl: 2h
    text = await metrics(client)
    assert sample_value(text, "pipeline_upstream_info", pipeline="down", upstream="up") is None
    graph = await (await client.get("/lineage")).json()
    assert graph["edges"] == [] and graph["datasets"] == []
    assert {"up", "down"} <= set(graph["pipelines"])


async def test_failures_without_an_error_facet(client: TestClient, clock: FakeClock) -> None:
    root = str(uuid.uuid4())
    parent = {
        "parent": {"run": {"runId": root}, "job": {"namespace": "tests", "name": "dbt-run-shop"}}
    }
    await post(client, run_event("START", run_id=root, job="dbt-run-shop", at=clock.now - 50))
    model = run_event("FAIL", job="shop.orders", at=clock.now - 20)
    model["run"]["facets"] = parent
    await post(client, model)
    test = run_event(
        "FAIL",
        job="shop.orders.test",
        at=clock.now - 10,
        inputs=[
            dataset(
                "orders",
                inputFacets={
                    "dataQualityAssertions": {
                        "assertions": [
                            {"assertion": "not_null", "success": False, "actual": "4"},
                            {"assertion": "unique", "success": False, "actual": 2},
                            {"assertion": "accepted_values", "success": True},
                        ]
                    }
                },
            )
        ],
    )
    test["run"]["facets"] = parent
    await post(client, test)
    await post(client, run_event("FAIL", run_id=root, job="dbt-run-shop", at=clock.now))
    text = await metrics(client)
    p = "dbt-run-shop"
    assert sample_value(text, "pipeline_runs_total", pipeline=p, status="failure") == 1
    # the model's FAIL and the run's: the documented default, logic/bug
    assert (
        sample_value(text, "pipeline_errors_total", pipeline=p, category="logic", reason="bug") == 2
    )
    # the test's FAIL is its two failed assertions, with their 6 failing rows
    assert (
        sample_value(
            text, "pipeline_errors_total", pipeline=p, category="data", reason="failed_assertion"
        )
        == 2
    )
    assert sample_value(text, "pipeline_records_failed_total", pipeline=p) == 6
    assert sample_value(text, "pipeline_up", pipeline=p) is None  # the run ended


async def test_ended_runs_stay_idle(client: TestClient, clock: FakeClock) -> None:
    run_id = str(uuid.uuid4())
    await post(client, run_event("START", run_id=run_id, at=clock.now - 30))
    await post(client, run_event("COMPLETE", run_id=run_id, at=clock.now - 20))
    status, answer = await post(client, run_event("RUNNING", run_id=run_id, at=clock.now))
    assert status == 200
    assert answer == {"accepted": 0, "duplicate": True}  # a late heartbeat of an ended run
    # a producer that sends only task events (its DAG run never started here)
    task = run_event("COMPLETE", job="old_dag.task", at=clock.now - 5)
    task["run"]["facets"] = {
        "parent": {
            "run": {"runId": str(uuid.uuid4())},
            "job": {"namespace": "t", "name": "old_dag"},
        }
    }
    await post(client, task)
    clock.advance(3600)
    text = await metrics(client)
    assert sample_value(text, "pipeline_up", pipeline="nightly") is None
    assert sample_value(text, "pipeline_up", pipeline="old_dag") is None
    assert sample_value(text, "pipeline_runs_total", pipeline="old_dag", status="success") == 0
