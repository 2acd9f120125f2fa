"""The PromQL diagnosis and verification ask, built from escaped selectors.

Each builder takes the pipeline name (untrusted: it comes from an alert) and
returns one query; nothing here glues alert text into PromQL except through
:func:`receiver.diagnosis.prometheus.selector`. Thresholds that decide a resource cause
live here too, so diagnosis and verification judge by the same numbers.
"""

from __future__ import annotations

from typing import Final

from receiver.diagnosis.prometheus import selector
from rules.durations import format_duration, parse_duration

__all__ = [
    "CPU_RATIO_LIMIT",
    "DISK_FREE_MIN_BYTES",
    "MEMORY_RATIO_LIMIT",
    "checkpoint_age",
    "cpu_ratio",
    "dependency_up",
    "disk_free",
    "errors_by_reason",
    "failed_ratio",
    "memory_ratio",
    "pipeline_up",
    "staleness",
    "window",
]

# A pipeline using this share of its memory limit is at the limit.
MEMORY_RATIO_LIMIT: Final = 0.9
# CPU usage ratio (0..1) from which a pipeline counts as saturated.
CPU_RATIO_LIMIT: Final = 0.9
# Free disk below this many bytes counts as full.
DISK_FREE_MIN_BYTES: Final = 1024**3


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


def errors_by_reason(pipeline: str, range_: str) -> str:
    """Errors of the pipeline per (category, reason) that grew within the range."""
    errors = selector("pipeline_errors_total", pipeline=pipeline)
    return f"sum by (category, reason) (increase({errors}[{window(range_)}])) > 0"


def dependency_up(pipeline: str) -> str:
    """Every probed dependency of the pipeline, 1 up, 0 down."""
    return f"max by (dependency) ({selector('pipeline_dependency_up', pipeline=pipeline)})"


def pipeline_up(pipeline: str) -> str:
    return f"max({selector('pipeline_up', pipeline=pipeline)})"


def memory_ratio(pipeline: str) -> str:
    """Memory in use as a share of the limit."""
    usage = selector("pipeline_memory_usage_bytes", pipeline=pipeline)
    limit = selector("pipeline_memory_limit_bytes", pipeline=pipeline)
    return f"max({usage}) / max({limit})"


def disk_free(pipeline: str) -> str:
    return f"min({selector('pipeline_disk_free_bytes', pipeline=pipeline)})"


def cpu_ratio(pipeline: str) -> str:
    return f"max({selector('pipeline_cpu_usage_ratio', pipeline=pipeline)})"


def staleness(pipeline: str) -> str:
    """Seconds since the pipeline's output data was last refreshed."""
    return f"time() - max({selector('pipeline_last_update_timestamp_seconds', pipeline=pipeline)})"


def checkpoint_age(pipeline: str) -> str:
    """Seconds since the last good checkpoint (what a rollback would return to)."""
    return f"time() - max({selector('pipeline_checkpoint_timestamp_seconds', pipeline=pipeline)})"


def failed_ratio(pipeline: str, range_: str) -> str:
    """Records failed over records processed within the range."""
    rng = window(range_)
    failed = selector("pipeline_records_failed_total", pipeline=pipeline)
    processed = selector("pipeline_records_processed_total", pipeline=pipeline)
    return f"sum(increase({failed}[{rng}])) / sum(increase({processed}[{rng}]))"
