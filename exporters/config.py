"""Settings of the standalone exporter, with defaults fit for one host."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from exporters.openlineage.graph import DEFAULT_MAX_DATASETS
from exporters.openlineage.runs import DEFAULT_MAX_OPEN_RUNS
from exporters.registry import DEFAULT_MAX_PIPELINES

__all__ = ["DEFAULT_LISTEN", "ExporterConfig"]

DEFAULT_LISTEN = "127.0.0.1:9108"  # what prometheus.yml scrapes as job pipemedic-exporter


@dataclass(frozen=True)
class ExporterConfig:
    """What ``create_app`` needs besides the registry.

    ``max_body_bytes`` bounds one ``POST /events`` body (413 above it);
    ``multiprocess_dir`` adds the snapshots of worker processes to /metrics;
    ``probe_dependencies`` starts the spec's dependency probes with the app;
    ``max_datasets`` and ``max_open_runs`` bound what ``POST /api/v1/lineage``
    remembers; ``bearer_token``, when set, is required on both POST endpoints.
    ``expect_listed`` exports the spec's pipelines from start-up as awaiting
    their first report (``pipemedic exporter --spec`` sets it).
    """

    max_pipelines: int = DEFAULT_MAX_PIPELINES
    max_body_bytes: int = 1024 * 1024
    multiprocess_dir: Path | None = None
    probe_dependencies: bool = True
    expect_listed: bool = False
    gzip_level: int = 3
    max_datasets: int = DEFAULT_MAX_DATASETS
    max_open_runs: int = DEFAULT_MAX_OPEN_RUNS
    bearer_token: str | None = field(default=None, repr=False)
