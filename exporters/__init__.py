"""Pipeline metrics for Prometheus: Python API, standalone exporter, probes, Pushgateway.

Four ways in, one set of metrics (names in docs/vocabulary.md): the Python
API below, ``POST /events`` on the standalone exporter (``create_app`` /
``pipemedic exporter``) for pipelines in any language, OpenLineage run
events at ``POST /api/v1/lineage`` for orchestrators that already emit them
(``exporters.openlineage``, docs/openlineage.md), and ``pushed_run`` /
``push_pipeline`` for short batch jobs. ``pipeline_up`` is decided at
scrape time from the heartbeat age, so a silent pipeline goes down by itself.

Example::

    from aiohttp import web
    from exporters import PipelineRegistry, create_app
    from rules.spec import load_spec

    registry = PipelineRegistry(load_spec("rules/pipelines.yml"))
    orders = registry.pipeline("etl_orders")

    with orders.run() as run:            # success, or failure + category/reason on exception
        run.processed(10_000)
        run.failed(12)
    orders.heartbeat(disk_path="/data")  # memory sampled; disk free of /data
    orders.data_updated()
    orders.checkpoint()
    orders.error("connectivity", "rate_limited")

    web.run_app(create_app(registry), host="127.0.0.1", port=9108)
"""

from __future__ import annotations

from exporters.api import Pipeline, Run, sample_memory
from exporters.app import create_app
from exporters.classify import (
    DEFAULT_RULES,
    Classifier,
    ExceptionClassifier,
    PipelineFailure,
    classify_exception,
)
from exporters.config import DEFAULT_LISTEN, ExporterConfig
from exporters.errors import (
    CardinalityError,
    ExporterError,
    FieldProblem,
    InvalidEventError,
    PushError,
)
from exporters.events import load_schema, parse_events, to_changes
from exporters.multiprocess import DirectoryReader, SnapshotWriter, worker_registry
from exporters.probes import PROBERS, Prober, ProbeScheduler
from exporters.pushgateway import push_pipeline, pushed_run
from exporters.registry import PipelineRegistry
from exporters.render import Exposition
from exporters.state import PipelineState

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_RULES",
    "PROBERS",
    "CardinalityError",
    "Classifier",
    "DirectoryReader",
    "ExceptionClassifier",
    "ExporterConfig",
    "ExporterError",
    "Exposition",
    "FieldProblem",
    "InvalidEventError",
    "Pipeline",
    "PipelineFailure",
    "PipelineRegistry",
    "PipelineState",
    "ProbeScheduler",
    "Prober",
    "PushError",
    "Run",
    "SnapshotWriter",
    "classify_exception",
    "create_app",
    "load_schema",
    "parse_events",
    "push_pipeline",
    "pushed_run",
    "sample_memory",
    "to_changes",
    "worker_registry",
]
