"""PipelineDown and PipelineDataStale read their deciding evidence from a real Prometheus.

Two real exporters are scraped: the first holds the pipelines under test;
the second is stopped mid-module so its pipeline is seen through a target
that is down. Each test feeds events the way a pipeline does and checks the
cause, the handler, and the evidence the cause was decided on.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import aiohttp
import pytest
from recovery_evidence import EvidenceExporter, prometheus_config, wait_for

from pipemedic.stack import PrometheusServer, free_port
from pipemedic.vocabulary import CAUSE_NAMES, cause
from receiver.diagnosis import diagnose, queries
from receiver.diagnosis.prometheus import PrometheusAPI
from receiver.models import Alert, Diagnosis
from receiver.recovery.verify import Verifier
from rules.promql import binop, number

pytestmark = pytest.mark.slow

SPEC = """
pipelines:
  k_stopped: {heartbeat_timeout: 1s}
  k_oom: {heartbeat_timeout: 1s}
  k_dep:
    heartbeat_timeout: 1s
    dependencies:
      - {name: warehouse, tcp: "127.0.0.1:%d", interval: 1s, timeout: 1s}
  k_hung: {sla: 10s, max_staleness: 30s}
  k_idle: {sla: 10s, max_staleness: 30s}
  k_failed: {sla: 10s, max_staleness: 30s}
  k_fresh: {sla: 10s, max_staleness: 30s}
  k_fed: {sla: 10s, max_staleness: 30s, upstream: [k_source]}
  k_source: {max_staleness: 30s}
"""


class Stack:
    def __init__(self, main: EvidenceExporter, lost: EvidenceExporter, prom: PrometheusServer):
        self.main, self.lost, self.prom = main, lost, prom


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    main = EvidenceExporter(lambda port: SPEC % free_port()).start()
    lost = EvidenceExporter().start()
    server = PrometheusServer(
        prometheus_config(main.address, lost.address),
        workdir=tmp_path_factory.mktemp("down-stale"),
    )
    try:
        server.start()
        yield Stack(main, lost, server)
    finally:
        server.stop()
        main.stop()
        lost.stop()


@pytest.fixture
async def prom(stack: Stack) -> AsyncIterator[PrometheusAPI]:
    async with aiohttp.ClientSession() as session:
        yield PrometheusAPI(stack.prom.url, session)


def alert(pipeline: str, name: str, category: str) -> Alert:
    return Alert(
        status="firing",
        labels={"alertname": name, "pipeline": pipeline, "category": category},
        annotations={},
        starts_at=datetime.now(UTC),
        ends_at=None,
        fingerprint="f" + pipeline,
        generator_url="",
    )


async def run(stack: Stack, a: Alert, prom: PrometheusAPI) -> Diagnosis:
    d = await diagnose(a, stack.main.spec.pipeline(a.pipeline), prom)
    assert d.cause in CAUSE_NAMES and d.error is None, d
    return d


def seen(d: Diagnosis, metric: str) -> float:
    """Return the first value of the evidence query that reads ``metric``."""
    for e in d.evidence:
        if metric in e.query and e.result and e.result[0]["value"] is not None:
            return float(e.result[0]["value"])
    raise AssertionError(f"no evidence reads {metric}: {[e.query for e in d.evidence]}")


async def gone_down(prom: PrometheusAPI, pipeline: str) -> None:
    await wait_for(prom, binop(queries.pipeline_up(pipeline), "==", number(0)))


# PipelineDown -----------------------------------------------------------------


async def test_a_heartbeat_that_stopped_with_nothing_else_wrong_is_process_stopped(
    stack: Stack, prom: PrometheusAPI
) -> None:
    stack.main.healthy("k_stopped")
    stack.main.send(
        {
            "pipeline": "k_stopped",
            "event": "run_finished",
            "status": "success",
            "duration_seconds": 3,
        }
    )
    await gone_down(prom, "k_stopped")
    d = await run(stack, alert("k_stopped", "PipelineDown", "connectivity"), prom)
    assert (d.cause, d.handler) == ("process_stopped", "check_infrastructure")
    assert seen(d, "pipeline_up") == 0
    assert seen(d, "pipeline_last_heartbeat_timestamp_seconds") > 1  # the timeout
    assert seen(d, "pipeline_memory_usage_bytes") == pytest.approx(0.2)
    assert "no heartbeat" in d.summary and "its last run succeeded" in d.summary
    assert seen(d, "pipeline_last_run_end_timestamp_seconds") >= 1
    row = cause(d.cause)
    assert row is not None and row.category == "resources" and row.strategy == "retry_with_backoff"


async def test_memory_at_its_limit_before_the_heartbeat_stopped_is_memory_limit(
    stack: Stack, prom: PrometheusAPI
) -> None:
    stack.main.healthy("k_oom")
    stack.main.resources("k_oom", memory_bytes=0.97e9)
    await wait_for(prom, binop(queries.memory_ratio("k_oom"), ">", number(0.9)))
    await gone_down(prom, "k_oom")
    d = await run(stack, alert("k_oom", "PipelineDown", "connectivity"), prom)
    assert (d.cause, d.handler) == ("memory_limit", "check_infrastructure")
    peak = [e for e in d.evidence if "max_over_time(" in e.query]
    assert float(peak[0].result[0]["value"]) == pytest.approx(0.97)
    assert "before the pipeline went down" in d.summary


async def test_a_down_pipeline_whose_dependency_is_down_is_dependency_down(
    stack: Stack, prom: PrometheusAPI
) -> None:
    stack.main.healthy("k_dep")
    await wait_for(prom, binop(queries.dependency_up("k_dep"), "==", number(0)))
    await gone_down(prom, "k_dep")
    d = await run(stack, alert("k_dep", "PipelineDown", "connectivity"), prom)
    assert (d.cause, d.handler) == ("dependency_down", "check_infrastructure")
    assert "warehouse" in d.summary


async def test_a_pipeline_behind_a_target_that_is_down_is_exporter_down(
    stack: Stack, prom: PrometheusAPI
) -> None:
    stack.lost.healthy("k_lost")
    await wait_for(prom, queries.pipeline_up("k_lost"))
    stack.lost.stop()
    await wait_for(prom, f'up{{instance="{stack.lost.address}"}} == 0')
    d = await run(stack, alert("k_lost", "PipelineDown", "connectivity"), prom)
    assert (d.cause, d.handler) == ("exporter_down", "check_infrastructure")
    assert stack.lost.address in d.summary
    targets = [e for e in d.evidence if e.query.startswith("up and on (job, instance)")]
    assert targets[0].result[0]["value"] == "0"
    # PipelineExporterDown names the scrape job as its pipeline: same cause, same evidence
    job = await run(stack, alert("pipelines", "PipelineExporterDown", "connectivity"), prom)
    assert job.cause == "exporter_down" and stack.lost.address in job.summary
    assert stack.main.address not in job.summary  # the target that is up is not blamed
    row = cause(d.cause)
    assert (
        row is not None and row.strategy is None and "no action can be verified" in row.escalation
    )


# PipelineDataStale ------------------------------------------------------------


async def test_a_run_started_longer_ago_than_its_sla_and_never_finished_is_run_hung(
    stack: Stack, prom: PrometheusAPI
) -> None:
    now = time.time()
    stack.main.send(
        {"pipeline": "k_hung", "event": "heartbeat"},
        {"pipeline": "k_hung", "event": "data_updated", "timestamp": now - 60},
        {"pipeline": "k_hung", "event": "run_started", "timestamp": now - 30},
    )
    await wait_for(prom, queries.run_start_age("k_hung"))
    d = await run(stack, alert("k_hung", "PipelineDataStale", "data"), prom)
    assert (d.cause, d.handler) == ("run_hung", "check_data_integrity")
    assert seen(d, "pipeline_last_run_start_timestamp_seconds") == pytest.approx(30, abs=5)
    assert seen(d, "pipeline_last_update_timestamp_seconds") == pytest.approx(60, abs=5)
    assert "has not finished" in d.summary


async def test_no_run_started_since_the_last_refresh_is_not_scheduled(
    stack: Stack, prom: PrometheusAPI
) -> None:
    now = time.time()
    stack.main.send(
        {"pipeline": "k_idle", "event": "heartbeat"},
        {"pipeline": "k_idle", "event": "run_started", "timestamp": now - 70},
        {
            "pipeline": "k_idle",
            "event": "run_finished",
            "status": "success",
            "duration_seconds": 9,
            "timestamp": now - 61,
        },
        {"pipeline": "k_idle", "event": "data_updated", "timestamp": now - 60},
    )
    await wait_for(prom, queries.run_end_age("k_idle"))
    d = await run(stack, alert("k_idle", "PipelineDataStale", "data"), prom)
    assert (d.cause, d.handler) == ("not_scheduled", "check_data_integrity")
    assert seen(d, "pipeline_last_success_timestamp_seconds") == pytest.approx(61, abs=5)
    assert "no run started since" in d.summary


async def test_stale_data_after_failed_runs_is_the_cause_of_their_errors(
    stack: Stack, prom: PrometheusAPI
) -> None:
    stack.main.send(
        {"pipeline": "k_failed", "event": "heartbeat"},
        {"pipeline": "k_failed", "event": "data_updated", "timestamp": time.time() - 60},
    )
    await wait_for(prom, queries.staleness("k_failed"))
    stack.main.break_("k_failed", "connectivity", "timeout")
    try:
        await wait_for(prom, queries.errors_by_reason("k_failed", "15m"))
        d = await run(stack, alert("k_failed", "PipelineDataStale", "data"), prom)
    finally:
        stack.main.fix("k_failed")
    assert (d.cause, d.handler) == ("network_timeout", "check_data_integrity")
    assert d.summary.startswith("the last run failed; dominant error reason 'timeout'")


async def test_an_upstream_whose_output_is_stale_too_is_upstream_stale(
    stack: Stack, prom: PrometheusAPI
) -> None:
    now = time.time()
    stack.main.send(
        {"pipeline": "k_source", "event": "data_updated", "timestamp": now - 120},
        {"pipeline": "k_fed", "event": "heartbeat"},
        {"pipeline": "k_fed", "event": "data_updated", "timestamp": now - 60},
        {"pipeline": "k_fed", "event": "run_started", "timestamp": now - 55},
        {
            "pipeline": "k_fed",
            "event": "run_finished",
            "status": "success",
            "duration_seconds": 5,
            "timestamp": now - 50,
        },
    )
    await wait_for(prom, queries.upstreams("k_fed"))
    await wait_for(prom, queries.staleness("k_source"))
    d = await run(stack, alert("k_fed", "PipelineDataStale", "data"), prom)
    assert (d.cause, d.handler) == ("upstream_stale", "check_data_integrity")
    assert re.search(r"k_source \(1[23]\ds\)", d.summary), d.summary  # ~120 s, over 30s
    upstream = [e for e in d.evidence if "pipeline_upstream_info" in e.query]
    assert upstream[0].result[0]["labels"] == {"upstream": "k_source"}
    row = cause(d.cause)
    assert row is not None and row.strategy is None and "upstream" in row.escalation


async def test_fresh_data_is_not_explained_as_stale(stack: Stack, prom: PrometheusAPI) -> None:
    stack.main.send(
        {"pipeline": "k_fresh", "event": "heartbeat"},
        {"pipeline": "k_fresh", "event": "data_updated"},
        {"pipeline": "k_fresh", "event": "run_started", "timestamp": time.time() - 60},
    )
    await wait_for(prom, queries.run_start_age("k_fresh"))
    d = await run(stack, alert("k_fresh", "PipelineDataStale", "data"), prom)
    assert d.cause == "unknown"  # a started run is not hung while the data is fresh
    assert not any("run_start" in e.query for e in d.evidence)


async def test_a_missed_run_is_verified_by_a_run_starting(
    stack: Stack, prom: PrometheusAPI
) -> None:
    verifier = Verifier(
        prom,
        deadline_seconds=0,
        interval_seconds=0,
        window_seconds=30,
        clock=lambda: datetime.now(UTC),
        sleep=asyncio.sleep,
    )
    stack.main.send({"pipeline": "k_missed", "event": "heartbeat"})
    await wait_for(prom, queries.pipeline_up("k_missed"))
    before = await verifier.verify("not_scheduled", "k_missed")
    assert not before.cleared and "no run started within the verify window" in before.detail
    stack.main.send({"pipeline": "k_missed", "event": "run_started"})
    await wait_for(prom, queries.run_start_age("k_missed"))
    after = await verifier.verify("not_scheduled", "k_missed")
    assert after.cleared, after.detail
