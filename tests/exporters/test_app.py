"""The exporter app over HTTP: events in, metrics out, hostile input refused, still serving."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from exporter_helpers import JSON_HEADERS, RUN_FINISHED
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)

from exporters.app import create_app
from exporters.config import ExporterConfig
from exporters.registry import PipelineRegistry
from exporters.testing import sample_value

EVENT = RUN_FINISHED


@pytest.fixture
async def client(aiohttp_client: Any, registry: PipelineRegistry) -> TestClient:
    config = ExporterConfig(max_body_bytes=64 * 1024, probe_dependencies=False)
    return await aiohttp_client(create_app(registry, config=config))


async def metrics(client: TestClient) -> str:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return await resp.text()


async def test_one_event_and_a_list_show_up(client: TestClient) -> None:
    resp = await client.post("/events", json=EVENT)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"accepted": 1}
    resp = await client.post(
        "/events",
        json=[
            {"pipeline": "etl_orders", "event": "heartbeat", "memory_bytes": 5e8},
            {"pipeline": "etl_users", "event": "data_updated", "timestamp": 1700000000},
        ],
    )
    assert (await resp.json()) == {"accepted": 2}
    body = await metrics(client)
    assert sample_value(body, "pipeline_records_failed_total", pipeline="etl_orders") == 730
    assert sample_value(body, "pipeline_runs_total", pipeline="etl_orders", status="failure") == 1
    assert (
        sample_value(
            body,
            "pipeline_errors_total",
            pipeline="etl_orders",
            category="connectivity",
            reason="timeout",
        )
        == 1
    )
    assert sample_value(body, "pipeline_last_run_duration_seconds", pipeline="etl_orders") == 812.5
    assert sample_value(body, "pipeline_memory_usage_bytes", pipeline="etl_orders") == 5e8
    assert sample_value(body, "pipeline_up", pipeline="etl_orders") == 1
    assert (
        sample_value(body, "pipeline_last_update_timestamp_seconds", pipeline="etl_users")
        == 1700000000
    )
    assert sample_value(body, "pipemedic_exporter_events_accepted_total") == 3


async def test_a_rejected_batch_applies_nothing(client: TestClient) -> None:
    batch = [EVENT, EVENT, EVENT, {**EVENT, "records_failed": -1}]
    resp = await client.post("/events", json=batch)
    assert resp.status == 400
    doc = await resp.json()
    assert doc["path"] == "$[3].records_failed"
    assert "$[3].records_failed" in doc["error"]
    body = await metrics(client)
    assert (
        sample_value(body, "pipeline_runs_total", pipeline="etl_orders", status="failure") is None
    )
    assert sample_value(body, "pipemedic_exporter_events_rejected_total", reason="schema") == 1


HOSTILE: list[tuple[str, bytes, int, str]] = [
    (
        "wrong type",
        json.dumps({**EVENT, "records_processed": "many"}).encode(),
        400,
        "$.records_processed",
    ),
    ("unknown event", b'{"pipeline": "x", "event": "exploded"}', 400, "$.event"),
    ("missing pipeline", b'{"event": "heartbeat"}', 400, "$.pipeline"),
    (
        "negative count",
        json.dumps({**EVENT, "records_failed": -5}).encode(),
        400,
        "$.records_failed",
    ),
    ("NaN", b'{"pipeline": "x", "event": "heartbeat", "memory_bytes": NaN}', 400, "$"),
    ("invalid UTF-8", b'{"pipeline": "x\xc3\x28", "event": "heartbeat"}', 400, "$"),
    (
        "quote in label",
        json.dumps({"pipeline": 'a"b', "event": "heartbeat"}).encode(),
        400,
        "$.pipeline",
    ),
    (
        "newline in label",
        json.dumps({"pipeline": "a\nb", "event": "heartbeat"}).encode(),
        400,
        "$.pipeline",
    ),
    (
        "unicode in label",
        json.dumps({"pipeline": "zürich", "event": "heartbeat"}, ensure_ascii=False).encode(),
        400,
        "$.pipeline",
    ),
    ("not JSON", b"pipeline=x", 400, "$"),
    ("empty body", b"", 400, "$"),
]


@pytest.mark.parametrize(("what", "body", "status", "path"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_hostile_input_gets_a_clear_4xx_and_the_exporter_keeps_serving(
    client: TestClient, what: str, body: bytes, status: int, path: str
) -> None:
    resp = await client.post("/events", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == status, what
    doc = await resp.json()
    assert doc["path"] == path, doc
    assert doc["error"] and doc["errors"]
    good = await client.post("/events", json={"pipeline": "ok", "event": "heartbeat"})
    assert good.status == 200
    text = await metrics(client)
    assert sample_value(text, "pipeline_up", pipeline="ok") == 1
    assert (
        sum(
            sample_value(text, "pipemedic_exporter_events_rejected_total", reason=r) or 0
            for r in ("schema", "invalid_json", "encoding")
        )
        == 1
    )


async def test_ten_megabyte_body_is_413(client: TestClient) -> None:
    big = b"[" + b" " * (10 * 1024 * 1024) + b"]"
    resp = await client.post("/events", data=big, headers=JSON_HEADERS)
    assert resp.status == 413
    assert (await resp.json())["reason"] == "too_large"

    async def chunks() -> Any:
        for _ in range(160):
            yield b" " * 65536

    # no Content-Length: chunked
    resp = await client.post("/events", data=chunks(), headers=JSON_HEADERS)
    assert resp.status == 413
    assert (await client.get("/-/healthy")).status == 200
    text = await metrics(client)
    assert sample_value(text, "pipemedic_exporter_events_rejected_total", reason="too_large") == 2


async def test_cardinality_bound_refuses_and_counts(aiohttp_client: Any) -> None:
    registry = PipelineRegistry(max_pipelines=2)
    client = await aiohttp_client(
        create_app(registry, config=ExporterConfig(probe_dependencies=False))
    )
    for name in ("a", "b"):
        assert (
            await client.post("/events", json={"pipeline": name, "event": "heartbeat"})
        ).status == 200
    resp = await client.post(
        "/events",
        json=[{"pipeline": "a", "event": "heartbeat"}, {"pipeline": "c", "event": "heartbeat"}],
    )
    assert resp.status == 422
    doc = await resp.json()
    assert doc["path"] == "$[1].pipeline" and "maximum of 2" in doc["error"]
    text = await metrics(client)
    assert sample_value(text, "pipeline_up", pipeline="c") is None
    assert sample_value(text, "pipemedic_exporter_events_rejected_total", reason="cardinality") == 1
    assert sample_value(text, "pipemedic_exporter_pipelines") == 2


async def test_openmetrics_and_gzip(client: TestClient) -> None:
    await client.post("/events", json=EVENT)
    resp = await client.get(
        "/metrics",
        headers={
            "Accept": "application/openmetrics-text; version=1.0.0",
            "Accept-Encoding": "gzip",
        },
    )
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    assert resp.headers["Content-Encoding"] == "gzip"
    text = await resp.text()  # aiohttp decompresses
    families = {f.name for f in parse_openmetrics(text)}
    assert "pipeline_runs" in families
    raw = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert gzip.decompress(await raw.read()).startswith(b"# HELP pipeline_up")


async def test_scrape_duration_is_counted(client: TestClient) -> None:
    await metrics(client)
    text = await metrics(client)
    assert sample_value(text, "pipemedic_exporter_scrape_duration_seconds_count") >= 1
