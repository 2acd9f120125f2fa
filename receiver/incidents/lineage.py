"""Which pipelines feed a pipeline: the lineage graph, read from Prometheus and cached.

The exporter publishes one ``pipeline_upstream_info{pipeline,upstream}`` series
per edge (declared ``upstream:`` in the spec, or learned from OpenLineage
events). The lifecycle asks, for each firing alert of a pipeline without an
incident of its own, which pipelines are upstream of it (transitively, up to
``max_depth`` hops and ``max_upstreams`` names), to join an upstream's incident
instead of opening one. The whole graph is one query, kept ``ttl_seconds``:
an alert storm costs one lookup, not one per alert. When Prometheus cannot
answer, the last graph read stays in use (or none: every pipeline is then
handled on its own, as without lineage).

Example::

    lineage = UpstreamGraph(prometheus, ttl_seconds=30, max_depth=5)
    await lineage.upstreams("orders_mart")      # [("orders_raw", 1), ("ingest", 2)]
    await lineage.firing(["orders_raw", "ingest"])   # {"ingest"}
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from receiver.diagnosis import queries
from receiver.diagnosis.prometheus import PrometheusQuery, sample_value
from receiver.errors import PrometheusError

__all__ = ["UpstreamGraph"]

log = logging.getLogger(__name__)


class UpstreamGraph:
    """The upstreams of a pipeline, breadth first, from one cached query of the whole graph."""

    def __init__(
        self,
        prometheus: PrometheusQuery,
        *,
        ttl_seconds: float = 30.0,
        max_depth: int = 5,
        max_upstreams: int = 50,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prometheus = prometheus
        self.ttl_seconds = ttl_seconds
        self.max_depth = max_depth
        self.max_upstreams = max_upstreams
        self.clock = clock
        self.lookups = 0  # graph queries made (the cache's cost, for tests and logs)
        self._parents: dict[str, tuple[str, ...]] = {}
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def upstreams(self, pipeline: str) -> list[tuple[str, int]]:
        """Return ``(upstream, hops)`` pairs, nearest first, without ``pipeline`` itself.

        Cycles end the walk where they close; the walk stops at ``max_depth``
        hops and ``max_upstreams`` names.
        """
        parents = await self._graph()
        found: dict[str, int] = {}
        frontier = [pipeline]
        for hops in range(1, self.max_depth + 1):
            following: list[str] = []
            for name in frontier:
                for up in parents.get(name, ()):
                    if up == pipeline or up in found:
                        continue
                    if len(found) >= self.max_upstreams:
                        return list(found.items())
                    found[up] = hops
                    following.append(up)
            if not following:
                break
            frontier = following
        return list(found.items())

    async def firing(self, pipelines: Sequence[str]) -> set[str]:
        """Return those of ``pipelines`` with a firing alert in Prometheus (none if unknown)."""
        if not pipelines:
            return set()
        try:
            rows = await self.prometheus.query(queries.firing_pipelines(pipelines))
        except PrometheusError as exc:
            log.warning("cannot ask Prometheus which upstreams fire: %s", exc)
            return set()
        return {
            str((r.get("metric") or {}).get("pipeline", "")) for r in rows if sample_value(r) > 0
        } - {""}

    async def _graph(self) -> dict[str, tuple[str, ...]]:
        """Return pipeline -> its direct upstreams, read again once ``ttl_seconds`` passed."""
        now = self.clock()
        if self._read_at is not None and now - self._read_at < self.ttl_seconds:
            return self._parents
        async with self._lock:  # one reader refreshes; the others wait and use its result
            now = self.clock()
            if self._read_at is not None and now - self._read_at < self.ttl_seconds:
                return self._parents
            self.lookups += 1
            try:
                rows = await self.prometheus.query(queries.lineage_edges())
            except PrometheusError as exc:
                log.warning("cannot read the lineage graph (keeping the last one): %s", exc)
                self._read_at = now
                return self._parents
            parents: dict[str, set[str]] = {}
            for r in rows:
                labels = r.get("metric") or {}
                child, up = str(labels.get("pipeline", "")), str(labels.get("upstream", ""))
                if child and up and child != up and sample_value(r) > 0:
                    parents.setdefault(child, set()).add(up)
            self._parents = {k: tuple(sorted(v)) for k, v in parents.items()}
            self._read_at = now
            return self._parents
