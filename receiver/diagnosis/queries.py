"""The PromQL diagnosis and verification ask, built with the rule generator's builders.

Each builder takes the pipeline name (untrusted: it comes from an alert) and
returns one checked :class:`rules.promql.Expr`: selectors escape every value
with :func:`rules.promql.quote` and the finished query is parsed by the same
parser as the generated rules (:func:`rules.promql.check`), so a query that
does not parse fails where it is built, not in Prometheus. The numbers that
decide a cause are the pipeline's spec (``diagnosis:`` thresholds), shared
with verification.

The receiver reads raw exporter series only, never a recording rule: a
Prometheus without pipemedic's rules loaded still answers every query here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rules.durations import format_duration, parse_duration
from rules.promql import Expr, agg, binop, call, check, matrix, number, selector

__all__ = [
    "checkpoint_age",
    "cpu_ratio",
    "dependency_probe_slowdown",
    "dependency_up",
    "disk_free",
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


def _of(metric: str, pipeline: str) -> Expr:
    return selector(metric, pipeline=pipeline)


def _age(metric: str, pipeline: str) -> Expr:
    """Seconds since the latest timestamp a pipeline's gauge holds."""
    return check(binop(call("time"), "-", agg("max", _of(metric, pipeline))))


def _increase(metric: str, pipeline: str, range_: str, by: tuple[str, ...] = ()) -> Expr:
    return agg("sum", call("increase", matrix(_of(metric, pipeline), window(range_))), by)


def errors_by_reason(pipeline: str, range_: str) -> Expr:
    """Errors of the pipeline per (category, reason) that grew within the range."""
    grew = _increase("pipeline_errors_total", pipeline, range_, ("category", "reason"))
    return check(binop(grew, ">", number(0)))


def dependency_up(pipeline: str) -> Expr:
    """Every probed dependency of the pipeline, 1 up, 0 down."""
    return check(agg("max", _of("pipeline_dependency_up", pipeline), ("dependency",)))


def dependency_probe_slowdown(pipeline: str, baseline: str) -> Expr:
    """Each dependency's last probe duration over its mean across the baseline."""
    probe = _of("pipeline_dependency_probe_duration_seconds", pipeline)
    mean = call("avg_over_time", matrix(probe, window(baseline)))
    by = ("dependency",)
    return check(binop(agg("max", probe, by), "/", agg("max", mean, by)))


def pipeline_up(pipeline: str) -> Expr:
    """Liveness as the exporter judges it: 1 up, 0 down (stale heartbeat or reported down)."""
    return check(agg("max", _of("pipeline_up", pipeline)))


def heartbeat_age(pipeline: str) -> Expr:
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


def _memory(pipeline: str) -> Expr:
    usage = agg("max", _of("pipeline_memory_usage_bytes", pipeline))
    return binop(usage, "/", agg("max", _of("pipeline_memory_limit_bytes", pipeline)))


def memory_ratio(pipeline: str) -> Expr:
    """Memory in use as a share of the limit."""
    return check(_memory(pipeline))


def peak_memory_ratio(pipeline: str, range_: str) -> Expr:
    """The highest memory use within the range over the limit (before a process died)."""
    usage = matrix(_of("pipeline_memory_usage_bytes", pipeline), window(range_))
    peak = agg("max", call("max_over_time", usage))
    return check(binop(peak, "/", agg("max", _of("pipeline_memory_limit_bytes", pipeline))))


def disk_free(pipeline: str) -> Expr:
    return check(agg("min", _of("pipeline_disk_free_bytes", pipeline)))


def cpu_ratio(pipeline: str) -> Expr:
    return check(agg("max", _of("pipeline_cpu_usage_ratio", pipeline)))


def staleness(pipeline: str) -> Expr:
    """Seconds since the pipeline's output data was last refreshed."""
    return _age("pipeline_last_update_timestamp_seconds", pipeline)


def checkpoint_age(pipeline: str) -> Expr:
    """Seconds since the last good checkpoint (what a rollback would return to)."""
    return _age("pipeline_checkpoint_timestamp_seconds", pipeline)


def run_start_age(pipeline: str) -> Expr:
    """Seconds since the pipeline's last run started."""
    return _age("pipeline_last_run_start_timestamp_seconds", pipeline)


def run_end_age(pipeline: str) -> Expr:
    """Seconds since the pipeline's last run finished (either way)."""
    return _age("pipeline_last_run_end_timestamp_seconds", pipeline)


def last_success_age(pipeline: str) -> Expr:
    """Seconds since the pipeline's last successful run finished."""
    return _age("pipeline_last_success_timestamp_seconds", pipeline)


def failed_ratio(pipeline: str, range_: str) -> Expr:
    """Records failed over records processed within the range."""
    failed = _increase("pipeline_records_failed_total", pipeline, range_)
    processed = _increase("pipeline_records_processed_total", pipeline, range_)
    return check(binop(failed, "/", processed))


def last_run_duration(pipeline: str) -> Expr:
    """Duration of the pipeline's last finished run."""
    return check(agg("max", _of("pipeline_last_run_duration_seconds", pipeline)))


def mean_run_duration(pipeline: str, baseline: str) -> Expr:
    """The pipeline's mean run duration across the baseline (its recent runs)."""
    total = _increase("pipeline_run_duration_seconds_sum", pipeline, baseline)
    count = _increase("pipeline_run_duration_seconds_count", pipeline, baseline)
    return check(binop(total, "/", count))


def records_per_run(pipeline: str, range_: str) -> Expr:
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
    only = {"pipeline": "=~" + "|".join(re.escape(name) for name in pipelines)}
    by = ("pipeline", "instance")

    def grew(metric: str) -> Expr:
        return agg("sum", call("increase", matrix(selector(metric, only), window(baseline))), by)

    last = agg("max", selector("pipeline_last_run_duration_seconds", only), by)
    mean = binop(
        grew("pipeline_run_duration_seconds_sum"), "/", grew("pipeline_run_duration_seconds_count")
    )
    return check(binop(binop(last, "/", mean), ">=", number(ratio)))


def run_slowdown(pipeline: str, baseline: str, recent: str) -> Expr:
    """The last run over the baseline mean, if that run finished within ``recent``."""
    ratio = binop(last_run_duration(pipeline), "/", mean_run_duration(pipeline, baseline))
    finished = binop(_increase("pipeline_runs_total", pipeline, recent), ">", number(0))
    return check(binop(ratio, "and", finished))


def upstreams(pipeline: str) -> Expr:
    """The pipeline's upstream pipelines (lineage edges and the spec's ``upstream:``)."""
    return check(agg("max", _of("pipeline_upstream_info", pipeline), ("upstream",)))


def lineage_edges() -> Expr:
    """Every edge ``upstream -> pipeline`` of the lineage graph, in one query (cached by
    ``receiver.incidents.lineage``: one lookup serves every alert until it expires)."""
    return check(agg("max", selector("pipeline_upstream_info"), ("pipeline", "upstream")))


def firing_pipelines(pipelines: Sequence[str]) -> Expr:
    """Those of ``pipelines`` with a firing alert (Prometheus' own ``ALERTS`` series)."""
    if not pipelines:
        raise ValueError("firing_pipelines needs at least one pipeline")
    only = {"pipeline": "=~" + "|".join(re.escape(name) for name in pipelines)}
    return check(agg("max", selector("ALERTS", only, alertstate="firing"), ("pipeline",)))
