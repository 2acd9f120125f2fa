"""Render the pipeline metrics as Prometheus text or OpenMetrics, fast.

A scrape of 10,000 pipelines must not re-format 10,000 pipelines: each
pipeline's samples are rendered once into one text fragment per metric
family and cached until that pipeline's state changes (its ``version``).
A scrape then only joins fragments family by family and picks each
pipeline's cached ``pipeline_up`` line (1 or 0) from its heartbeat age at
that moment. Sample lines are the same in both formats; only the family
headers (counter names lose ``_total`` in OpenMetrics) and ``# EOF`` differ.

Example::

    exposition = Exposition(registry)
    body = exposition.render(openmetrics=False)   # bytes; call it off the event loop
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from exporters.health import HealthMetrics
from exporters.registry import PipelineRegistry
from exporters.state import PipelineState
from pipemedic.vocabulary.metrics import (
    DURATION_BUCKETS,
    RESOURCE_FIELDS,
    Source,
    metric,
    metrics_from,
)

__all__ = [
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_TEXT",
    "FAMILIES",
    "Exposition",
    "escape_label_value",
    "family_header",
    "format_value",
    "render_state",
]

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# (name, type, help) in exposition order (the vocabulary's table order); index 0
# (pipeline_up) is decided per scrape, the others come from render_state.
FAMILIES: tuple[tuple[str, str, str], ...] = tuple(
    (m.name, m.type, m.help) for m in metrics_from(Source.PIPELINE)
)


def _header(name: str, kind: str, text: str, openmetrics: bool) -> str:
    shown = name.removesuffix("_total") if openmetrics and kind == "counter" else name
    return f"# HELP {shown} {text}\n# TYPE {shown} {kind}\n"


def family_header(name: str, openmetrics: bool = False) -> str:
    """Return the HELP and TYPE lines of a family of the metric table, in either format."""
    row = metric(name)
    return _header(row.name, row.type, row.help, openmetrics)


_HEADERS = {om: tuple(_header(n, k, t, om) for n, k, t in FAMILIES) for om in (False, True)}


def format_value(value: float) -> str:
    """Format a sample value the way both formats accept (``+Inf``, ``NaN``, ``1.5``)."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def escape_label_value(value: str) -> str:
    """Escape backslash, double quote and newline, as the text formats require."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


_LE = tuple(format_value(b) if math.isinf(b) else repr(b) for b in DURATION_BUCKETS)
_RESOURCE_ORDER = tuple(RESOURCE_FIELDS)


def _gauge(name: str, labels: str, value: float | None) -> str:
    return "" if value is None else f"{name}{{{labels}}} {format_value(value)}\n"


def render_state(s: PipelineState) -> tuple[str, ...]:
    """Render one pipeline: one fragment per family after ``pipeline_up`` (FAMILIES[1:])."""
    p = f'pipeline="{escape_label_value(s.name)}"'
    cumulative = 0
    hist = []
    for le, n in zip(_LE, s.bucket_counts, strict=True):
        cumulative += n
        hist.append(f'pipeline_run_duration_seconds_bucket{{{p},le="{le}"}} {cumulative}\n')
    hist.append(f"pipeline_run_duration_seconds_sum{{{p}}} {format_value(s.duration_sum)}\n")
    hist.append(f"pipeline_run_duration_seconds_count{{{p}}} {cumulative}\n")
    deps = sorted(s.dependencies.items())
    return (
        f'pipeline_runs_total{{{p},status="success"}} {s.runs_success}\n'
        f'pipeline_runs_total{{{p},status="failure"}} {s.runs_failure}\n',
        f"pipeline_records_processed_total{{{p}}} {s.records_processed}\n",
        f"pipeline_records_failed_total{{{p}}} {s.records_failed}\n",
        "".join(
            f'pipeline_errors_total{{{p},category="{escape_label_value(c)}",'
            f'reason="{escape_label_value(r)}"}} {n}\n'
            for (c, r), n in sorted(s.errors.items())
        ),
        "".join(hist),
        _gauge("pipeline_last_run_duration_seconds", p, s.last_run_duration),
        _gauge("pipeline_last_success_timestamp_seconds", p, s.last_success),
        _gauge("pipeline_last_update_timestamp_seconds", p, s.last_update),
        _gauge("pipeline_checkpoint_timestamp_seconds", p, s.checkpoint),
        _gauge("pipeline_last_heartbeat_timestamp_seconds", p, s.last_seen),
        _gauge("pipeline_last_run_start_timestamp_seconds", p, s.last_run_start),
        _gauge("pipeline_last_run_end_timestamp_seconds", p, s.last_run_end),
        *(_gauge(RESOURCE_FIELDS[f], p, s.resources.get(f)) for f in _RESOURCE_ORDER),
        "".join(
            f'pipeline_dependency_up{{{p},dependency="{escape_label_value(d)}"}} '
            f"{1 if r.up else 0}\n"
            for d, r in deps
        ),
        "".join(
            f'pipeline_dependency_probe_duration_seconds{{{p},dependency="{escape_label_value(d)}"}}'
            f" {format_value(r.duration_seconds)}\n"
            for d, r in deps
        ),
        _gauge("pipeline_awaiting_first_report_timestamp_seconds", p, s.awaiting_since),
    )


def _combine(own: list[PipelineState], extra: list[PipelineState]) -> list[PipelineState]:
    """Join two lists of states; a pipeline in both is merged into a fresh copy."""
    by_name = {s.name: s for s in own}
    for other in extra:
        mine = by_name.get(other.name)
        if mine is None:
            by_name[other.name] = other
        else:
            merged = PipelineState.from_dict(mine.to_dict())
            merged.dependencies.update(mine.dependencies)
            merged.merge(other)
            by_name[other.name] = merged
    return list(by_name.values())


@dataclass(slots=True)
class _Cached:
    state: PipelineState
    version: int
    fragments: tuple[str, ...]
    up: str
    down: str


class Exposition:
    """Render a registry (plus optional extra states) with per-pipeline caching.

    ``extra_states`` supplies states kept elsewhere (the multiprocess
    directory); they are rendered after the registry's own. ``sections``
    render further families (the lineage metrics) before the exporter's own.
    """

    def __init__(
        self,
        registry: PipelineRegistry,
        health: HealthMetrics | None = None,
        extra_states: Callable[[], list[PipelineState]] | None = None,
        sections: Sequence[Callable[[bool], str]] = (),
    ) -> None:
        self.registry = registry
        self.health = health
        self.extra_states = extra_states
        self.sections = tuple(sections)
        self._cache: dict[str, _Cached] = {}

    def _cached(self, s: PipelineState) -> _Cached:
        hit = self._cache.get(s.name)
        if hit is not None and hit.state is s and hit.version == s.version:
            return hit
        with self.registry.lock:  # a consistent read of this one pipeline
            version = s.version
            fragments = render_state(s)
        p = escape_label_value(s.name)
        entry = _Cached(
            s,
            version,
            fragments,
            f'pipeline_up{{pipeline="{p}"}} 1\n',
            f'pipeline_up{{pipeline="{p}"}} 0\n',
        )
        self._cache[s.name] = entry
        return entry

    def render(self, openmetrics: bool = False) -> bytes:
        """Return the whole exposition; CPU-bound, so call it from a worker thread."""
        now = self.registry.clock()
        states = self.registry.states()
        if self.extra_states is not None:
            extra = self.extra_states()
            with self.registry.lock:
                states = _combine(states, extra)
        entries = [self._cached(s) for s in states]
        if len(self._cache) > 2 * len(entries) + 64:
            self._cache = {e.state.name: e for e in entries}
        headers = _HEADERS[openmetrics]
        out = [headers[0]]
        for s, e in zip(states, entries, strict=True):
            up = s.is_up(now)
            if up is not None:
                out.append(e.up if up else e.down)
        for i in range(1, len(FAMILIES)):
            out.append(headers[i])
            out.extend([e.fragments[i - 1] for e in entries])
        out.extend(section(openmetrics) for section in self.sections)
        if self.health is not None:
            out.append(
                self.health.render(
                    len(states), self.registry.max_pipelines, self.registry.refused, openmetrics
                )
            )
        if openmetrics:
            out.append("# EOF\n")
        return "".join(out).encode()
