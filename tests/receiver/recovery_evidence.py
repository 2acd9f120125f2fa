"""Evidence for diagnosis and recovery tests: the real exporter, a real Prometheus scraping it.

``EvidenceExporter`` runs the project's exporter (``exporters.create_app``)
in a background thread with its own event loop, so one module-scoped
Prometheus can scrape it for a whole test module, and feeds it the way a
pipeline does: JSON events over ``POST /events``. A pipeline marked broken
sends errors of its reason every 0.2 s until fixed. Dependency probes are
the exporter's own, from the spec given at start.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from exporters import create_app
from pipemedic.stack import PrometheusServer, free_port
from receiver.diagnosis.prometheus import PrometheusAPI
from rules.promql import Expr
from rules.spec import parse_spec

SCRAPE = "500ms"


class EvidenceExporter:
    """The real exporter on 127.0.0.1:<port>, fed events as the test goes."""

    def __init__(self, spec_yaml: Callable[[int], str] = lambda port: "{}") -> None:
        self.port = free_port()
        self.spec = parse_spec(spec_yaml(self.port))
        self._broken: dict[str, tuple[str, str, Callable[[], bool]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # what the pipeline reports ------------------------------------------------
    def send(self, *events: dict[str, Any]) -> None:
        """POST events to the exporter (from any thread); a refused event fails the test."""
        assert self._loop is not None
        future: Future[None] = asyncio.run_coroutine_threadsafe(
            self._post(list(events)), self._loop
        )
        future.result(10)

    async def _post(self, events: list[dict[str, Any]]) -> None:
        assert self._session is not None
        url = f"http://{self.address}/events"
        async with self._session.post(url, json=events) as resp:
            if resp.status != 200:
                raise AssertionError(f"exporter refused {events}: {await resp.text()}")

    def healthy(self, pipeline: str) -> None:
        """Declare a live pipeline with comfortable resources and fresh data."""
        now = time.time()
        self.send(
            {
                "pipeline": pipeline,
                "event": "heartbeat",
                "memory_bytes": 200e6,
                "memory_limit_bytes": 1e9,
                "disk_free_bytes": 50e9,
                "cpu_usage_ratio": 0.2,
            },
            {"pipeline": pipeline, "event": "data_updated", "timestamp": now - 60},
            {"pipeline": pipeline, "event": "checkpoint", "timestamp": now - 600},
        )

    def resources(self, pipeline: str, **values: float) -> None:
        """Report resource gauges with a heartbeat (memory_bytes, disk_free_bytes, ...)."""
        self.send({"pipeline": pipeline, "event": "heartbeat", **values})

    def break_(
        self, pipeline: str, category: str, reason: str, until: Callable[[], bool] = lambda: False
    ) -> None:
        """Make errors of ``reason`` grow until ``fix`` (or until ``until()`` is true)."""
        with self._lock:
            self._broken[pipeline] = (category, reason, until)

    def fix(self, pipeline: str) -> None:
        with self._lock:
            self._broken.pop(pipeline, None)

    def _failing(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        with self._lock:
            for pipeline, (category, reason, until) in list(self._broken.items()):
                if until():
                    del self._broken[pipeline]
                    continue
                events += [
                    {
                        "pipeline": pipeline,
                        "event": "error",
                        "category": category,
                        "reason": reason,
                        "count": 3,
                    },
                    {
                        "pipeline": pipeline,
                        "event": "run_finished",
                        "status": "failure",
                        "duration_seconds": 1.0,
                        "records_processed": 10,
                        "records_failed": 3,
                    },
                ]
        return events

    # serving ------------------------------------------------------------------
    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        runner = web.AppRunner(create_app(spec=self.spec))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        async with aiohttp.ClientSession() as session:
            self._session = session
            self._ready.set()
            try:
                while not self._stop.is_set():
                    events = self._failing()
                    if events:
                        await self._post(events)
                    await asyncio.sleep(0.2)
            finally:
                await runner.cleanup()

    def start(self) -> EvidenceExporter:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the evidence exporter did not start")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def prometheus_config(
    *targets: str, rule_files: str | None = None, alertmanager: str | None = None
) -> str:
    """Scrape ``targets`` every 500ms; evaluate ``rule_files`` (a glob), alert ``alertmanager``."""
    listed = ", ".join(f'"{t}"' for t in targets)
    rules = f"rule_files: ['{rule_files}']\n" if rule_files else ""
    alerting = (
        f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['{alertmanager}']}}]}}]}}\n"
        if alertmanager
        else ""
    )
    return (
        f"global: {{scrape_interval: {SCRAPE}, scrape_timeout: 400ms, "
        "evaluation_interval: 500ms}\n" + rules + alerting + "scrape_configs:\n"
        f"  - job_name: pipelines\n    static_configs: [{{targets: [{listed}]}}]\n"
    )


def evidence_stack(
    workdir: Path, spec_yaml: Callable[[int], str] = lambda port: "{}"
) -> Iterator[tuple[EvidenceExporter, PrometheusServer]]:
    """Start the exporter and a Prometheus scraping it; stop both afterwards."""
    exporter = EvidenceExporter(spec_yaml).start()
    server = PrometheusServer(prometheus_config(exporter.address), workdir=workdir)
    try:
        server.start()
        yield exporter, server
    finally:
        server.stop()
        exporter.stop()


async def wait_for(
    prom: PrometheusAPI,
    promql: str | Expr,
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
