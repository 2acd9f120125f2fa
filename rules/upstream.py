"""The spec's lineage parts: ``upstream:`` lists, the ``openlineage:`` section, and cycles.

``upstream: [names]`` on a pipeline declares edges ``name -> pipeline`` of
the lineage graph (the exporter exports them as ``pipeline_upstream_info``
and adds the edges it learns from OpenLineage events). A declared cycle is a
spec error: ``rules check`` names the cycle and the file:line of each edge.
``find_cycles`` is the one cycle finder; the exporter runs it on the learned
graph too.

Example::

    find_cycles({"a": ["b"], "b": ["a"], "c": ["a"]})    # [["a", "b", "a"]]
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rules.durations import parse_duration
from rules.errors import Problem
from rules.yamlpos import dotted, line_of

__all__ = [
    "DEFAULT_LINEAGE_TTL",
    "DEFAULT_RUN_TTL",
    "JobMapping",
    "OpenLineageSpec",
    "find_cycles",
    "openlineage_spec",
    "upstream_problems",
]

DEFAULT_RUN_TTL = "24h"
DEFAULT_LINEAGE_TTL = "2d"


@dataclass(frozen=True)
class JobMapping:
    """One ``openlineage.pipelines`` entry: root jobs matching both globs are ``pipeline``."""

    pipeline: str
    namespace: str = "*"
    job: str = "*"
    _globs: tuple[re.Pattern[str], re.Pattern[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        globs = (
            re.compile(fnmatch.translate(self.namespace)),
            re.compile(fnmatch.translate(self.job)),
        )
        object.__setattr__(self, "_globs", globs)

    def matches(self, namespace: str, job: str) -> bool:
        ns, name = self._globs
        return ns.match(namespace) is not None and name.match(job) is not None


@dataclass(frozen=True)
class OpenLineageSpec:
    """How OpenLineage jobs become pipelines, and how long runs and edges are remembered."""

    mappings: tuple[JobMapping, ...] = ()
    run_ttl: str = DEFAULT_RUN_TTL
    lineage_ttl: str = DEFAULT_LINEAGE_TTL

    @property
    def run_ttl_seconds(self) -> float:
        return parse_duration(self.run_ttl)

    @property
    def lineage_ttl_seconds(self) -> float:
        return parse_duration(self.lineage_ttl)

    def pipeline_for(self, namespace: str, job: str) -> str | None:
        """Return the mapped pipeline of a root job, or None when no entry matches."""
        for mapping in self.mappings:
            if mapping.matches(namespace, job):
                return mapping.pipeline
        return None


def openlineage_spec(raw: Mapping[str, Any] | None) -> OpenLineageSpec:
    """Build the section from validated spec data (None: the defaults)."""
    if not raw:
        return OpenLineageSpec()
    return OpenLineageSpec(
        mappings=tuple(
            JobMapping(m["pipeline"], m.get("namespace", "*"), m.get("job", "*"))
            for m in raw.get("pipelines") or ()
        ),
        run_ttl=raw.get("run_ttl", DEFAULT_RUN_TTL),
        lineage_ttl=raw.get("lineage_ttl", DEFAULT_LINEAGE_TTL),
    )


def find_cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Return one cycle per strongly connected component that has one, each closed (a..a).

    ``edges`` maps a node to the nodes it points to. Iterative Tarjan, so a
    graph of many thousands of pipelines cannot hit the recursion limit;
    the output is sorted, so it is stable from one call to the next.
    """
    graph: dict[str, list[str]] = {a: sorted(set(bs)) for a, bs in edges.items()}
    for targets in list(graph.values()):
        for b in targets:
            graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = graph[node]
            if i < len(targets):
                work.append((node, i + 1))
                nxt = targets[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    components.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(_cycle_in(graph, set(c)) for c in components)


def _cycle_in(graph: Mapping[str, list[str]], members: set[str]) -> list[str]:
    """Return a shortest closed path through the smallest member of a component (BFS)."""
    start = min(members)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in graph[node]:
                if nxt not in members:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start, start]  # pragma: no cover - a component always has a cycle


def upstream_problems(
    raw: Mapping[str, Any], index: Mapping[tuple[str | int, ...], int], source: str
) -> list[Problem]:
    """Refuse ``upstream`` in defaults and declared upstreams that form a cycle."""
    problems: list[Problem] = []
    defaults = raw.get("defaults")
    if isinstance(defaults, Mapping) and "upstream" in defaults:
        where: tuple[str | int, ...] = ("defaults", "upstream")
        problems.append(
            Problem(
                source,
                line_of(index, where),
                dotted(where),
                "upstream is declared per pipeline, not in defaults",
            )
        )
    pipelines = raw.get("pipelines")
    if not isinstance(pipelines, Mapping):
        return problems
    edges: dict[str, list[str]] = {}
    where_of: dict[tuple[str, str], tuple[str | int, ...]] = {}
    for name, entry in pipelines.items():
        ups = entry.get("upstream") if isinstance(entry, Mapping) else None
        if not isinstance(ups, list):
            continue
        for i, up in enumerate(ups):
            if isinstance(up, str):
                edges.setdefault(up, []).append(str(name))
                where_of.setdefault((up, str(name)), ("pipelines", str(name), "upstream", i))
    for cycle in find_cycles(edges):
        hops = list(itertools.pairwise(cycle))
        spots = [(a, b, where_of[(a, b)]) for a, b in hops]
        detail = "; ".join(
            f"{a} -> {b} at {source}:{line_of(index, w)} ({dotted(w)})" for a, b, w in spots
        )
        first = spots[0][2]
        problems.append(
            Problem(
                source,
                line_of(index, first),
                dotted(first),
                f"declared upstreams form a cycle {' -> '.join(cycle)}: {detail}",
            )
        )
    return problems
