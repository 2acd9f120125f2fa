"""The standalone exporter: ``/metrics``, ``POST /events``, OpenLineage, ``/-/healthy``.

``create_app`` builds the aiohttp application around a registry (made from
the spec when not given), so a pipeline simulator can run pipelines
in-process through the Python API and serve them, and tests can mount it on
an aiohttp test server. Exposition and gzip run in a worker thread, never on
the event loop; dependency probes live in ``cleanup_ctx``. Both POST routes
pass ``PostGuard`` first (bearer token when configured, ``application/json``);
``POST /api/v1/lineage`` and ``GET /lineage`` are ``exporters.openlineage``'s.

Example::

    registry = PipelineRegistry(spec)
    app = create_app(registry)
    web.run_app(app, host="127.0.0.1", port=9108)
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from exporters.config import ExporterConfig
from exporters.errors import CardinalityError, FieldProblem, InvalidEventError
from exporters.events import parse_changes
from exporters.guard import PostGuard
from exporters.health import HealthMetrics
from exporters.keys import CONFIG, EXPOSITION, HEALTH, LINEAGE, REGISTRY
from exporters.multiprocess import DirectoryReader
from exporters.openlineage import LineageEndpoint, LineageRecorder
from exporters.probes import ProbeScheduler
from exporters.registry import PipelineRegistry
from exporters.render import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, Exposition
from rules.spec import Spec

__all__ = ["create_app"]

_log = logging.getLogger(__name__)
# Bodies above this are parsed in a worker thread, not on the event loop.
_INLINE_PARSE_BYTES = 64 * 1024


def _error(status: int, problems: list[FieldProblem], kind: str) -> web.Response:
    first = problems[0] if problems else FieldProblem("$", "invalid")
    body: dict[str, Any] = {
        "error": f"{first.path}: {first.message}",
        "path": first.path,
        "reason": kind,
        "errors": [{"path": p.path, "message": p.message} for p in problems],
    }
    return web.json_response(body, status=status)


def _too_large(limit: int) -> web.Response:
    return _error(
        413, [FieldProblem("$", f"body larger than the limit of {limit} bytes")], "too_large"
    )


class _Events:
    """Serve ``POST /events`` with the app's config, registry and health bound once.

    Bound at ``create_app`` rather than looked up in the app per request: the
    app is frozen once it serves, so these never change underneath.
    """

    def __init__(
        self,
        config: ExporterConfig,
        registry: PipelineRegistry,
        health: HealthMetrics,
        guard: PostGuard,
    ) -> None:
        self.config, self.registry, self.health = config, registry, health
        self.guard = guard

    async def post(self, request: web.Request) -> web.Response:
        limit, health = self.config.max_body_bytes, self.health
        refusal = self.guard.refuse(request)
        if refusal is not None:
            health.reject("unauthorized" if refusal.status == 401 else "content_type")
            return refusal
        size = request.content_length
        if size is not None and size > limit:
            health.reject("too_large")
            return _too_large(limit)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            health.reject("too_large")
            return _too_large(limit)
        registry = self.registry
        try:
            if len(body) > _INLINE_PARSE_BYTES:
                loop = asyncio.get_running_loop()
                batch = await loop.run_in_executor(None, parse_changes, body, registry.clock())
            else:
                batch = parse_changes(body, registry.clock())
            registry.apply(batch)
        except InvalidEventError as exc:
            health.reject(exc.kind)
            return _error(400, exc.problems, exc.kind)
        except CardinalityError as exc:
            health.reject("cardinality")
            return _error(422, [FieldProblem(exc.path, str(exc))], "cardinality")
        health.accepted(len(batch))
        return web.Response(body=_accepted_body(len(batch)), content_type="application/json")


@functools.lru_cache(maxsize=64)
def _accepted_body(n: int) -> bytes:
    return json.dumps({"accepted": n}).encode()


def _wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in accept


def _render(exposition: Exposition, openmetrics: bool, gzip_level: int | None) -> bytes:
    started = time.perf_counter()
    body = exposition.render(openmetrics)
    if gzip_level is not None:
        body = gzip.compress(body, compresslevel=gzip_level)
    if exposition.health is not None:
        exposition.health.observe_scrape(time.perf_counter() - started)
    return body


async def _metrics(request: web.Request) -> web.Response:
    app = request.app
    openmetrics = _wants_openmetrics(request.headers.get("Accept", ""))
    use_gzip = "gzip" in request.headers.get("Accept-Encoding", "")
    level = app[CONFIG].gzip_level if use_gzip else None
    body = await asyncio.get_running_loop().run_in_executor(
        None, _render, app[EXPOSITION], openmetrics, level
    )
    headers = {"Content-Type": CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT}
    if use_gzip:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


async def _healthy(request: web.Request) -> web.Response:
    return web.Response(text="OK\n")


async def _probes(app: web.Application) -> AsyncIterator[None]:
    """Run the spec's dependency probes for the app's lifetime."""
    if not app[CONFIG].probe_dependencies:
        yield
        return
    async with aiohttp.ClientSession() as session:
        scheduler = ProbeScheduler(app[REGISTRY], session)
        scheduler.start()
        try:
            yield
        finally:
            await scheduler.stop()


def create_app(
    registry: PipelineRegistry | None = None,
    *,
    spec: Spec | None = None,
    config: ExporterConfig | None = None,
) -> web.Application:
    """Build the exporter app around ``registry`` (or a new one from ``spec``/``config``)."""
    config = config or ExporterConfig()
    if registry is None:
        registry = PipelineRegistry(spec, max_pipelines=config.max_pipelines)
    if config.expect_listed:
        registry.expect_listed()
    health = HealthMetrics()
    reader = DirectoryReader(config.multiprocess_dir) if config.multiprocess_dir else None
    guard = PostGuard(config.bearer_token)
    recorder = LineageRecorder(
        registry, max_datasets=config.max_datasets, max_open_runs=config.max_open_runs
    )
    lineage = LineageEndpoint(recorder, guard, health, config.max_body_bytes)
    app = web.Application(client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[REGISTRY] = registry
    app[HEALTH] = health
    app[LINEAGE] = recorder
    app[EXPOSITION] = Exposition(registry, health, extra_states=reader, sections=(recorder.render,))
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/events", _Events(config, registry, health, guard).post)
    app.router.add_post("/api/v1/lineage", lineage.post)
    app.router.add_get("/lineage", lineage.get)
    app.router.add_get("/-/healthy", _healthy)
    app.router.add_get("/-/ready", _healthy)
    app.cleanup_ctx.append(_probes)
    return app
