"""Run the whole loop on loopback: pipelines, exporter, Prometheus, Alertmanager, receiver.

Order of a run (:func:`run_demo`):

1. write the run folder (``<output>/run``): the spec copy with demo timing
   and this run's ports (:mod:`pipemedic.demo.runspec`), the rules generated
   from it, and the servers' configurations (:mod:`pipemedic.demo.configs`);
2. start the simulated pipelines with the exporter (this process), the
   receiver (a real ``pipemedic receiver`` subprocess), Alertmanager and
   Prometheus;
3. wait until Prometheus has the healthy pipelines' rates, inject the
   scenario's faults, and report the receiver's incidents as they move;
4. when every fault's incident is resolved or escalated (or the deadline
   passed), print the summary, write it and the post-mortems to ``<output>``;
5. stop everything, or with ``keep_running`` print the URLs and wait for
   Ctrl-C (SIGINT) or SIGTERM first.

Returns 0 when every incident ended as the scenario expects.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from exporters import ExporterConfig, PipelineRegistry, create_app
from pipemedic.demo.closing import after_stop, while_running
from pipemedic.demo.configs import (
    DEFAULT_PORTS,
    Ports,
    alertmanager_config,
    prometheus_config,
    receiver_config,
    receiver_store_url,
)
from pipemedic.demo.notify import DemoPeople
from pipemedic.demo.progress import Progress, Reporter, Row, render_table, summarize
from pipemedic.demo.runspec import demo_spec_text, write_rules
from pipemedic.demo.scenario import SCENARIO, Fault
from pipemedic.demo.simulator import Simulator
from pipemedic.stack import LOOPBACK, AlertmanagerServer, ManagedServer, PrometheusServer
from receiver.models import utcnow
from rules.spec import load_spec

__all__ = ["REPO", "DemoError", "DemoOptions", "ReceiverServer", "run_demo"]

# The repository (or source tree) the package runs from: the default deployment's files.
REPO = Path(__file__).resolve().parents[2]
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class DemoError(RuntimeError):
    """The demo cannot start: a port in use, a file missing, a server that failed."""


@dataclass(frozen=True)
class DemoOptions:
    """What ``pipemedic demo`` was asked for."""

    output: Path = Path("demo-output")
    spec: Path = REPO / "rules" / "pipelines.yml"
    custom_rules: Path = REPO / "rules" / "custom"
    prometheus_yml: Path = REPO / "prometheus.yml"
    alertmanager_yml: Path = REPO / "alertmanager.yml"
    free_ports: bool = False
    keep_running: bool = False
    deadline_seconds: float = 150.0
    baseline_seconds: float = 3.0
    json_lines: bool = False
    faults: Sequence[Fault] = SCENARIO


class ReceiverServer(ManagedServer):
    """A real ``pipemedic receiver`` subprocess, ready when its ``/-/ready`` answers."""

    def __init__(
        self, config_path: Path, workdir: Path, port: int, log_format: str = "text"
    ) -> None:
        super().__init__(workdir, port)
        self.config_path = config_path
        self.log_format = log_format

    def argv(self) -> Sequence[str]:
        return [
            sys.executable,
            "-m",
            "pipemedic",
            "--log-format",
            self.log_format,
            "receiver",
            "--listen",
            self.address,
            "--config",
            str(self.config_path),
            "--drain-seconds",
            "5",
        ]


def _check_free(ports: Ports) -> None:
    for name in ("exporter", "receiver", "prometheus", "alertmanager"):
        port = getattr(ports, name)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                raise DemoError(
                    f"{LOOPBACK}:{port} ({name}) is in use, perhaps by a running deployment; "
                    "stop it or run `pipemedic demo --free-ports`"
                ) from None


def _prepare(
    options: DemoOptions, ports: Ports, people: DemoPeople
) -> tuple[Path, Path, Path, str, str]:
    """Write the run folder; return (run, spec copy, receiver config, prometheus, alertmanager)."""
    for path in (options.spec, options.prometheus_yml, options.alertmanager_yml):
        if not path.is_file():
            raise DemoError(f"{path} not found; run the demo from the pipemedic repository")
    run = options.output.resolve() / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(options.output.resolve() / "postmortems", ignore_errors=True)
    run.mkdir(parents=True)
    spec_copy = run / "pipelines.yml"
    spec_copy.write_text(
        demo_spec_text(
            options.spec.read_text(encoding="utf-8"),
            ports.address("exporter"),
            str(options.spec),
            notify=people.destinations(),
        ),
        encoding="utf-8",
    )
    spec = load_spec(spec_copy)
    missing = [f.pipeline for f in options.faults if f.pipeline not in spec.pipelines]
    if missing:
        raise DemoError(f"{options.spec}: demo pipelines missing: {', '.join(missing)}")
    write_rules(spec, run / "rules")
    receiver_yml = run / "receiver.yml"
    receiver_yml.write_text(receiver_config(ports, run, spec_copy), encoding="utf-8")
    globs = [run / "rules" / "*.rules.yml", options.custom_rules.resolve() / "*.rules.yml"]
    prom = prometheus_config(options.prometheus_yml, ports, globs)
    am = alertmanager_config(options.alertmanager_yml, ports)
    return run, spec_copy, receiver_yml, prom, am


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        resp.raise_for_status()
        return await resp.json()


async def _query(session: aiohttp.ClientSession, prom: str, promql: str) -> list[Any]:
    async with session.get(
        f"{prom}/api/v1/query", params={"query": promql}, timeout=aiohttp.ClientTimeout(total=10)
    ) as resp:
        doc = await resp.json()
    result = doc.get("data", {}).get("result", [])
    return result if isinstance(result, list) else []


async def _wait_baseline(
    session: aiohttp.ClientSession, prom: str, faults: Sequence[Fault], deadline: float
) -> None:
    """Wait until Prometheus has run rates of every demo pipeline (the rules' signal)."""
    names = "|".join(re.escape(f.pipeline) for f in faults)
    promql = f'sum by (pipeline) (rate(pipeline_runs_total{{pipeline=~"{names}"}}[15s])) > 0'
    while time.monotonic() < deadline:
        try:
            if len(await _query(session, prom, promql)) >= len(faults):
                return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.5)
    raise DemoError(f"Prometheus at {prom} has no run rates of the demo pipelines yet")


def _done(incidents: Sequence[dict[str, Any]], faults: Sequence[Fault]) -> bool:
    for fault in faults:
        mine = [i for i in incidents if i.get("pipeline") == fault.pipeline]
        if not mine:
            return False
        newest = max(mine, key=lambda i: int(i["id"]))
        if newest["state"] not in ("resolved", "escalated", "closed"):
            return False
        if not newest.get("has_postmortem"):
            return False
    return True


async def _write_postmortems(
    session: aiohttp.ClientSession, receiver: str, rows: Sequence[Row], folder: Path
) -> list[Path]:
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    written = []
    for row in rows:
        if row.incident is None:
            continue
        async with session.get(f"{receiver}/incidents/{row.incident}/postmortem") as resp:
            text = await resp.text()
        path = folder / f"incident-{row.incident}-{_SAFE_NAME.sub('_', row.pipeline)}.md"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


async def _wait_notifications(
    session: aiohttp.ClientSession, receiver: str, deadline: float
) -> None:
    """Wait until the receiver's outbox is empty (every message sent or given up)."""
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{receiver}/metrics") as resp:
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            text = ""
        if "\npipemedic_notification_outbox_depth 0.0" in text:
            return
        await asyncio.sleep(0.5)


async def _stop_signal() -> None:
    """Wait for SIGINT or SIGTERM (the end of ``--keep-running``)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run_demo(options: DemoOptions) -> int:
    """Run the demo end to end; 0 when every incident ended as the scenario expects."""
    report = Reporter(options.json_lines)
    ports = Ports.free() if options.free_ports else DEFAULT_PORTS
    if not options.free_ports:
        _check_free(ports)
    with DemoPeople() as people:
        return await _run(options, report, ports, people)


async def _run(options: DemoOptions, report: Reporter, ports: Ports, people: DemoPeople) -> int:
    run, _spec_copy, receiver_yml, prom_yml, am_yml = _prepare(options, ports, people)
    out = options.output.resolve()
    spec = load_spec(run / "pipelines.yml")
    sim = Simulator(PipelineRegistry(spec), [f.pipeline for f in options.faults])
    app = create_app(sim.registry, config=ExporterConfig(probe_dependencies=False))
    sim.mount(app)
    runner = web.AppRunner(app, access_log=None)
    servers: list[ManagedServer] = [
        ReceiverServer(
            receiver_yml,
            run / "receiver",
            ports.receiver,
            "json" if options.json_lines else "text",
        ),
        AlertmanagerServer(am_yml, workdir=run / "alertmanager", port=ports.alertmanager),
        PrometheusServer(prom_yml, workdir=run / "prometheus", port=ports.prometheus),
    ]
    exporter_url = f"http://{ports.address('exporter')}"
    report.line(f"pipemedic demo: run folder {run}", run=str(run))
    started: list[ManagedServer] = []
    began = time.monotonic()
    finished: tuple[int, int | None] | None = None
    try:
        await runner.setup()
        await web.TCPSite(runner, LOOPBACK, ports.exporter).start()
        report.line(f"pipelines + exporter on {exporter_url}", url=exporter_url)
        for server in servers:
            started.append(server)
            await asyncio.to_thread(server.start)
            report.line(f"{server.name} ready on {server.url}", server=server.name, url=server.url)
        finished = await _scenario(options, report, sim, ports, out, people)
    finally:
        for server in reversed(started):
            await asyncio.to_thread(server.stop)
        await runner.cleanup()
        took = time.monotonic() - began
        report.line(f"stopped everything; the demo took {took:.0f}s", seconds=round(took, 1))
    code, incident = finished
    lines = after_stop(receiver_store_url(run), incident, options.output, options.free_ports)
    report.line("\n".join(lines), event="next_steps", commands=_commands(lines))
    return code


def _commands(lines: Sequence[str]) -> list[str]:
    """The ``pipemedic ...`` commands among closing lines (for ``--log-format json``)."""
    return [line.strip() for line in lines if line.strip().startswith("pipemedic ")]


async def _scenario(
    options: DemoOptions,
    report: Reporter,
    sim: Simulator,
    ports: Ports,
    out: Path,
    people: DemoPeople,
) -> tuple[int, int | None]:
    """Inject the faults, follow the incidents, report; return (exit code, first incident)."""
    receiver_url = f"http://{ports.address('receiver')}"
    prom_url = f"http://{ports.address('prometheus')}"
    async with aiohttp.ClientSession() as session:
        await _wait_baseline(session, prom_url, options.faults, time.monotonic() + 60)
        await asyncio.sleep(options.baseline_seconds)
        injected_at = utcnow()
        for fault in options.faults:
            sim.inject(fault)
            report.line(
                f"   +0.0s  {fault.pipeline:<20} fault injected: {fault.title} "
                f"({fault.category}, reason {fault.reason})",
                pipeline=fault.pipeline,
                event="fault_injected",
                fault=fault.name,
            )
        progress = Progress(report, injected_at)
        deadline = time.monotonic() + options.deadline_seconds
        incidents: list[dict[str, Any]] = []
        while True:
            try:
                doc = await _get_json(session, f"{receiver_url}/incidents?limit=200")
                incidents = list(doc["incidents"])
                progress.update(incidents)
            except (aiohttp.ClientError, TimeoutError) as exc:
                report.line(f"receiver not answering: {exc}", error=str(exc))
            if _done(incidents, options.faults):
                break
            if time.monotonic() >= deadline:
                report.line(
                    f"deadline of {options.deadline_seconds:g}s passed before every incident "
                    "ended; see the logs in the run folder",
                    event="deadline",
                )
                break
            await asyncio.sleep(0.5)
        await _wait_notifications(session, receiver_url, time.monotonic() + 30)
        elapsed = (utcnow() - injected_at).total_seconds()
        rows = summarize(options.faults, incidents, sim.hits())
        table = render_table(rows)
        written = await _write_postmortems(session, receiver_url, rows, out / "postmortems")
    ok = all(not r.problems for r in rows) and len(rows) == len(options.faults)
    (out / "summary.md").write_text(table + "\n", encoding="utf-8")
    (out / "summary.json").write_text(
        json.dumps(
            {
                "ok": ok,
                "seconds": round(elapsed, 1),
                "rows": [r.to_json() for r in rows],
                "notifications": people.to_json(),
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    report.line(
        f"\nsummary ({elapsed:.0f}s after the faults were injected):\n{table}\n",
        event="summary",
        ok=ok,
        rows=[r.to_json() for r in rows],
    )
    told = people.summary()
    report.line(
        "people told:\n  " + "\n  ".join(told),
        event="notifications",
        notifications=people.to_json(),
    )
    for row in rows:
        for problem in row.problems:
            report.line(f"PROBLEM {row.pipeline}: {problem}", pipeline=row.pipeline)
    report.line(
        f"post-mortems: {out / 'postmortems'}/ ({len(written)} files); "
        f"summary: {out / 'summary.md'}",
        postmortems=[str(p) for p in written],
    )
    first = min((r.incident for r in rows if r.incident is not None), default=None)
    if options.keep_running:
        urls = {
            "prometheus": f"http://{ports.address('prometheus')}",
            "alertmanager": f"http://{ports.address('alertmanager')}",
            "incidents": f"{receiver_url}/",
            "exporter": f"http://{ports.address('exporter')}/metrics",
            "control_calls": f"http://{ports.address('exporter')}/demo/hits",
        }
        (out / "stack.json").write_text(json.dumps(urls, indent=2), encoding="utf-8")
        lines = while_running(ports, first, os.getpid())
        report.line("\n".join(lines), urls=urls, commands=_commands(lines))
        await _stop_signal()
        (out / "stack.json").unlink(missing_ok=True)
    return (0 if ok else 1), first
