"""Probe the dependencies a pipeline's spec lists (HTTP URLs, TCP host:port).

``pipeline_dependency_up`` lets diagnosis tell "the upstream API is down"
from "our code is broken" before anyone reads a log. Each dependency is
probed on its own interval with its own timeout; a probe is one small
``Prober`` (one method) registered in ``PROBERS`` by kind. Targets come from
the spec an SRE wrote, never from events.

Example::

    scheduler = ProbeScheduler(registry, session)
    scheduler.start()          # inside a running event loop
    ...
    await scheduler.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from exporters.changes import Change
from exporters.errors import ExporterError
from exporters.registry import PipelineRegistry
from exporters.state import DependencyResult, PipelineState
from rules.spec import Dependency

__all__ = ["PROBERS", "HttpProber", "ProbeScheduler", "Prober", "TcpProber", "probe_once"]

_log = logging.getLogger(__name__)


class Prober(Protocol):
    """Tell whether a dependency answers; may raise (counts as down)."""

    async def __call__(self, dependency: Dependency) -> bool: ...


class HttpProber:
    """Up when the URL answers with any status below 500 (redirects not followed)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def __call__(self, dependency: Dependency) -> bool:
        async with self.session.get(dependency.target, allow_redirects=False) as resp:
            return resp.status < 500


class TcpProber:
    """Up when a TCP connection to host:port opens."""

    async def __call__(self, dependency: Dependency) -> bool:
        parts = urlsplit(f"//{dependency.target}")
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"{dependency.target!r} is not host:port")
        _reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True


# kind (rules/spec.py Dependency.kind) -> prober factory
PROBERS: dict[str, Callable[[aiohttp.ClientSession], Prober]] = {
    "http": HttpProber,
    "tcp": lambda _session: TcpProber(),
}


async def probe_once(
    prober: Prober, dependency: Dependency, clock: Callable[[], float] = time.monotonic
) -> tuple[bool, float]:
    """Run one probe within the dependency's timeout; return (up, seconds taken)."""
    started = clock()
    try:
        up = await asyncio.wait_for(prober(dependency), dependency.timeout_seconds)
    except (TimeoutError, OSError, aiohttp.ClientError, ValueError) as exc:
        _log.debug("probe %s (%s) failed: %r", dependency.name, dependency.target, exc)
        up = False
    return up, clock() - started


def _record(pipeline: str, name: str, up: bool, seconds: float, at: float) -> Change:
    def apply(s: PipelineState) -> None:
        s.dependencies[name] = DependencyResult(up, seconds, at)

    return Change(pipeline, apply, reports=False)


class ProbeScheduler:
    """One task per (pipeline, dependency) of the spec, probing on its interval."""

    def __init__(
        self,
        registry: PipelineRegistry,
        session: aiohttp.ClientSession,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.registry = registry
        self.session = session
        self.sleep = sleep
        self._tasks: list[asyncio.Task[None]] = []

    def targets(self) -> list[tuple[str, Dependency]]:
        """List (pipeline, dependency) pairs from the spec."""
        return [
            (name, dep)
            for name, p in sorted(self.registry.spec.pipelines.items())
            for dep in p.dependencies
        ]

    def start(self) -> None:
        for pipeline, dep in self.targets():
            factory = PROBERS.get(dep.kind)
            if factory is None:
                _log.error(
                    "pipeline %s: dependency %s has unknown kind %r", pipeline, dep.name, dep.kind
                )
                continue
            task = asyncio.create_task(self._loop(pipeline, dep, factory(self.session)))
            self._tasks.append(task)

    async def _loop(self, pipeline: str, dep: Dependency, prober: Prober) -> None:
        while True:
            up, seconds = await probe_once(prober, dep)
            try:
                self.registry.apply([_record(pipeline, dep.name, up, seconds, time.time())])
            except ExporterError as exc:
                _log.warning("probe result of %s/%s not recorded: %s", pipeline, dep.name, exc)
            await self.sleep(dep.interval_seconds)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
