"""Evidence for diagnosis and recovery tests: an exporter, a real Prometheus scraping it.

``EvidenceExporter`` serves the pipeline series under their real names (the
metric vocabulary of DESIGN.md) from a prometheus_client registry through a
small aiohttp app in a background thread, so one module-scoped Prometheus can
scrape it for a whole test module. A pipeline marked broken gets errors of
its reason every 0.2 s until fixed, the way a failing pipeline does.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from pipemedic.stack import PrometheusServer, free_port
from receiver.prometheus import PrometheusAPI

SCRAPE = "500ms"


class EvidenceExporter:
    """Pipeline metrics on 127.0.0.1:<port>/metrics, changed by the test as it goes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.up = Gauge("pipeline_up", "alive", ["pipeline"], registry=r)
        self.errors = Counter(
            "pipeline_errors", "errors", ["pipeline", "category", "reason"], registry=r
        )
        self.dependency = Gauge(
            "pipeline_dependency_up", "probe", ["pipeline", "dependency"], registry=r
        )
        self.memory = Gauge("pipeline_memory_usage_bytes", "rss", ["pipeline"], registry=r)
        self.memory_limit = Gauge("pipeline_memory_limit_bytes", "limit", ["pipeline"], registry=r)
        self.disk_free = Gauge("pipeline_disk_free_bytes", "disk", ["pipeline"], registry=r)
        self.cpu = Gauge("pipeline_cpu_usage_ratio", "cpu", ["pipeline"], registry=r)
        self.last_update = Gauge(
            "pipeline_last_update_timestamp_seconds", "fresh", ["pipeline"], registry=r
        )
        self.checkpoint = Gauge(
            "pipeline_checkpoint_timestamp_seconds", "checkpoint", ["pipeline"], registry=r
        )
        self.processed = Counter("pipeline_records_processed", "read", ["pipeline"], registry=r)
        self.failed = Counter("pipeline_records_failed", "failed", ["pipeline"], registry=r)
        self.port = free_port()
        self._broken: dict[str, tuple[str, str, Callable[[], bool]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # the failing pipeline -----------------------------------------------------
    def healthy(self, pipeline: str) -> None:
        """Declare a live pipeline with comfortable resources and fresh data."""
        now = time.time()
        self.up.labels(pipeline).set(1)
        self.memory.labels(pipeline).set(200e6)
        self.memory_limit.labels(pipeline).set(1e9)
        self.disk_free.labels(pipeline).set(50e9)
        self.cpu.labels(pipeline).set(0.2)
        self.last_update.labels(pipeline).set(now - 60)
        self.checkpoint.labels(pipeline).set(now - 600)
        self.processed.labels(pipeline).inc(0)
        self.failed.labels(pipeline).inc(0)

    def break_(
        self, pipeline: str, category: str, reason: str, until: Callable[[], bool] = lambda: False
    ) -> None:
        """Make errors of ``reason`` grow until ``fix`` (or until ``until()`` is true)."""
        self.errors.labels(pipeline, category, reason).inc(0)
        with self._lock:
            self._broken[pipeline] = (category, reason, until)

    def fix(self, pipeline: str) -> None:
        with self._lock:
            self._broken.pop(pipeline, None)

    def _tick(self) -> None:
        with self._lock:
            for pipeline, (category, reason, until) in list(self._broken.items()):
                if until():
                    del self._broken[pipeline]
                    continue
                self.errors.labels(pipeline, category, reason).inc(3)
                self.processed.labels(pipeline).inc(10)
                self.failed.labels(pipeline).inc(3)

    # serving ------------------------------------------------------------------
    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.registry), content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        try:
            while not self._stop.is_set():
                self._tick()
                await asyncio.sleep(0.2)
        finally:
            await runner.cleanup()

    def start(self) -> EvidenceExporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def prometheus_config(*targets: str) -> str:
    listed = ", ".join(f'"{t}"' for t in targets)
    return (
        f"global: {{scrape_interval: {SCRAPE}, scrape_timeout: 400ms, "
        "evaluation_interval: 500ms}\n"
        "scrape_configs:\n"
        f"  - job_name: pipelines\n    static_configs: [{{targets: [{listed}]}}]\n"
    )


def evidence_stack(workdir: Path) -> Iterator[tuple[EvidenceExporter, PrometheusServer]]:
    """Start the exporter and a Prometheus scraping it; stop both afterwards."""
    exporter = EvidenceExporter().start()
    server = PrometheusServer(prometheus_config(exporter.address), workdir=workdir)
    try:
        server.start()
        yield exporter, server
    finally:
        server.stop()
        exporter.stop()


async def wait_for(
    prom: PrometheusAPI,
    promql: str,
    ok: Callable[[list[dict[str, Any]]], bool] = bool,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Poll a query until ``ok(rows)``; fail with the last answer after ``timeout``."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = await prom.query(promql)
        if ok(rows):
            return rows
        await asyncio.sleep(0.25)
    raise AssertionError(f"{promql} never satisfied within {timeout}s; last answer {rows}")
