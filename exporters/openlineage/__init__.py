"""OpenLineage in: run events from Airflow, dbt-ol, Spark and Dagster become pipeline metrics.

``POST /api/v1/lineage`` on the exporter takes what the OpenLineage HTTP
transport sends; ``model`` decodes and validates it, ``naming`` maps its
job to a pipeline, ``recorder`` turns it into the registry changes the
other ways in make (runs, errors, records, freshness) and feeds the lineage
``graph`` (``pipeline_upstream_info``, ``GET /lineage``), with ``runs``
remembering open runs within a TTL and a cap. docs/openlineage.md tells
users how to point their orchestrators here.

Example::

    recorder = LineageRecorder(registry, max_datasets=10_000, max_open_runs=100_000)
    recorder.record(decode_event(body))
    recorder.to_json()    # {"pipelines", "datasets", "edges", "cycles"}
"""

from __future__ import annotations

from exporters.openlineage.endpoint import LineageEndpoint
from exporters.openlineage.failure import classify_failure
from exporters.openlineage.graph import DEFAULT_MAX_DATASETS, LineageGraph
from exporters.openlineage.model import EVENT_TYPES, LineageEvent, decode_event
from exporters.openlineage.naming import PipelineMapper, dataset_label, pipeline_name
from exporters.openlineage.recorder import LineageRecorder, Outcome
from exporters.openlineage.runs import DEFAULT_MAX_OPEN_RUNS, RunMemory

__all__ = [
    "DEFAULT_MAX_DATASETS",
    "DEFAULT_MAX_OPEN_RUNS",
    "EVENT_TYPES",
    "LineageEndpoint",
    "LineageEvent",
    "LineageGraph",
    "LineageRecorder",
    "Outcome",
    "PipelineMapper",
    "RunMemory",
    "classify_failure",
    "dataset_label",
    "decode_event",
    "pipeline_name",
]
