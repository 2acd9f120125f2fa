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

The same refresh reads the datasets each pipeline with an upstream writes
(``pipeline_dataset_last_update_timestamp_seconds``, the newest
``max_datasets`` per pipeline, in one query): those pipelines are the ones a
blast radius can list, and the incident records the datasets with them.

Example::

    lineage = UpstreamGraph(prometheus, ttl_seconds=30, max_depth=5)
    await lineage.upstreams("orders_mart")      # [("orders_raw", 1), ("ingest", 2)]
    await lineage.firing(["orders_raw", "ingest"])   # {"ingest"}
    await lineage.downstreams("ingest")              # [("orders_raw", 1), ("orders_mart", 2)]
    await lineage.datasets("orders_mart")            # [{"name": "db/mart", "updated_at": ...}]
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from receiver.diagnosis import queries
from receiver.diagnosis.prometheus import PrometheusQuery, sample_value
from receiver.errors import PrometheusError
from receiver.models import format_time

__all__ = ["UpstreamGraph"]

# The timestamps ``pipeline_dataset_last_update_timestamp_seconds`` holds are epoch seconds.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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
        max_datasets: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prometheus = prometheus
        self.ttl_seconds = ttl_seconds
        self.max_depth = max_depth
        self.max_upstreams = max_upstreams
        self.max_datasets = max_datasets
        self.clock = clock
        self.lookups = 0  # graph queries made (the cache's cost, for tests and logs)
        self._parents: dict[str, tuple[str, ...]] = {}
        self._children: dict[str, tuple[str, ...]] = {}
        self._datasets: dict[str, tuple[dict[str, Any], ...]] = {}
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def upstreams(self, pipeline: str) -> list[tuple[str, int]]:
        """Return ``(upstream, hops)`` pairs, nearest first, without ``pipeline`` itself.

        Cycles end the walk where they close; the walk stops at ``max_depth``
        hops and ``max_upstreams`` names.
        """
        await self._graph()
        return self._walk(self._parents, pipeline)

    async def downstreams(self, pipeline: str) -> list[tuple[str, int]]:
        """Return ``(downstream, hops)`` pairs, nearest first: the pipelines ``pipeline`` feeds,
        bounded as :meth:`upstreams` is."""
        await self._graph()
        return self._walk(self._children, pipeline)

    async def datasets(self, pipeline: str) -> list[dict[str, Any]]:
        """Return the datasets ``pipeline`` writes (``name``, ``updated_at``), newest first.

        Known for pipelines with an upstream (the blast radius' candidates); at
        most ``max_datasets``; empty when the exporter saw no output of it.
        """
        await self._graph()
        return [dict(d) for d in self._datasets.get(pipeline, ())]

    def _walk(self, parents: Mapping[str, tuple[str, ...]], pipeline: str) -> list[tuple[str, int]]:
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
            children: dict[str, set[str]] = {}
            for child, ups in parents.items():
                for up in ups:
                    children.setdefault(up, set()).add(child)
            self._children = {k: tuple(sorted(v)) for k, v in children.items()}
            self._datasets = await self._read_datasets()
            self._read_at = now
            return self._parents

    async def _read_datasets(self) -> dict[str, tuple[dict[str, Any], ...]]:
        """pipeline -> the datasets it writes, newest first (the last answer kept on errors)."""
        if not self._parents or self.max_datasets <= 0:
            return {}
        try:
            rows = await self.prometheus.query(queries.downstream_datasets(self.max_datasets))
        except PrometheusError as exc:
            log.warning("cannot read the downstream datasets (keeping the last ones): %s", exc)
            return self._datasets
        found: dict[str, list[tuple[float, str]]] = {}
        for r in rows:
            labels = r.get("metric") or {}
            name, dataset = str(labels.get("pipeline", "")), str(labels.get("dataset", ""))
            if name in self._parents and dataset:
                value = sample_value(r)
                found.setdefault(name, []).append((value if value == value else 0.0, dataset))
        return {
            name: tuple(
                {"name": dataset, "updated_at": _epoch(at)}
                for at, dataset in sorted(pairs, reverse=True)[: self.max_datasets]
            )
            for name, pairs in found.items()
        }


def _epoch(seconds: float) -> str | None:
    """An epoch-seconds sample as an ISO time (None when it is not a plausible time)."""
    if not 0 < seconds < 1e11:
        return None
    return format_time(_EPOCH + timedelta(seconds=seconds))
