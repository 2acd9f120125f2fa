"""PipelineSLAViolation: a run over its SLA is explained against its recent runs.

One real Prometheus scrapes several real exporters; each exporter is one
host (its scrape ``instance``), so a test's slow runs are never another
test's neighbours. A real HTTP server with a delay the test sets is the
dependency whose probe slows down.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import pytest
from recovery_evidence import EvidenceExporter, prometheus_config, wait_for

from pipemedic.stack import PrometheusServer
from pipemedic.vocabulary import CAUSE_NAMES, cause
from receiver.diagnosis import diagnose, queries
from receiver.diagnosis.prometheus import PrometheusAPI
from receiver.models import Alert, Diagnosis
from receiver.recovery.strategies import STRATEGIES
from receiver.recovery.verify import Verifier
from rules.promql import binop, number, selector
from rules.spec import parse_spec

pytestmark = pytest.mark.slow

SPEC = """
pipelines:
  c1: {sla: 10s}
  c2: {sla: 10s}
  v1: {sla: 10s}
  s1: {sla: 10s}
  t1: {sla: 10s}
  m1: {sla: 10s, diagnosis: {memory_ratio: 0.5}}
  dep1:
    sla: 10s
    dependencies: [{name: orders_api, http: "http://127.0.0.1:%d/", interval: 1s, timeout: 5s}]
"""
HOSTS = ("contention", "volume", "slow", "tight", "memory", "dependency")


class SlowServer:
    """A real HTTP dependency that answers after ``delay`` seconds."""

    def __init__(self) -> None:
        self.delay = 0.0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                threading.Event().wait(owner.delay)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Stack:
    def __init__(
        self, hosts: dict[str, EvidenceExporter], dependency: SlowServer, prom: PrometheusServer
    ) -> None:
        self.hosts, self.dependency, self.prom = hosts, dependency, prom
        self.spec = parse_spec(SPEC % dependency.port)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    dependency = SlowServer()
    hosts = {
        h: EvidenceExporter(
            (lambda port: SPEC % dependency.port) if h == "dependency" else (lambda port: "{}")
        ).start()
        for h in HOSTS
    }
    server = PrometheusServer(
        prometheus_config(*(e.address for e in hosts.values())),
        workdir=tmp_path_factory.mktemp("slow-runs"),
    )
    try:
        server.start()
        yield Stack(hosts, dependency, server)
    finally:
        server.stop()
        for e in hosts.values():
            e.stop()
        dependency.stop()


@pytest.fixture
async def prom(stack: Stack) -> AsyncIterator[PrometheusAPI]:
    async with aiohttp.ClientSession() as session:
        yield PrometheusAPI(stack.prom.url, session)


def sla_alert(pipeline: str) -> Alert:
    return Alert(
        status="firing",
        labels={"alertname": "PipelineSLAViolation", "pipeline": pipeline, "category": "resources"},
        annotations={},
        starts_at=datetime.now(UTC),
        ends_at=None,
        fingerprint="f" + pipeline,
        generator_url="",
    )


async def diagnosed(stack: Stack, pipeline: str, prom: PrometheusAPI, window: str) -> Diagnosis:
    d = await diagnose(sla_alert(pipeline), stack.spec.pipeline(pipeline), prom, window=window)
    assert d.cause in CAUSE_NAMES and d.error is None, d
    assert d.handler == "check_resource_usage"
    return d


async def runs(
    host: EvidenceExporter, prom: PrometheusAPI, pipeline: str, *runs: tuple[float, int]
) -> None:
    """Report finished runs (duration, records) and wait until Prometheus has them."""
    before = await prom.query(f"sum({selector('pipeline_runs_total', pipeline=pipeline)})")
    count = float(before[0]["value"][1]) if before else 0.0
    host.send(
        *(
            {
                "pipeline": pipeline,
                "event": "run_finished",
                "status": "success",
                "duration_seconds": seconds,
                "records_processed": records,
            }
            for seconds, records in runs
        )
    )
    total = selector("pipeline_runs_total", pipeline=pipeline)
    await wait_for(prom, f"sum({total}) >= {count + len(runs)}")


async def fresh(host: EvidenceExporter, prom: PrometheusAPI, pipeline: str) -> None:
    """Declare a healthy pipeline and wait for its zero counters (increase counts from them)."""
    host.healthy(pipeline)
    await wait_for(prom, selector("pipeline_runs_total", pipeline=pipeline))


def evidence(d: Diagnosis, note_start: str) -> Any:
    found = [e for e in d.evidence if e.note.startswith(note_start)]
    assert found, [e.note for e in d.evidence]
    return found[0].result


async def test_several_pipelines_slow_at_once_on_one_host_is_resource_contention(
    stack: Stack, prom: PrometheusAPI
) -> None:
    host = stack.hosts["contention"]
    for p in ("c1", "c2"):
        await fresh(host, prom, p)
        await runs(host, prom, p, (5, 100), (5, 100), (5, 100))
    for p in ("c1", "c2"):
        await runs(host, prom, p, (40, 100))
    d = await diagnosed(stack, "c1", prom, "15m")
    assert d.cause == "resource_contention"
    assert f"2 pipelines slow at once on {host.address}: c1, c2" in d.summary
    ran = evidence(d, "pipelines on the same host with a run finished")
    assert {r["labels"]["pipeline"] for r in ran} == {"c1", "c2"}
    rows = evidence(d, "of those, last run >= 1.5x")
    assert {r["labels"]["pipeline"] for r in rows} == {"c1", "c2"}
    assert float(evidence(d, "duration of the last finished run")[0]["value"]) == 40
    row = cause(d.cause)
    assert row is not None and row.category == "resources"
    spec = stack.spec.pipeline("c1")
    assert spec.strategy_for(d.cause) == "scale_resources"
    assert STRATEGIES["scale_resources"].plan(d, spec).params == {"resource": "host"}
    # verified once no slow run has finished on the host within the verify window
    verifier = Verifier(
        prom,
        deadline_seconds=30,
        interval_seconds=0.5,
        window_seconds=8,
        clock=lambda: datetime.now(UTC),
        sleep=asyncio.sleep,
    )
    now = await verifier.verify("resource_contention", "c1", spec.diagnosis)
    assert now.cleared and now.checks > 1, now  # still slow at first, clear 8 s after


async def test_more_records_per_run_than_recent_runs_is_volume_exceeded(
    stack: Stack, prom: PrometheusAPI
) -> None:
    host = stack.hosts["volume"]
    await fresh(host, prom, "v1")
    await runs(host, prom, "v1", *[(5, 100)] * 4)
    await asyncio.sleep(5)  # the baseline runs leave the 4s "recent" window
    await runs(host, prom, "v1", (30, 2000))
    d = await diagnosed(stack, "v1", prom, "4s")
    assert d.cause == "volume_exceeded"
    recent = float(evidence(d, "records per run over 4s")[0]["value"])
    usual = float(evidence(d, "records per run over 1d")[0]["value"])
    assert recent == pytest.approx(2000, rel=0.01)
    assert usual == pytest.approx(480, rel=0.01)
    assert stack.spec.pipeline("v1").strategy_for(d.cause) == "scale_resources"


async def test_a_run_slower_than_its_recent_runs_with_nothing_to_blame_is_run_slow(
    stack: Stack, prom: PrometheusAPI
) -> None:
    host = stack.hosts["slow"]
    await fresh(host, prom, "s1")
    await runs(host, prom, "s1", *[(5, 100)] * 4, (40, 100))
    d = await diagnosed(stack, "s1", prom, "15m")
    assert d.cause == "run_slow"
    assert float(evidence(d, "mean run duration over 1d")[0]["value"]) == pytest.approx(12)
    assert "3.3x its mean of 12s" in d.summary
    assert stack.spec.pipeline("s1").strategy_for(d.cause) is None
    row = cause("run_slow")
    assert row is not None and "needs a person" in row.escalation


async def test_runs_as_long_as_usual_over_the_sla_is_sla_too_tight(
    stack: Stack, prom: PrometheusAPI
) -> None:
    host = stack.hosts["tight"]
    await fresh(host, prom, "t1")
    await runs(host, prom, "t1", *[(20, 100)] * 4)
    d = await diagnosed(stack, "t1", prom, "15m")
    assert d.cause == "sla_too_tight"
    assert "as long as usual (mean 20s over 1d)" in d.summary
    assert stack.spec.pipeline("t1").strategy_for(d.cause) is None


async def test_the_spec_sets_the_resource_thresholds(stack: Stack, prom: PrometheusAPI) -> None:
    host = stack.hosts["memory"]
    await fresh(host, prom, "m1")
    host.resources("m1", memory_bytes=0.6e9)
    await wait_for(prom, binop(queries.memory_ratio("m1"), ">", number(0.5)))
    d = await diagnosed(stack, "m1", prom, "15m")
    assert d.cause == "memory_limit"  # 60 % is over m1's diagnosis.memory_ratio of 0.5
    assert "(threshold 50%)" in d.summary
    assert stack.spec.pipeline("other").diagnosis.memory_ratio == 0.9


async def test_a_dependency_probe_slower_than_usual_is_dependency_slow(
    stack: Stack, prom: PrometheusAPI
) -> None:
    host = stack.hosts["dependency"]
    await fresh(host, prom, "dep1")
    probe = selector("pipeline_dependency_probe_duration_seconds", pipeline="dep1")
    await wait_for(prom, f"count_over_time({probe}[1m]) >= 12")  # a fast baseline
    stack.dependency.delay = 0.6
    try:
        await wait_for(prom, f"{probe} > 0.5")
        await runs(host, prom, "dep1", *[(20, 100)] * 3)
        d = await diagnosed(stack, "dep1", prom, "15m")
    finally:
        stack.dependency.delay = 0.0
    assert d.cause == "dependency_slow"
    assert "orders_api" in d.summary
    slowdown = evidence(d, "dependency probe duration / its mean")
    assert float(slowdown[0]["value"]) >= 1.5
    row = cause("dependency_slow")
    assert row is not None and row.strategy is None and row.escalation
