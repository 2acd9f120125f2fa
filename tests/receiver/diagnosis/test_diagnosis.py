"""Diagnosis against a real Prometheus scraping pipeline evidence."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from recovery_evidence import EvidenceExporter, evidence_stack, wait_for

from pipemedic.stack import PrometheusServer, free_port
from pipemedic.vocabulary import CAUSE_NAMES
from receiver.diagnosis import HANDLERS, diagnose, handler_for, queries
from receiver.diagnosis.batching import BatchedQueries
from receiver.diagnosis.prometheus import PrometheusAPI
from receiver.models import Alert, Diagnosis
from rules.spec import load_spec

SPEC = load_spec(None)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EvidenceExporter, PrometheusServer]]:
    yield from evidence_stack(tmp_path_factory.mktemp("diagnosis"), _spec)


def _spec(port: int) -> str:
    """d_dep depends on an API that answers (the exporter itself) and a closed port."""
    return f"""
pipelines:
  d_dep:
    dependencies:
      - {{name: orders_api, http: "http://127.0.0.1:{port}/-/healthy", interval: 1s}}
      - {{name: warehouse, tcp: "127.0.0.1:{free_port()}", interval: 1s, timeout: 1s}}
"""


@pytest.fixture
def exporter(stack: tuple[EvidenceExporter, PrometheusServer]) -> EvidenceExporter:
    return stack[0]


@pytest.fixture
async def prom(stack: tuple[EvidenceExporter, PrometheusServer]) -> AsyncIterator[PrometheusAPI]:
    async with aiohttp.ClientSession() as session:
        yield PrometheusAPI(stack[1].url, session)


def alert(pipeline: str, category: str = "", name: str = "PipelineHighErrorRate") -> Alert:
    labels = {"alertname": name, "pipeline": pipeline, "severity": "critical"}
    if category:
        labels["category"] = category
    return Alert(
        status="firing",
        labels=labels,
        annotations={"summary": "x"},
        starts_at=datetime.now(UTC),
        ends_at=None,
        fingerprint="f" + pipeline,
        generator_url="http://evil.example/graph",
    )


async def broken(
    exporter: EvidenceExporter, prom: PrometheusAPI, pipeline: str, category: str, reason: str
) -> None:
    exporter.healthy(pipeline)
    exporter.break_(pipeline, category, reason)
    await wait_for(prom, queries.errors_by_reason(pipeline, "15m"))


async def run(a: Alert, prom: PrometheusAPI) -> Diagnosis:
    d = await diagnose(a, SPEC.pipeline(a.pipeline), prom)
    assert d.cause in CAUSE_NAMES
    return d


def test_every_category_has_one_handler_and_alert_names_fall_back() -> None:
    assert set(HANDLERS) == {"connectivity", "data", "resources", "logic"}
    assert handler_for(alert("p", "resources")) is HANDLERS["resources"]
    assert handler_for(alert("p", name="PipelineDependencyDown")) is HANDLERS["connectivity"]
    assert handler_for(alert("p", name="PipelineDataStale")) is HANDLERS["data"]
    assert handler_for(alert("p", "no-such-category", "NoSuchAlert")) is None


@pytest.mark.parametrize(
    ("pipeline", "category", "reason", "cause", "handler"),
    [
        ("d_timeout", "connectivity", "timeout", "network_timeout", "check_infrastructure"),
        ("d_ratelimit", "connectivity", "rate_limited", "rate_limited", "check_infrastructure"),
        ("d_corrupt", "data", "corrupt_record", "data_corruption", "check_data_integrity"),
        ("d_schema", "data", "schema_change", "schema_change", "check_data_integrity"),
        ("d_volume", "data", "volume_exceeded", "volume_exceeded", "check_data_integrity"),
        ("d_bug", "logic", "bug", "logic_error", "check_logic"),
        ("d_config", "logic", "config", "config_error", "check_logic"),
        ("d_oom", "resources", "out_of_memory", "memory_limit", "check_resource_usage"),
    ],
)
async def test_error_reasons_lead_to_their_cause_with_evidence(
    exporter: EvidenceExporter,
    prom: PrometheusAPI,
    pipeline: str,
    category: str,
    reason: str,
    cause: str,
    handler: str,
) -> None:
    await broken(exporter, prom, pipeline, category, reason)
    d = await run(alert(pipeline, category), prom)
    assert (d.cause, d.handler, d.error) == (cause, handler, None)
    assert reason in d.summary
    errors = [e for e in d.evidence if "pipeline_errors_total" in e.query]
    assert errors, d.evidence
    assert errors[0].result[0]["labels"]["reason"] == reason
    assert float(errors[0].result[0]["value"]) > 0
    assert f'pipeline="{pipeline}"' in errors[0].query


async def test_data_evidence_includes_staleness_checkpoint_age_and_failed_ratio(
    exporter: EvidenceExporter, prom: PrometheusAPI
) -> None:
    await broken(exporter, prom, "d_data_ev", "data", "corrupt_record")
    d = await run(alert("d_data_ev", "data"), prom)
    by_metric = {
        m: e
        for e in d.evidence
        for m in (
            "pipeline_checkpoint_timestamp_seconds",
            "pipeline_last_update_timestamp_seconds",
            "pipeline_records_failed_total",
        )
        if m in e.query
    }
    assert len(by_metric) == 3, d.evidence
    age = float(by_metric["pipeline_checkpoint_timestamp_seconds"].result[0]["value"])
    assert 500 < age < 1200
    assert float(by_metric["pipeline_records_failed_total"].result[0]["value"]) == pytest.approx(
        0.3, abs=0.05
    )


async def test_a_dependency_probe_down_is_dependency_down(
    exporter: EvidenceExporter, prom: PrometheusAPI
) -> None:
    exporter.healthy("d_dep")
    await wait_for(prom, queries.dependency_up("d_dep"), lambda rows: len(rows) == 2)
    d = await run(alert("d_dep", name="PipelineDependencyDown"), prom)
    assert (d.cause, d.handler) == ("dependency_down", "check_infrastructure")
    assert "warehouse" in d.summary and "orders_api" not in d.summary


async def test_expired_credentials_win_over_a_failing_probe(
    exporter: EvidenceExporter, prom: PrometheusAPI
) -> None:
    await broken(exporter, prom, "d_auth", "connectivity", "auth_expired")
    d = await run(alert("d_auth", "connectivity"), prom)
    assert d.cause == "credential_expired"


@pytest.mark.parametrize(
    ("gauge", "value", "cause"),
    [
        ("memory_bytes", 0.95e9, "memory_limit"),
        ("disk_free_bytes", 100e6, "disk_full"),
        ("cpu_usage_ratio", 0.97, "cpu_saturation"),
    ],
)
async def test_resource_gauges_over_their_limit(
    exporter: EvidenceExporter, prom: PrometheusAPI, gauge: str, value: float, cause: str
) -> None:
    pipeline = f"d_res_{gauge}"
    exporter.healthy(pipeline)
    exporter.resources(pipeline, **{gauge: value})
    query = {
        "memory_bytes": f"{queries.memory_ratio(pipeline)} > 0.9",
        "disk_free_bytes": f"{queries.disk_free(pipeline)} < 1e9",
        "cpu_usage_ratio": f"{queries.cpu_ratio(pipeline)} > 0.9",
    }[gauge]
    await wait_for(prom, query)
    d = await run(alert(pipeline, "resources", "PipelineSLAViolation"), prom)
    assert (d.cause, d.handler) == (cause, "check_resource_usage")
    notes = {e.note for e in d.evidence}
    assert {"memory usage / memory limit", "free disk bytes", "CPU usage ratio (0..1)"} <= notes


async def test_healthy_resources_are_not_a_cause(
    exporter: EvidenceExporter, prom: PrometheusAPI
) -> None:
    exporter.healthy("d_fine")
    await wait_for(prom, queries.cpu_ratio("d_fine"))
    d = await run(alert("d_fine", "resources"), prom)
    assert d.cause == "unknown"
    assert d.error is None
    assert d.evidence, "an unknown cause still shows what was looked at"


async def test_inconclusive_handler_falls_back_to_the_dominant_reason(
    exporter: EvidenceExporter, prom: PrometheusAPI
) -> None:
    await broken(exporter, prom, "d_fallback", "resources", "disk_full")
    d = await run(alert("d_fallback", "data"), prom)
    assert (d.cause, d.handler) == ("disk_full", "dominant_error_reason")
    assert "check_data_integrity found nothing conclusive" in d.summary


async def test_an_alert_without_category_or_known_name_uses_the_dominant_reason(
    exporter: EvidenceExporter, prom: PrometheusAPI
) -> None:
    await broken(exporter, prom, "d_nocat", "connectivity", "timeout")
    d = await run(alert("d_nocat", name="CustomAlert"), prom)
    assert (d.cause, d.handler) == ("network_timeout", "dominant_error_reason")


async def test_unreachable_prometheus_is_unknown_with_the_error_never_a_guess() -> None:
    port = free_port()
    async with aiohttp.ClientSession() as session:
        prom = PrometheusAPI(f"http://127.0.0.1:{port}", session, timeout=2)
        d = await diagnose(alert("d_x", "connectivity"), SPEC.pipeline("d_x"), prom)
    assert d.cause == "unknown"
    assert d.error is not None and f"127.0.0.1:{port}" in d.error
    assert "unreachable" in d.error


async def test_an_alert_without_pipeline_is_unknown(prom: PrometheusAPI) -> None:
    a = alert("", "data")
    d = await diagnose(a, SPEC.pipeline(""), prom)
    assert d.cause == "unknown" and d.error and "pipeline" in d.error
    assert d.evidence == ()


def _seen(d: Diagnosis) -> tuple[Any, ...]:
    """What a diagnosis concluded and looked at; numbers masked (counters grow between asks)."""
    digits = re.compile(r"\d+(\.\d+)?")
    evidence = [(e.query, e.note, [r["labels"] for r in e.result]) for e in d.evidence]
    return d.cause, d.handler, d.error, digits.sub("N", d.summary), evidence


async def test_a_batch_of_mixed_pipelines_gets_the_diagnoses_each_gets_alone(
    exporter: EvidenceExporter, prom: PrometheusAPI
) -> None:
    """Diagnosed together (one query per question) or one at a time: the same diagnoses.

    ``batch.timeout`` has no series of its own: were its name not escaped in the
    shared ``pipeline=~`` matcher, it would match ``batch_timeout``'s.
    """
    await broken(exporter, prom, "batch_timeout", "connectivity", "timeout")
    await broken(exporter, prom, "batch_corrupt", "data", "corrupt_record")
    exporter.healthy("batch_mem")
    exporter.resources("batch_mem", memory_bytes=0.95e9)
    exporter.healthy("batch_fine")
    await wait_for(prom, f"{queries.memory_ratio('batch_mem')} > 0.9")
    await wait_for(prom, queries.cpu_ratio("batch_fine"))
    alerts = [
        alert("batch_timeout", "connectivity"),
        alert("batch_corrupt", "data"),
        alert("batch_mem", "resources", "PipelineSLAViolation"),
        alert("batch_fine", "resources"),
        alert("batch.timeout", "connectivity"),
        alert("batch_mem", "data"),  # the same pipeline twice: both get its rows
    ]
    alone = BatchedQueries(prom)
    singles = [await diagnose(a, SPEC.pipeline(a.pipeline), alone) for a in alerts]
    together = BatchedQueries(prom)
    batch = await asyncio.gather(
        *(diagnose(a, SPEC.pipeline(a.pipeline), together) for a in alerts)
    )
    assert [_seen(d) for d in batch] == [_seen(d) for d in singles]
    assert [d.cause for d in batch] == [
        "network_timeout",
        "data_corruption",
        "memory_limit",
        "unknown",
        "unknown",
        "unknown",  # its data evidence is fine
    ]
    assert together.sent < alone.sent  # a question several pipelines ask goes out once


async def test_a_batch_whose_shared_query_fails_is_unknown_for_every_pipeline() -> None:
    port = free_port()
    async with aiohttp.ClientSession() as session:
        batched = BatchedQueries(PrometheusAPI(f"http://127.0.0.1:{port}", session, timeout=2))
        found = await asyncio.gather(
            *(diagnose(alert(p, "connectivity"), SPEC.pipeline(p), batched) for p in ("a", "b"))
        )
    assert [d.cause for d in found] == ["unknown", "unknown"]
    assert all(d.error and f"127.0.0.1:{port}" in d.error for d in found)
    assert batched.sent == 1
