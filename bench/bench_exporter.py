"""Benchmark the exporter against plain baselines measured in the same run.

(a) ``/metrics`` exposition for 10,000 pipelines with every metric populated,
    against prometheus_client instrumented metrics holding the same series
    (``generate_latest``). Two cases: steady state (1% of pipelines change
    between scrapes, the realistic case) and cold (every pipeline changed).
    Goal: <= 0.7x the baseline's time.
(b) ``POST /events`` requests/s with wrk against a bare aiohttp app that
    parses the JSON body (``await request.json()``) and answers JSON. Goal:
    >= 0.8x. Also reported against a stricter bare app that parses with
    ``msgspec.json.decode`` (untyped), the ceiling for a msgspec decoder.

Run: ``.venv/bin/python -m bench bench_exporter``
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from bench._load import BareApp, post_lua, require_wrk, wrk_with_cpu
from exporters import changes
from exporters.changes import Change
from exporters.registry import PipelineRegistry
from exporters.render import Exposition
from exporters.state import DependencyResult, PipelineState
from pipemedic.stack import ManagedServer
from pipemedic.vocabulary.metrics import DURATION_BUCKETS

PIPELINES = 10_000
CHANGED_PER_SCRAPE = PIPELINES // 100
ROUNDS = 7
NOW = 1_800_000_000.0
EVENT = (
    '{"pipeline": "etl_orders", "event": "run_finished", "status": "failure", '
    '"duration_seconds": 812.5, "records_processed": 10000, "records_failed": 730, '
    '"category": "connectivity", "reason": "timeout", "timestamp": 1795245097.8}'
)


# -- (a) exposition --------------------------------------------------------
class Baseline:
    """The same series as prometheus_client instrumented metrics."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = ["pipeline"]
        self.up = Gauge("pipeline_up", "up", p, registry=r)
        self.runs = Counter("pipeline_runs", "runs", [*p, "status"], registry=r)
        self.processed = Counter("pipeline_records_processed", "x", p, registry=r)
        self.failed = Counter("pipeline_records_failed", "x", p, registry=r)
        self.errors = Counter("pipeline_errors", "x", [*p, "category", "reason"], registry=r)
        self.duration = Histogram(
            "pipeline_run_duration_seconds", "x", p, buckets=DURATION_BUCKETS, registry=r
        )
        self.gauges = [
            Gauge(n, "x", p, registry=r)
            for n in (
                "pipeline_last_run_duration_seconds",
                "pipeline_last_success_timestamp_seconds",
                "pipeline_last_update_timestamp_seconds",
                "pipeline_checkpoint_timestamp_seconds",
                "pipeline_last_heartbeat_timestamp_seconds",
                "pipeline_last_run_start_timestamp_seconds",
                "pipeline_last_run_end_timestamp_seconds",
                "pipeline_memory_usage_bytes",
                "pipeline_memory_limit_bytes",
                "pipeline_disk_free_bytes",
                "pipeline_cpu_usage_ratio",
            )
        ]
        self.dep_up = Gauge("pipeline_dependency_up", "x", [*p, "dependency"], registry=r)
        self.dep_seconds = Gauge(
            "pipeline_dependency_probe_duration_seconds", "x", [*p, "dependency"], registry=r
        )

    def record(self, name: str, i: int) -> None:
        self.up.labels(name).set(1)
        self.runs.labels(name, "success").inc()
        self.runs.labels(name, "failure").inc()
        self.processed.labels(name).inc(1000 + i)
        self.failed.labels(name).inc(i % 7)
        self.errors.labels(name, "connectivity", "timeout").inc()
        self.duration.labels(name).observe(30.0 + i % 100)
        for g in self.gauges:
            g.labels(name).set(NOW - i)
        self.dep_up.labels(name, "api").set(1)
        self.dep_seconds.labels(name, "api").set(0.012)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _ours_record(name: str, i: int) -> list[Change]:
    def dep(s: PipelineState) -> None:
        s.dependencies["api"] = DependencyResult(True, 0.012, NOW)

    resources = {
        "memory_bytes": NOW - i,
        "memory_limit_bytes": NOW - i,
        "disk_free_bytes": NOW - i,
        "cpu_usage_ratio": 0.5,
    }
    return [
        changes.heartbeat(name, NOW, resources),
        changes.run_started(name, NOW - i - 60),
        changes.run_finished(
            name, NOW - i, success=True, duration=30.0 + i % 100, processed=1000 + i, failed=i % 7
        ),
        changes.run_finished(
            name, NOW - i, success=False, duration=None, category="connectivity", reason="timeout"
        ),
        changes.data_updated(name, NOW - i),
        changes.checkpoint(name, NOW - i),
        Change(name, dep),
    ]


def _series(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def _time(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


def bench_exposition() -> None:
    disable_created_metrics()  # pipemedic exports no *_created series; compare like with like
    names = [f"pipeline_{i:05d}" for i in range(PIPELINES)]
    base = Baseline()
    registry = PipelineRegistry(max_pipelines=PIPELINES, clock=lambda: NOW)
    exposition = Exposition(registry)
    for i, name in enumerate(names):
        base.record(name, i)
        registry.apply(_ours_record(name, i))
    b_body, o_body = base.render(), exposition.render()
    b_series = _series(b_body)
    o_series = _series(o_body)
    assert b_series == o_series, (b_series, o_series)
    print(
        f"series: prometheus_client {b_series}, pipemedic {o_series}; "
        f"bytes {len(b_body)} vs {len(o_body)}"
    )

    steady_b, steady_o, cold_b, cold_o = [], [], [], []
    for r in range(ROUNDS):
        changed = names[r * CHANGED_PER_SCRAPE : (r + 1) * CHANGED_PER_SCRAPE]
        for j, name in enumerate(changed):
            base.record(name, j)
            registry.apply(_ours_record(name, j))
        steady_b.append(_time(base.render))
        steady_o.append(_time(exposition.render))
        exposition._cache.clear()  # cold: every pipeline re-rendered
        cold_o.append(_time(exposition.render))
        cold_b.append(_time(base.render))
    for label, b, o in (("steady (1% changed)", steady_b, steady_o), ("cold", cold_b, cold_o)):
        mb, mo = statistics.median(b), statistics.median(o)
        print(
            f"(a) /metrics {label}: prometheus_client {mb * 1000:.1f} ms, "
            f"pipemedic {mo * 1000:.1f} ms, ratio {mo / mb:.3f}x (goal <= 0.7x)"
        )


# -- (b) POST /events --------------------------------------------------------
class ExporterApp(ManagedServer):
    """``create_app()`` of the exporter in its own process, dependency probes off."""

    CODE = """
import sys
from aiohttp import web
from exporters import ExporterConfig, create_app

app = create_app(config=ExporterConfig(probe_dependencies=False))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

    def argv(self) -> list[str]:
        return [sys.executable, "-c", self.CODE, str(self.port)]


def bench_events() -> None:
    require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(post_lua(EVENT))
        servers: dict[str, ManagedServer] = {
            "bare": BareApp(Path(tmp), path="/events", answer='{"accepted": 1}', parse="request"),
            "bare-msgspec": BareApp(
                Path(tmp), path="/events", answer='{"accepted": 1}', parse="msgspec"
            ),
            "pipemedic": ExporterApp(Path(tmp)),
        }
        with ExitStack() as stack:
            for server in servers.values():
                stack.enter_context(server)
            rps: dict[str, list[float]] = {name: [] for name in servers}
            cpu: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(4):  # interleaved, so drift hits both alike
                for name, server in servers.items():
                    r, c = wrk_with_cpu(server, "/events", script, 5)
                    rps[name].append(round(r))
                    cpu[name].append(round(c, 1))
    ours, co = statistics.median(rps["pipemedic"]), statistics.median(cpu["pipemedic"])
    for base, label in (("bare", "bare aiohttp json.loads"), ("bare-msgspec", "bare msgspec")):
        rb, cb = statistics.median(rps[base]), statistics.median(cpu[base])
        print(
            f"(b) POST /events vs {label}: {rb:.0f} req/s {rps[base]}, "
            f"pipemedic {ours:.0f} req/s {rps['pipemedic']}, ratio {ours / rb:.3f}x "
            f"(goal >= 0.8x vs json.loads)"
        )
        print(
            f"(b) server CPU per request vs {label}: {cb:.1f} us {cpu[base]}, pipemedic "
            f"{co:.1f} us {cpu['pipemedic']}; capacity ratio {cb / co:.3f}x "
            f"(less sensitive to other load)"
        )


def main() -> None:
    bench_exposition()
    bench_events()


if __name__ == "__main__":
    main()
