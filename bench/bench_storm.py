"""Benchmark an alert storm: how fast incidents are opened and diagnosed after intake.

A warehouse outage fails N pipelines at once (issue 21): a real Prometheus
scrapes a small endpoint holding every pipeline's series (errors of reason
``timeout`` growing, the ``warehouse`` dependency probe down, liveness), and
N notifications, one alert each, are posted to a real ``pipemedic receiver``
process (SQLite, 32 connections). Measured in the same run:

* intake: first request to the last 200;
* digestion: the last 200 to every incident opened (the ``pipemedic_incidents_open``
  gauge) and diagnosed (time-to-diagnose count) in the receiver's ``/metrics``;
* the ratio digestion / intake (goal <= 2x) and, at 1,000, the time to all
  diagnosed from the first request (goal <= 5 s);
* the receiver's CPU time in each phase, and after the last diagnosis until it
  is idle (the post-mortem drafts put off during the burst);
* the receiver's RSS after each phase, and once its periodic sweep (every 30 s,
  which recounts the open incidents) has run;
* a stricter baseline: the same notifications posted to an intake-only receiver
  (``workers: 0``), and the first request to all diagnosed against that time
  (the worker digests while notifications arrive, which slows intake itself).

Then a sustained load: 200 notifications/s across 1,000 pipelines for 60 s
(new alerts joining the incidents), and the backlog left when it ends (time
until the queue depth reaches 0; goal < 1 s).

Run: ``.venv/bin/python -m bench bench_storm`` (about 3 minutes). Environment:
``BENCH_STORM_SIZES`` (default ``1000,10000``), ``BENCH_STORM_SUSTAINED_SECONDS``
(60), ``BENCH_STORM_WORKERS`` (receiver ``workers.concurrency``, default 8).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench._load import Receiver
from pipemedic.stack import PrometheusServer, free_port

SIZES = [int(n) for n in os.environ.get("BENCH_STORM_SIZES", "1000,10000").split(",")]
SUSTAINED_SECONDS = float(os.environ.get("BENCH_STORM_SUSTAINED_SECONDS", "60"))
WORKERS = int(os.environ.get("BENCH_STORM_WORKERS", "8"))
CONNECTIONS = 32
SCRAPE = "2s"


class Series:
    """The pipelines' exporter stand-in: one /metrics page for ``count`` pipelines.

    Errors grow with time, so ``increase()`` finds them; the warehouse probe is
    down for every pipeline: the outage.
    """

    def __init__(self, count: int) -> None:
        self.port = free_port()
        self.count = count
        self.started = time.time()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def page(self) -> bytes:
        errors = int((time.time() - self.started) * 3) + 1
        out = [
            "# TYPE pipeline_errors_total counter",
            *(
                f'pipeline_errors_total{{pipeline="storm_{i}",category="connectivity",'
                f'reason="timeout"}} {errors}'
                for i in range(self.count)
            ),
            "# TYPE pipeline_dependency_up gauge",
            *(
                f'pipeline_dependency_up{{pipeline="storm_{i}",dependency="warehouse"}} 0'
                for i in range(self.count)
            ),
            "# TYPE pipeline_up gauge",
            *(f'pipeline_up{{pipeline="storm_{i}"}} 1' for i in range(self.count)),
        ]
        return ("\n".join(out) + "\n").encode()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=self.page(), content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> Series:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


class StormReceiver(Receiver):
    """``pipemedic receiver`` on SQLite asking the storm's Prometheus; no actions configured.

    The same process as ``_load.Receiver`` (its ``argv``), with its own receiver.yml.
    """

    def __init__(self, folder: Path, prometheus_url: str, workers: int = WORKERS) -> None:
        super().__init__(folder, store=f"sqlite:///{folder / 'receiver.db'}", workers=workers)
        self.prometheus_url = prometheus_url

    def prepare(self) -> None:
        (self.workdir / "receiver.yml").write_text(
            f"store: sqlite:///{self.workdir / 'receiver.db'}\n"
            f"prometheus_url: {self.prometheus_url}\n"
            "queue: {max_depth: 10000000}\n"
            f"workers: {{concurrency: {self.workers}, poll_interval_seconds: 0.05}}\n"
        )

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the receiver process used so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(found[1]) / 1024 if found else float("nan")


def notification(pipeline: str, serial: int) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "version": "4",
        "groupKey": f'{{}}:{{pipeline="{pipeline}"}}#{serial}',
        "status": "firing",
        "receiver": "pipemedic",
        "groupLabels": {"pipeline": pipeline},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "PipelineHighErrorRate",
                    "pipeline": pipeline,
                    "category": "connectivity",
                    "severity": "critical",
                },
                "annotations": {"summary": "warehouse unreachable"},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": f"{pipeline}-{serial}",
            }
        ],
    }


def _sample_sum(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _counts(session: aiohttp.ClientSession, url: str) -> tuple[float, float, float]:
    """Return (incidents open, incidents diagnosed, queue depth) from the receiver's /metrics."""
    async with session.get(url + "/metrics") as resp:
        text = await resp.text()
    return (
        _sample_sum(text, "pipemedic_incidents_open"),  # escalated ones stay open
        _sample_sum(text, "pipemedic_incident_time_to_diagnose_seconds_count"),
        _sample_sum(text, "pipemedic_receiver_queue_depth"),
    )


async def _post_all(session: aiohttp.ClientSession, url: str, bodies: list[bytes]) -> None:
    queue = list(reversed(bodies))

    async def worker() -> None:
        while queue:
            body = queue.pop()
            async with session.post(
                url + "/alerts", data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"POST /alerts answered {resp.status}: {await resp.text()}")

    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))


async def _intake_alone(receiver: StormReceiver, size: int) -> tuple[float, float]:
    """Post the storm's notifications to an intake-only receiver: (seconds, its CPU seconds)."""
    bodies = [json.dumps(notification(f"storm_{i}", 0)).encode() for i in range(size)]
    async with aiohttp.ClientSession() as session:
        cpu0, started = receiver.cpu_seconds(), time.monotonic()
        await _post_all(session, receiver.url, bodies)
        return time.monotonic() - started, receiver.cpu_seconds() - cpu0


async def _storm(receiver: StormReceiver, size: int) -> dict[str, float]:
    bodies = [json.dumps(notification(f"storm_{i}", 0)).encode() for i in range(size)]
    async with aiohttp.ClientSession() as session:
        cpu0 = receiver.cpu_seconds()
        started = time.monotonic()
        await _post_all(session, receiver.url, bodies)
        acked = time.monotonic()
        cpu1 = receiver.cpu_seconds()
        opened_at = diagnosed_at = 0.0
        while True:
            opened, diagnosed, _depth = await _counts(session, receiver.url)
            now = time.monotonic()
            if opened >= size and not opened_at:
                opened_at = now
            if diagnosed >= size and not diagnosed_at:
                diagnosed_at = now
            if opened_at and diagnosed_at:
                break
            if now - acked > 600:
                raise RuntimeError(f"{size}: only {diagnosed:.0f} diagnosed after 600 s")
            await asyncio.sleep(0.05)
    cpu2 = receiver.cpu_seconds()
    # what was put off (the post-mortem drafts): until the receiver's CPU stays still
    last = cpu2
    while True:
        await asyncio.sleep(0.5)
        now_cpu = receiver.cpu_seconds()
        if now_cpu - last < 0.02:
            break
        last = now_cpu
    idle_at = time.monotonic() - 0.5
    return {
        "intake_cpu": cpu1 - cpu0,
        "digest_cpu": cpu2 - cpu1,
        "after_cpu": last - cpu2,
        "idle": idle_at - diagnosed_at,
        "intake": acked - started,
        "opened": opened_at - acked,
        "digest": diagnosed_at - acked,
        "total": diagnosed_at - started,
        "rss": receiver.rss_mb(),
    }


async def _sustained(receiver: StormReceiver, pipelines: int, rate: float) -> dict[str, float]:
    """Post ``rate`` notifications/s for SUSTAINED_SECONDS, each a new alert of one pipeline."""
    sent = 0
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        while (elapsed := time.monotonic() - started) < SUSTAINED_SECONDS:
            due = int(elapsed * rate)
            while sent < due:
                body = json.dumps(notification(f"storm_{sent % pipelines}", 1 + sent)).encode()
                task = asyncio.create_task(_post_all(session, receiver.url, [body]))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            await asyncio.sleep(0.01)
        if pending:
            await asyncio.gather(*pending)
        ended = time.monotonic()
        depth_at_end = (await _counts(session, receiver.url))[2]
        while (await _counts(session, receiver.url))[2] > 0:  # the receiver's queue depth
            if time.monotonic() - ended > 600:
                raise RuntimeError("the sustained load's backlog did not drain in 600 s")
            await asyncio.sleep(0.05)
        drained = time.monotonic()
    return {
        "sent": sent,
        "rate": sent / (ended - started),
        "depth_at_end": depth_at_end,
        "backlog": drained - ended,
        "rss": receiver.rss_mb(),
    }


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="pipemedic-bench-storm-"))
    try:
        for size in SIZES:
            with Series(size) as series:
                config = (
                    f"global: {{scrape_interval: {SCRAPE}, scrape_timeout: 1900ms}}\n"
                    "scrape_configs:\n"
                    f"  - job_name: storm\n    static_configs: [{{targets: "
                    f'["127.0.0.1:{series.port}"]}}]\n'
                )
                with PrometheusServer(config, workdir=workdir / f"prom-{size}") as prom:
                    time.sleep(5)  # two scrapes: increase() has its samples
                    # the stricter baseline: the same notifications taken in by a receiver
                    # that works on none of them (workers: 0), so intake has the CPU alone
                    alone_dir = workdir / f"intake-only-{size}"
                    with StormReceiver(alone_dir, prom.url, workers=0) as intake_only:
                        alone, alone_cpu = asyncio.run(_intake_alone(intake_only, size))
                    with StormReceiver(workdir / f"receiver-{size}", prom.url) as receiver:
                        started = time.monotonic()
                        rss0 = receiver.rss_mb()
                        got = asyncio.run(_storm(receiver, size))
                        time.sleep(max(0.0, started + 32 - time.monotonic()))
                        swept = receiver.rss_mb()  # the periodic sweep has recounted
                        print(
                            f"storm {size:6d} pipelines (1 notification each, {WORKERS} workers): "
                            f"intake {got['intake']:.2f} s; after the last 200: all opened "
                            f"{got['opened']:.2f} s, all diagnosed {got['digest']:.2f} s = "
                            f"{got['digest'] / got['intake']:.2f}x of intake (goal <= 2x); "
                            f"first request to all diagnosed {got['total']:.2f} s; receiver CPU "
                            f"{got['intake_cpu']:.2f} s intake, "
                            f"{got['digest_cpu']:.2f} s digestion "
                            f"({got['digest_cpu'] / max(got['intake_cpu'], 0.01):.2f}x); "
                            f"RSS {rss0:.0f} -> {got['rss']:.0f} MB; then drafts etc. "
                            f"{got['after_cpu']:.2f} s CPU, idle {got['idle']:.1f} s after the "
                            f"last diagnosis; RSS after the 30 s sweep {swept:.0f} MB; "
                            f"intake alone (workers: 0) {alone:.2f} s, CPU {alone_cpu:.2f} s: "
                            f"first request to all diagnosed = {got['total'] / alone:.2f}x of it "
                            f"(CPU {(got['intake_cpu'] + got['digest_cpu']) / alone_cpu:.2f}x)",
                            flush=True,
                        )
                        if size == 1000:
                            load = asyncio.run(_sustained(receiver, 1000, 200.0))
                            print(
                                f"sustained {load['sent']:.0f} notifications at "
                                f"{load['rate']:.0f}/s across 1000 pipelines for "
                                f"{SUSTAINED_SECONDS:.0f} s: queue depth at the end "
                                f"{load['depth_at_end']:.0f}, drained in {load['backlog']:.2f} s "
                                f"(goal < 1 s); RSS {load['rss']:.0f} MB",
                                flush=True,
                            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
