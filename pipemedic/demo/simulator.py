"""Demo pipelines that run through the exporter's Python API, break on demand and can be fixed.

Every ``tick`` each simulated pipeline sends a heartbeat (memory, CPU and
disk gauges), runs one batch inside ``pipeline.run()`` and, when healthy,
refreshes its data and records a checkpoint. :meth:`Simulator.inject` makes
one misbehave as its :class:`~pipemedic.demo.scenario.Fault` says. The
control routes are what the pipelines' recovery actions call (``http``
actions in ``rules/pipelines.yml``)::

    POST /demo/pipelines/{pipeline}/{fix}   retry | refresh_credentials | rollback | scale
    GET  /demo/hits                         every control call, per pipeline and fix

They are mounted on the exporter's app, so the pipelines and their metrics
live in one process and one port, as a real pipeline and its exporter would.
A fix call that repairs the fault answers 200; a fault that is not repaired
yet 503 (retryable); the wrong fix for the fault 409 (not retryable); no
fault at all 200 with nothing done (a repeated call changes nothing).

Example::

    sim = Simulator(PipelineRegistry(spec), [f.pipeline for f in SCENARIO])
    app = create_app(sim.registry, config=ExporterConfig(probe_dependencies=False))
    sim.mount(app)                      # control routes + the run loop in cleanup_ctx
    sim.inject(SCENARIO[0])
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from exporters import Pipeline, PipelineRegistry
from pipemedic.demo.scenario import FIXES, Fault

__all__ = ["SIMULATOR", "ControlCall", "SimulatedPipeline", "Simulator"]

log = logging.getLogger(__name__)

SIMULATOR: web.AppKey[Simulator] = web.AppKey("pipemedic_demo_simulator")

GIB = 1024.0**3
BATCH_RECORDS = 200
CORRUPT_SHARE = 0.4  # of a corrupt batch's records fail


@dataclass(frozen=True)
class ControlCall:
    """One call of a control route, as the simulator saw it."""

    pipeline: str
    fix: str
    status: int
    incident_id: Any = None
    attempt: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "fix": self.fix,
            "status": self.status,
            "incident_id": self.incident_id,
            "attempt": self.attempt,
        }


@dataclass
class SimulatedPipeline:
    """One demo pipeline's health: its fault (if any), memory, and fix calls so far."""

    name: str
    handle: Pipeline
    fault: Fault | None = None
    memory_limit_bytes: float = 4 * GIB
    memory_bytes: float = 1.8 * GIB
    fix_calls: Counter[str] = field(default_factory=Counter)

    def tick(self) -> None:
        """Report a heartbeat, run one batch, and refresh data and checkpoint when healthy."""
        fault = self.fault
        memory = self.memory_bytes
        if fault is not None and fault.memory_ratio is not None:
            memory = self.memory_limit_bytes * fault.memory_ratio
        self.handle.heartbeat(
            memory_bytes=memory,
            memory_limit_bytes=self.memory_limit_bytes,
            disk_free_bytes=50 * GIB,
            cpu_usage_ratio=0.35,
            sample=False,
        )
        with self.handle.run() as run:
            if fault is not None and fault.effect == "failed_runs":
                run.fail(fault.category, fault.reason)
            else:
                run.processed(BATCH_RECORDS)
                if fault is not None:  # failed_records
                    bad = int(BATCH_RECORDS * CORRUPT_SHARE)
                    run.failed(bad)
                    self.handle.error(fault.category, fault.reason, bad)
        if fault is None:
            self.handle.data_updated()
            self.handle.checkpoint()

    def fix(self, route: str) -> tuple[int, dict[str, Any]]:
        """Apply a control route; return the HTTP status and body it answers with."""
        fault = self.fault
        self.fix_calls[route] += 1
        if fault is None:
            return 200, {"pipeline": self.name, "fixed": None, "note": "nothing to fix"}
        if fault.fix != route:
            return 409, {
                "error": f"{route} does not repair {fault.title} in {self.name}",
                "pipeline": self.name,
            }
        if self.fix_calls[route] <= fault.failing_fix_calls:
            return 503, {
                "error": f"{self.name}: {FIXES[route]} failed, {fault.title} persists; try later",
                "pipeline": self.name,
            }
        if route == "scale":  # the working set stays; the limit doubles under it
            if fault.memory_ratio is not None:
                self.memory_bytes = self.memory_limit_bytes * fault.memory_ratio
            self.memory_limit_bytes *= 2
        self.fault = None
        return 200, {"pipeline": self.name, "fixed": fault.name, "did": FIXES[route]}


class Simulator:
    """Run demo pipelines on a registry; inject faults; answer the recovery actions."""

    def __init__(
        self, registry: PipelineRegistry, pipelines: Iterable[str], tick_seconds: float = 1.0
    ) -> None:
        self.registry = registry
        self.tick_seconds = tick_seconds
        self.pipelines = {
            name: SimulatedPipeline(name, registry.pipeline(name)) for name in pipelines
        }
        self.calls: list[ControlCall] = []

    def inject(self, fault: Fault) -> None:
        """Make the fault's pipeline misbehave from its next batch on."""
        self.pipelines[fault.pipeline].fault = fault
        log.debug(
            "fault injected: %s in %s",
            fault.title,
            fault.pipeline,
            extra={"pipeline": fault.pipeline, "fault": fault.name},
        )

    def tick(self) -> None:
        """Run one batch of every pipeline."""
        for pipeline in self.pipelines.values():
            pipeline.tick()

    def hits(self) -> dict[str, dict[str, int]]:
        """Return the control calls per pipeline and route."""
        out: dict[str, dict[str, int]] = {}
        for call in self.calls:
            per = out.setdefault(call.pipeline, {})
            per[call.fix] = per.get(call.fix, 0) + 1
        return out

    def mount(self, app: web.Application) -> None:
        """Add the control routes and the run loop (in ``cleanup_ctx``) to ``app``."""
        app[SIMULATOR] = self
        app.router.add_post("/demo/pipelines/{pipeline}/{fix}", _fix)
        app.router.add_get("/demo/hits", _hits)
        app.cleanup_ctx.append(_run_loop)

    async def run(self) -> None:
        """Tick every ``tick_seconds`` until cancelled."""
        while True:
            try:
                self.tick()
            except Exception:  # a broken batch must not stop the other pipelines
                log.exception("simulated batch failed")
            await asyncio.sleep(self.tick_seconds)


async def _run_loop(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[SIMULATOR].run(), name="pipemedic-demo-pipelines")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _fix(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    name, route = request.match_info["pipeline"], request.match_info["fix"]
    pipeline = sim.pipelines.get(name)
    if pipeline is None:
        return web.json_response({"error": "no such demo pipeline", "pipeline": name}, status=404)
    if route not in FIXES:
        return web.json_response(
            {"error": f"unknown fix (known: {', '.join(FIXES)})", "fix": route}, status=404
        )
    try:
        body = await request.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    status, answer = pipeline.fix(route)
    sim.calls.append(ControlCall(name, route, status, body.get("incident_id"), body.get("attempt")))
    log.debug(
        "control call %s %s -> %d",
        name,
        route,
        status,
        extra={"pipeline": name, "fix": route, "status": status},
    )
    return web.json_response(answer, status=status)


async def _hits(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return web.json_response({"hits": sim.hits(), "calls": [c.to_json() for c in sim.calls]})
