"""The PromQL diagnosis and verification ask, built with the rule generator's builders.

Each builder takes the pipeline name (untrusted: it comes from an alert) and
returns one checked :class:`rules.promql.Expr`: selectors escape every value
with :func:`rules.promql.quote` and the finished query is parsed by the same
parser as the generated rules (:func:`rules.promql.check`), so a query that
does not parse fails where it is built, not in Prometheus. The numbers that
decide a cause are the pipeline's spec (``diagnosis:`` thresholds), shared
with verification.

Most builders are *per pipeline* (:func:`_per_pipeline`): called with a name
they return a :class:`PipelineExpr`, which can also ask the same question
for many pipelines in one query (``pipeline=~"a|b"``, every aggregation
also ``by (pipeline)``; ``receiver.diagnosis.batching`` sends it and hands
each pipeline its rows). Their every selector sits under an aggregation, so
a pipeline's own answer never carries the ``pipeline`` label.

The receiver reads raw exporter series only, never a recording rule: a
Prometheus without pipemedic's rules loaded still answers every query here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec

from rules.durations import format_duration, parse_duration
from rules.promql import Expr, agg, binop, call, check, matrix, number, one_of, quote, selector

__all__ = [
    "PipelineExpr",
    "Pipelines",
    "checkpoint_age",
    "cpu_ratio",
    "dependency_probe_slowdown",
    "dependency_up",
    "disk_free",
    "downstream_datasets",
    "errors_by_reason",
    "exporter_targets_up",
    "failed_ratio",
    "firing_pipelines",
    "heartbeat_age",
    "last_run_duration",
    "last_success_age",
    "lineage_edges",
    "mean_run_duration",
    "memory_ratio",
    "peak_memory_ratio",
    "pipeline_up",
    "recent_runs_on_same_host",
    "records_per_run",
    "run_end_age",
    "run_slowdown",
    "run_start_age",
    "seconds",
    "slow_runs",
    "staleness",
    "upstreams",
    "window",
]

_P = ParamSpec("_P")


@dataclass(frozen=True)
class Pipelines:
    """Several pipelines asked in one query: ``pipeline=~"a|b"``, grouped ``by (pipeline)``."""

    names: tuple[str, ...]


Scope = str | Pipelines
"""Whom a per-pipeline builder asks about: one pipeline, or several at once."""


@dataclass(frozen=True)
class PipelineExpr(Expr):
    """One pipeline's question, which can be asked for many pipelines at once.

    ``question`` names the builder and its other arguments: two expressions
    with the same question differ only in the pipeline. ``for_pipelines``
    builds the query for several (each answer row carries its ``pipeline``).
    """

    pipeline: str = ""
    question: tuple[Any, ...] = ()
    many: Callable[[Pipelines], Expr] | None = field(default=None, compare=False, repr=False)

    def for_pipelines(self, names: Sequence[str]) -> Expr:
        """Return the same question for ``names`` (distinct, non-empty pipeline names)."""
        assert self.many is not None
        return self.many(Pipelines(tuple(names)))


# Stands for the pipeline in a question's template (quoted, it cannot be any other literal).
_ANY_PIPELINE = "\x00pipeline\x00"
_ANY_PIPELINE_QUOTED = quote(_ANY_PIPELINE)


@functools.lru_cache(maxsize=512)
def _template(build: Callable[..., Expr], args: tuple[Any, ...], kwargs: tuple[Any, ...]) -> Expr:
    """The question built (and parsed: ``check``) once, for a stand-in pipeline name."""
    return build(_ANY_PIPELINE, *args, **dict(kwargs))


def _per_pipeline(
    build: Callable[Concatenate[Scope, _P], Expr],
) -> Callable[Concatenate[Scope, _P], Expr]:
    """Make ``build(pipeline, ...)`` return a :class:`PipelineExpr` for one named pipeline.

    Only for builders whose every selector is aggregated (so the per-pipeline
    answer has no ``pipeline`` label of its own) and which take hashable arguments.
    A pipeline's query is its question's checked template with the name quoted
    in: the same text as built directly, without parsing it again per pipeline.
    """

    @functools.wraps(build)
    def one(scope: Scope, /, *args: _P.args, **kwargs: _P.kwargs) -> Expr:
        if not isinstance(scope, str):
            return build(scope, *args, **kwargs)
        keywords = tuple(sorted(kwargs.items()))
        template = _template(build, args, keywords)
        text = template.text.replace(_ANY_PIPELINE_QUOTED, quote(scope))
        question = (build.__qualname__, args, keywords)

        def ask(pipelines: Pipelines) -> Expr:
            return build(pipelines, *args, **kwargs)

        return PipelineExpr(text, template.precedence, scope, question, ask)

    return one


def seconds(range_: str) -> float:
    """Return a PromQL range (``15m``) in seconds."""
    return parse_duration(range_)


def window(text_or_seconds: str | float) -> str:
    """Return a validated PromQL range (``15m``) from a duration text or seconds."""
    seconds = (
        parse_duration(text_or_seconds)
        if isinstance(text_or_seconds, str)
        else float(text_or_seconds)
    )
    if seconds <= 0:
        raise ValueError(f"a query window must be positive, got {text_or_seconds!r}")
    return format_duration(seconds)


def _of(metric: str, pipeline: Scope) -> Expr:
    if isinstance(pipeline, str):
        return selector(metric, pipeline=pipeline)
    return selector(metric, {"pipeline": one_of(pipeline.names)})


def _by(pipeline: Scope, *labels: str) -> tuple[str, ...]:
    """An aggregation's grouping: ``labels``, and ``pipeline`` when asking for several."""
    return labels if isinstance(pipeline, str) else (*labels, "pipeline")


def _max(metric: str, pipeline: Scope, *labels: str) -> Expr:
    return agg("max", _of(metric, pipeline), _by(pipeline, *labels))


def _age(metric: str, pipeline: Scope) -> Expr:
    """Seconds since the latest timestamp a pipeline's gauge holds."""
    return check(binop(call("time"), "-", _max(metric, pipeline)))


def _increase(metric: str, pipeline: Scope, range_: str, by: tuple[str, ...] = ()) -> Expr:
    grew = call("increase", matrix(_of(metric, pipeline), window(range_)))
    return agg("sum", grew, _by(pipeline, *by))


@_per_pipeline
def errors_by_reason(pipeline: Scope, range_: str) -> Expr:
    """Errors of the pipeline per (category, reason) that grew within the range."""
    grew = _increase("pipeline_errors_total", pipeline, range_, ("category", "reason"))
    return check(binop(grew, ">", number(0)))


@_per_pipeline
def dependency_up(pipeline: Scope) -> Expr:
    """Every probed dependency of the pipeline, 1 up, 0 down."""
    return check(_max("pipeline_dependency_up", pipeline, "dependency"))


@_per_pipeline
def dependency_probe_slowdown(pipeline: Scope, baseline: str) -> Expr:
    """Each dependency's last probe duration over its mean across the baseline."""
    probe = _of("pipeline_dependency_probe_duration_seconds", pipeline)
    mean = call("avg_over_time", matrix(probe, window(baseline)))
    by = _by(pipeline, "dependency")
    return check(binop(agg("max", probe, by), "/", agg("max", mean, by)))


@_per_pipeline
def pipeline_up(pipeline: Scope) -> Expr:
    """Liveness as the exporter judges it: 1 up, 0 down (stale heartbeat or reported down)."""
    return check(_max("pipeline_up", pipeline))


@_per_pipeline
def heartbeat_age(pipeline: Scope) -> Expr:
    """Seconds since the pipeline's last sign of life (heartbeat, run start or end)."""
    return _age("pipeline_last_heartbeat_timestamp_seconds", pipeline)


def exporter_targets_up(pipeline: str, range_: str) -> Expr:
    """``up`` of every scrape target that exported the pipeline within the range.

    A target that stopped answering marks its series stale at once, so the
    pipeline's own series are looked up over the range (``last_over_time``).
    ``PipelineExporterDown`` names its scrape job as its pipeline, so the
    targets of a job of that name are included.
    """
    seen = call("last_over_time", matrix(_of("pipeline_runs_total", pipeline), window(range_)))
    exported = binop(selector("up"), "and", seen, on=("job", "instance"))
    return check(binop(exported, "or", selector("up", job=pipeline)))


def _memory(pipeline: Scope) -> Expr:
    usage = _max("pipeline_memory_usage_bytes", pipeline)
    return binop(usage, "/", _max("pipeline_memory_limit_bytes", pipeline))


@_per_pipeline
def memory_ratio(pipeline: Scope) -> Expr:
    """Memory in use as a share of the limit."""
    return check(_memory(pipeline))


@_per_pipeline
def peak_memory_ratio(pipeline: Scope, range_: str) -> Expr:
    """The highest memory use within the range over the limit (before a process died)."""
    usage = matrix(_of("pipeline_memory_usage_bytes", pipeline), window(range_))
    peak = agg("max", call("max_over_time", usage), _by(pipeline))
    return check(binop(peak, "/", _max("pipeline_memory_limit_bytes", pipeline)))


@_per_pipeline
def disk_free(pipeline: Scope) -> Expr:
    return check(agg("min", _of("pipeline_disk_free_bytes", pipeline), _by(pipeline)))


@_per_pipeline
def cpu_ratio(pipeline: Scope) -> Expr:
    return check(_max("pipeline_cpu_usage_ratio", pipeline))


@_per_pipeline
def staleness(pipeline: Scope) -> Expr:
    """Seconds since the pipeline's output data was last refreshed."""
    return _age("pipeline_last_update_timestamp_seconds", pipeline)


@_per_pipeline
def checkpoint_age(pipeline: Scope) -> Expr:
    """Seconds since the last good checkpoint (what a rollback would return to)."""
    return _age("pipeline_checkpoint_timestamp_seconds", pipeline)


@_per_pipeline
def run_start_age(pipeline: Scope) -> Expr:
    """Seconds since the pipeline's last run started."""
    return _age("pipeline_last_run_start_timestamp_seconds", pipeline)


@_per_pipeline
def run_end_age(pipeline: Scope) -> Expr:
    """Seconds since the pipeline's last run finished (either way)."""
    return _age("pipeline_last_run_end_timestamp_seconds", pipeline)


@_per_pipeline
def last_success_age(pipeline: Scope) -> Expr:
    """Seconds since the pipeline's last successful run finished."""
    return _age("pipeline_last_success_timestamp_seconds", pipeline)


@_per_pipeline
def failed_ratio(pipeline: Scope, range_: str) -> Expr:
    """Records failed over records processed within the range."""
    failed = _increase("pipeline_records_failed_total", pipeline, range_)
    processed = _increase("pipeline_records_processed_total", pipeline, range_)
    return check(binop(failed, "/", processed))


@_per_pipeline
def last_run_duration(pipeline: Scope) -> Expr:
    """Duration of the pipeline's last finished run."""
    return check(_max("pipeline_last_run_duration_seconds", pipeline))


@_per_pipeline
def mean_run_duration(pipeline: Scope, baseline: str) -> Expr:
    """The pipeline's mean run duration across the baseline (its recent runs)."""
    total = _increase("pipeline_run_duration_seconds_sum", pipeline, baseline)
    count = _increase("pipeline_run_duration_seconds_count", pipeline, baseline)
    return check(binop(total, "/", count))


@_per_pipeline
def records_per_run(pipeline: Scope, range_: str) -> Expr:
    """Records processed per finished run within the range."""
    records = _increase("pipeline_records_processed_total", pipeline, range_)
    return check(binop(records, "/", _increase("pipeline_runs_total", pipeline, range_)))


def recent_runs_on_same_host(pipeline: str, recent: str) -> Expr:
    """Pipelines on the pipeline's host that finished a run within ``recent``.

    The host is the scrape target's ``instance`` (the exporter a pipeline
    reports through: its own process, or the host's standalone exporter).
    Only these are then compared with their baseline (:func:`slow_runs`), so
    the long-range part of the question reads a handful of series, not all.
    """
    by = ("pipeline", "instance")
    runs = call("increase", matrix(selector("pipeline_runs_total"), window(recent)))
    finished = binop(agg("sum", runs, by), ">", number(0))
    host = agg("max", _of("pipeline_runs_total", pipeline), ("instance",))
    return check(binop(finished, "and", host, on=("instance",)))


def slow_runs(pipelines: Sequence[str], baseline: str, ratio: float) -> Expr:
    """Those of ``pipelines`` whose last run took ``ratio`` times their baseline mean or more."""
    if not pipelines:
        raise ValueError("slow_runs needs at least one pipeline")
    only = {"pipeline": one_of(pipelines)}
    by = ("pipeline", "instance")

    def grew(metric: str) -> Expr:
        return agg("sum", call("increase", matrix(selector(metric, only), window(baseline))), by)

    last = agg("max", selector("pipeline_last_run_duration_seconds", only), by)
    mean = binop(
        grew("pipeline_run_duration_seconds_sum"), "/", grew("pipeline_run_duration_seconds_count")
    )
    return check(binop(binop(last, "/", mean), ">=", number(ratio)))


@_per_pipeline
def run_slowdown(pipeline: Scope, baseline: str, recent: str) -> Expr:
    """The last run over the baseline mean, if that run finished within ``recent``."""
    ratio = binop(last_run_duration(pipeline), "/", mean_run_duration(pipeline, baseline))
    finished = binop(_increase("pipeline_runs_total", pipeline, recent), ">", number(0))
    return check(binop(ratio, "and", finished))


@_per_pipeline
def upstreams(pipeline: Scope) -> Expr:
    """The pipeline's upstream pipelines (lineage edges and the spec's ``upstream:``)."""
    return check(_max("pipeline_upstream_info", pipeline, "upstream"))


def lineage_edges() -> Expr:
    """Every edge ``upstream -> pipeline`` of the lineage graph, in one query (cached by
    ``receiver.incidents.lineage``: one lookup serves every alert until it expires)."""
    return check(agg("max", selector("pipeline_upstream_info"), ("pipeline", "upstream")))


def downstream_datasets(per_pipeline: int) -> Expr:
    """The datasets every pipeline with an upstream writes, newest ``per_pipeline`` each.

    Those pipelines are the ones any blast radius can list, so one query (cached
    with the graph by ``receiver.incidents.lineage``) serves every incident; the
    exporter bounds the datasets overall (``--max-datasets``), ``topk`` per pipeline.
    """
    written = binop(
        selector("pipeline_dataset_last_update_timestamp_seconds"),
        "and",
        selector("pipeline_upstream_info"),
        on=("pipeline",),
    )
    newest = agg("max", written, ("pipeline", "dataset"))
    return check(agg("topk", newest, ("pipeline",), param=per_pipeline))


def firing_pipelines(pipelines: Sequence[str]) -> Expr:
    """Those of ``pipelines`` with a firing alert (Prometheus' own ``ALERTS`` series)."""
    if not pipelines:
        raise ValueError("firing_pipelines needs at least one pipeline")
    only = {"pipeline": one_of(pipelines)}
    return check(agg("max", selector("ALERTS", only, alertstate="firing"), ("pipeline",)))
