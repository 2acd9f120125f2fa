"""The lineage graph: which pipeline writes and reads which dataset, and the edges that follow.

Pipeline A -> pipeline B when B reads a dataset A writes. Reads and writes
are learned from events and each expires ``ttl`` seconds after it was last
seen, so an edge that is gone from the pipelines is gone from the graph;
edges declared with ``upstream:`` in the spec never expire. Datasets are
bounded by ``max_datasets`` (a new one beyond it is refused and counted)
and each keeps at most ``_MAX_PEERS`` writers and readers. Edges and cycles
are computed when asked (a scrape, ``GET /lineage``): the cost is the
number of dataset reads and writes, never a walk per event.

Example::

    graph = LineageGraph(max_datasets=10_000, ttl=172800, clock=time.time)
    graph.record("etl_orders", inputs=["pg://shop/orders"], outputs=["wh/orders"])
    graph.record("report", inputs=["wh/orders"], outputs=[])
    graph.edges()            # {("etl_orders", "report"): "learned"}
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from exporters.openlineage.model import SchemaField
from exporters.render import escape_label_value, family_header, format_value
from rules.upstream import find_cycles

__all__ = ["DEFAULT_MAX_DATASETS", "DatasetInfo", "LineageGraph", "schema_fingerprint"]

DEFAULT_MAX_DATASETS: Final = 10_000
_MAX_PEERS: Final = 64
_SWEEP: Final = 64


def schema_fingerprint(fields: list[SchemaField]) -> int:
    """Hash the (nested) field names and types in order (compared in-process only).

    The names, types and nesting are re-encoded in one msgspec pass and
    hashed: a field added, removed, renamed, retyped or moved changes it.
    """
    return hash(_ENCODE(fields))


_ENCODE: Final = msgspec.json.Encoder().encode


@dataclass(slots=True)
class DatasetInfo:
    """What is known of one dataset: who writes and reads it, when, and its schema."""

    writers: dict[str, float] = field(default_factory=dict)  # pipeline -> last seen
    readers: dict[str, float] = field(default_factory=dict)
    updated: dict[str, float] = field(default_factory=dict)  # pipeline -> last COMPLETE
    fingerprint: int | None = None
    schema_changed_at: float | None = None
    touched: float = 0.0


def _remember(peers: dict[str, float], pipeline: str, now: float) -> None:
    if pipeline not in peers and len(peers) >= _MAX_PEERS:
        del peers[min(peers, key=peers.__getitem__)]
    peers[pipeline] = now


class LineageGraph:
    """Datasets, the pipelines around them, declared upstreams; thread-safe."""

    def __init__(
        self,
        *,
        max_datasets: int = DEFAULT_MAX_DATASETS,
        ttl: float,
        clock: Callable[[], float],
        declared: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        if max_datasets < 1:
            raise ValueError(f"max_datasets must be at least 1, not {max_datasets}")
        self.max_datasets, self.ttl, self.clock = max_datasets, ttl, clock
        self.lock = threading.Lock()
        self._datasets: OrderedDict[str, DatasetInfo] = OrderedDict()
        # (upstream, pipeline) pairs from the spec
        self.declared: frozenset[tuple[str, str]] = frozenset(
            (up, p) for p, ups in (declared or {}).items() for up in ups
        )
        self.output_records: dict[str, int] = {}
        self.refused = 0

    # -- writing (under ``lock``, by the recorder) --------------------------
    def dataset(self, label: str, now: float) -> DatasetInfo | None:
        """Return the dataset's entry (new if there is room), touched; None when refused."""
        info = self._datasets.get(label)
        if info is None:
            self._expire(now)
            if len(self._datasets) >= self.max_datasets:
                self.refused += 1
                return None
            info = DatasetInfo()
            self._datasets[label] = info
        else:
            self._datasets.move_to_end(label)
        info.touched = now
        return info

    def fingerprint(self, label: str) -> int | None:
        """Return the last schema fingerprint seen for a dataset, if any."""
        info = self._datasets.get(label)
        return info.fingerprint if info is not None else None

    def wrote(self, info: DatasetInfo, pipeline: str, now: float) -> None:
        _remember(info.writers, pipeline, now)

    def read(self, info: DatasetInfo, pipeline: str, now: float) -> None:
        _remember(info.readers, pipeline, now)

    def _expire(self, now: float, limit: int | None = _SWEEP) -> None:
        horizon = now - self.ttl
        done = 0
        datasets = self._datasets
        while datasets and (limit is None or done < limit):
            oldest = next(iter(datasets.values()))
            if oldest.touched >= horizon:
                break
            datasets.popitem(last=False)
            done += 1

    # -- reading ------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._datasets)

    def edges(self) -> dict[tuple[str, str], str]:
        """Return every edge (upstream, pipeline) -> ``declared`` or ``learned``."""
        with self.lock:
            return self._edges(self.clock())

    def _edges(self, now: float) -> dict[tuple[str, str], str]:
        self._expire(now, limit=4096)  # bounded: a scrape holds the lock events need
        horizon = now - self.ttl
        out: dict[tuple[str, str], str] = {}
        for info in self._datasets.values():
            if not info.writers or not info.readers:
                continue
            writers = [w for w, t in info.writers.items() if t >= horizon]
            readers = [r for r, t in info.readers.items() if t >= horizon]
            for w in writers:
                for r in readers:
                    if w != r:
                        out[(w, r)] = "learned"
        for edge in self.declared:
            out[edge] = "declared"
        return out

    @staticmethod
    def _cycles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
        adjacency: dict[str, list[str]] = {}
        for a, b in edges:
            adjacency.setdefault(a, []).append(b)
        return find_cycles(adjacency)

    def render(self, openmetrics: bool = False) -> str:
        """Return the exposition lines of the lineage metrics (call off the event loop)."""
        om = openmetrics
        with self.lock:
            now = self.clock()
            edges = self._edges(now)
            freshness = [
                (p, label, at)
                for label, info in self._datasets.items()
                for p, at in info.updated.items()
            ]
            records = sorted(self.output_records.items())
            n_datasets = len(self._datasets)
            refused = self.refused
        on_cycle = sorted({p for cycle in self._cycles(edges) for p in cycle})
        out = [
            family_header("pipeline_upstream_info", om),
            *(
                f'pipeline_upstream_info{{pipeline="{b}",upstream="{a}"}} 1\n'
                for a, b in sorted(edges)
            ),
            family_header("pipeline_dataset_last_update_timestamp_seconds", om),
            *(
                f'pipeline_dataset_last_update_timestamp_seconds{{pipeline="{p}",'
                f'dataset="{escape_label_value(d)}"}} {format_value(at)}\n'
                for p, d, at in sorted(freshness)
            ),
            family_header("pipeline_last_run_output_records", om),
            *(f'pipeline_last_run_output_records{{pipeline="{p}"}} {n}\n' for p, n in records),
            family_header("pipeline_dependency_cycle", om),
            *(f'pipeline_dependency_cycle{{pipeline="{p}"}} 1\n' for p in on_cycle),
            family_header("pipemedic_exporter_lineage_datasets", om),
            f"pipemedic_exporter_lineage_datasets {n_datasets}\n",
            family_header("pipemedic_exporter_max_datasets", om),
            f"pipemedic_exporter_max_datasets {self.max_datasets}\n",
            family_header("pipemedic_exporter_lineage_datasets_refused_total", om),
            f"pipemedic_exporter_lineage_datasets_refused_total {refused}\n",
            family_header("pipemedic_exporter_lineage_edges", om),
            *(
                f'pipemedic_exporter_lineage_edges{{source="{s}"}} '
                f"{sum(1 for v in edges.values() if v == s)}\n"
                for s in ("declared", "learned")
            ),
        ]
        return "".join(out)

    def to_json(self, pipelines: Iterable[str]) -> dict[str, Any]:
        """Return the graph for ``GET /lineage``: pipelines, datasets, edges, cycles."""
        with self.lock:
            now = self.clock()
            edges = self._edges(now)
            horizon = now - self.ttl
            datasets = [
                {
                    "name": label,
                    "writers": sorted(p for p, t in info.writers.items() if t >= horizon),
                    "readers": sorted(p for p, t in info.readers.items() if t >= horizon),
                    "last_update": {p: at for p, at in sorted(info.updated.items())},
                    "schema_changed_at": info.schema_changed_at,
                }
                for label, info in sorted(self._datasets.items())
            ]
        names = set(pipelines) | {p for edge in edges for p in edge}
        return {
            "pipelines": sorted(names),
            "datasets": datasets,
            "edges": [
                {"upstream": a, "pipeline": b, "source": s} for (a, b), s in sorted(edges.items())
            ],
            "cycles": self._cycles(edges),
        }
