"""The metrics pipemedic reads and writes, one row each: name, type, labels, help.

The exporter's renderer takes its families (name, type, help, order) from
:data:`METRICS`; the rule linter knows a selector can match because its
metric is here (histograms also as ``_bucket``/``_sum``/``_count``); the
label vocabularies (``status``, ``category``) are checked from
``values``. Adding a metric is one row here plus the code that produces it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from pipemedic.vocabulary.causes import CATEGORIES

__all__ = [
    "DURATION_BUCKETS",
    "LABEL_VALUE_PATTERN",
    "METRICS",
    "REASON_PATTERN",
    "RESOURCE_FIELDS",
    "Metric",
    "Source",
    "family_names",
    "metric",
    "metrics_from",
]

# A pipeline, dependency, dataset or team name: also rules/schema's "$defs/labelValue".
LABEL_VALUE_PATTERN: Final = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$"
# Reasons are the causes' reasons (timeout, disk_full, ...) or custom snake_case ones.
REASON_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"

# Run durations: a data pipeline runs from seconds to most of a day.
DURATION_BUCKETS: Final = (
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    math.inf,
)


class Source(StrEnum):
    """Who writes a metric."""

    # one family per pipeline state, rendered by exporters/render.py in table order
    PIPELINE = "pipeline"
    # the exporter's lineage graph (exporters' lineage code)
    LINEAGE = "lineage"
    # the exporter about itself (exporters/health.py)
    EXPORTER = "exporter"
    # Prometheus per target, and the Pushgateway per push
    PROMETHEUS = "prometheus"


@dataclass(frozen=True)
class Metric:
    """One metric family.

    ``labels`` besides ``job``/``instance``; ``values``: the only values a
    label takes, where that is fixed; ``heartbeat``: the heartbeat field
    that sets this gauge.
    """

    name: str
    type: str
    labels: tuple[str, ...]
    help: str
    source: Source = Source.PIPELINE
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    heartbeat: str | None = None

    def series_names(self) -> tuple[str, ...]:
        """Return the names its samples carry (a histogram's three, else its own)."""
        if self.type == "histogram":
            return tuple(f"{self.name}{s}" for s in ("_bucket", "_sum", "_count"))
        if self.type == "summary":
            return (self.name, f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)

    def series_labels(self, series: str) -> frozenset[str]:
        """Return the labels of one of its series (``le`` on a histogram's buckets)."""
        extra = {"le"} if series.endswith("_bucket") and self.type == "histogram" else set()
        return frozenset(self.labels) | extra


_P = ("pipeline",)

METRICS: Final[tuple[Metric, ...]] = (
    Metric(
        "pipeline_up",
        "gauge",
        _P,
        "1 while the pipeline is alive (heartbeat fresh, not marked down).",
    ),
    Metric(
        "pipeline_runs_total",
        "counter",
        (*_P, "status"),
        "Finished runs by status.",
        values={"status": ("success", "failure")},
    ),
    Metric("pipeline_records_processed_total", "counter", _P, "Records read."),
    Metric("pipeline_records_failed_total", "counter", _P, "Records that failed."),
    Metric(
        "pipeline_errors_total",
        "counter",
        (*_P, "category", "reason"),
        "Errors by incident category and reason.",
        values={"category": CATEGORIES},
    ),
    Metric("pipeline_run_duration_seconds", "histogram", _P, "Run durations."),
    Metric("pipeline_last_run_duration_seconds", "gauge", _P, "Duration of the last finished run."),
    Metric(
        "pipeline_last_success_timestamp_seconds", "gauge", _P, "End of the last successful run."
    ),
    Metric(
        "pipeline_last_update_timestamp_seconds",
        "gauge",
        _P,
        "When the pipeline's output data was last refreshed.",
    ),
    Metric(
        "pipeline_checkpoint_timestamp_seconds", "gauge", _P, "Last good checkpoint, for rollback."
    ),
    Metric(
        "pipeline_last_heartbeat_timestamp_seconds",
        "gauge",
        _P,
        "Last sign of life (heartbeat, run start or end); pipeline_up is 0 a timeout after it.",
    ),
    Metric("pipeline_last_run_start_timestamp_seconds", "gauge", _P, "Start of the last run."),
    Metric("pipeline_last_run_end_timestamp_seconds", "gauge", _P, "End of the last finished run."),
    Metric(
        "pipeline_memory_usage_bytes",
        "gauge",
        _P,
        "Memory in use, reported with the heartbeat.",
        heartbeat="memory_bytes",
    ),
    Metric(
        "pipeline_memory_limit_bytes",
        "gauge",
        _P,
        "Memory limit, reported with the heartbeat.",
        heartbeat="memory_limit_bytes",
    ),
    Metric(
        "pipeline_disk_free_bytes",
        "gauge",
        _P,
        "Free disk, reported with the heartbeat.",
        heartbeat="disk_free_bytes",
    ),
    Metric(
        "pipeline_cpu_usage_ratio",
        "gauge",
        _P,
        "CPU in use (0..1), reported with the heartbeat.",
        heartbeat="cpu_usage_ratio",
    ),
    Metric(
        "pipeline_dependency_up", "gauge", (*_P, "dependency"), "1 if a probed dependency answers."
    ),
    Metric(
        "pipeline_dependency_probe_duration_seconds",
        "gauge",
        (*_P, "dependency"),
        "Duration of the last dependency probe.",
    ),
    Metric(
        "pipeline_awaiting_first_report_timestamp_seconds",
        "gauge",
        _P,
        "Since when the exporter has waited for a first report from a pipeline its spec "
        "lists (absent once the pipeline reported).",
    ),
    # the lineage graph and the OpenLineage mapping (exporters/openlineage/)
    Metric(
        "pipeline_upstream_info",
        "gauge",
        (*_P, "upstream"),
        "1 per lineage edge upstream -> pipeline (declared in the spec or learned).",
        Source.LINEAGE,
    ),
    Metric(
        "pipeline_dataset_last_update_timestamp_seconds",
        "gauge",
        (*_P, "dataset"),
        "When the pipeline last completed a run writing the dataset.",
        Source.LINEAGE,
    ),
    Metric(
        "pipeline_last_run_output_records",
        "gauge",
        _P,
        "Rows written by the last completed run (OpenLineage outputStatistics).",
        Source.LINEAGE,
    ),
    Metric(
        "pipeline_dependency_cycle",
        "gauge",
        _P,
        "1 for a pipeline on a cycle of the lineage graph (GET /lineage lists them).",
        Source.LINEAGE,
    ),
    # the exporter about itself
    Metric(
        "pipemedic_exporter_events_accepted_total",
        "counter",
        (),
        "Events accepted through POST /events.",
        Source.EXPORTER,
    ),
    Metric(
        "pipemedic_exporter_events_rejected_total",
        "counter",
        ("reason",),
        "Events refused through POST /events and /api/v1/lineage, by reason.",
        Source.EXPORTER,
    ),
    Metric(
        "pipemedic_exporter_lineage_events_total",
        "counter",
        ("event_type", "outcome"),
        "OpenLineage events by type and outcome (applied, duplicate).",
        Source.EXPORTER,
        values={"outcome": ("applied", "duplicate")},
    ),
    Metric(
        "pipemedic_exporter_lineage_open_runs",
        "gauge",
        (),
        "OpenLineage runs remembered (open or recently ended).",
        Source.EXPORTER,
    ),
    Metric(
        "pipemedic_exporter_lineage_max_open_runs",
        "gauge",
        (),
        "Bound on remembered OpenLineage runs (--max-open-runs).",
        Source.EXPORTER,
    ),
    Metric(
        "pipemedic_exporter_lineage_run_ttl_seconds",
        "gauge",
        (),
        "How long an OpenLineage run without news is remembered (openlineage.run_ttl).",
        Source.EXPORTER,
    ),
    Metric(
        "pipemedic_exporter_lineage_runs_evicted_total",
        "counter",
        ("reason",),
        "OpenLineage runs forgotten, by reason (ttl, cap).",
        Source.EXPORTER,
        values={"reason": ("ttl", "cap")},
    ),
    Metric(
        "pipemedic_exporter_lineage_datasets",
        "gauge",
        (),
        "Datasets in the lineage graph.",
        Source.EXPORTER,
    ),
    Metric(
        "pipemedic_exporter_max_datasets",
        "gauge",
        (),
        "Bound on datasets in the lineage graph (--max-datasets).",
        Source.EXPORTER,
    ),
    Metric(
        "pipemedic_exporter_lineage_datasets_refused_total",
        "counter",
        (),
        "New datasets left out of the lineage graph because of --max-datasets.",
        Source.EXPORTER,
    ),
    Metric(
        "pipemedic_exporter_lineage_edges",
        "gauge",
        ("source",),
        "Lineage edges by source (declared, learned).",
        Source.EXPORTER,
        values={"source": ("declared", "learned")},
    ),
    Metric(
        "pipemedic_exporter_scrape_duration_seconds",
        "summary",
        (),
        "Time spent rendering /metrics.",
        Source.EXPORTER,
    ),
    Metric(
        "pipemedic_exporter_last_scrape_duration_seconds",
        "gauge",
        (),
        "Time spent rendering the previous /metrics.",
        Source.EXPORTER,
    ),
    Metric("pipemedic_exporter_pipelines", "gauge", (), "Pipelines tracked.", Source.EXPORTER),
    Metric(
        "pipemedic_exporter_max_pipelines",
        "gauge",
        (),
        "Configured bound on tracked pipelines.",
        Source.EXPORTER,
    ),
    Metric(
        "pipemedic_exporter_pipelines_refused_total",
        "counter",
        (),
        "Changes refused because of the cardinality bound (any source).",
        Source.EXPORTER,
    ),
    # Prometheus' own, per target; the Pushgateway's, per push
    Metric("up", "gauge", (), "1 if Prometheus scraped the target.", Source.PROMETHEUS),
    Metric("scrape_duration_seconds", "gauge", (), "How long the scrape took.", Source.PROMETHEUS),
    Metric("scrape_samples_scraped", "gauge", (), "Samples the target exposed.", Source.PROMETHEUS),
    Metric("push_time_seconds", "gauge", _P, "Last successful push.", Source.PROMETHEUS),
    Metric("push_failure_time_seconds", "gauge", _P, "Last failed push.", Source.PROMETHEUS),
)

_BY_NAME: Final[Mapping[str, Metric]] = MappingProxyType({m.name: m for m in METRICS})

# heartbeat field -> the gauge it sets (exporters' events and Python API)
RESOURCE_FIELDS: Final[Mapping[str, str]] = MappingProxyType(
    {m.heartbeat: m.name for m in METRICS if m.heartbeat is not None}
)


def metric(name: str) -> Metric:
    """Return the row of a metric family by its name."""
    return _BY_NAME[name]


def metrics_from(source: Source) -> tuple[Metric, ...]:
    """Return the families one source writes, in table (exposition) order."""
    return tuple(m for m in METRICS if m.source == source)


def family_names() -> dict[str, frozenset[str]]:
    """Return every series name any family has -> its labels (besides job/instance)."""
    return {s: m.series_labels(s) for m in METRICS for s in m.series_names()}
