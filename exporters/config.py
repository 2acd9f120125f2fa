"""Settings of the standalone exporter, with defaults fit for one host."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporters.registry import DEFAULT_MAX_PIPELINES

__all__ = ["DEFAULT_LISTEN", "ExporterConfig"]

DEFAULT_LISTEN = "127.0.0.1:9108"  # what prometheus.yml scrapes as job pipemedic-exporter


@dataclass(frozen=True)
class ExporterConfig:
    """What ``create_app`` needs besides the registry.

    ``max_body_bytes`` bounds one ``POST /events`` body (413 above it);
    ``multiprocess_dir`` adds the snapshots of worker processes to /metrics;
    ``probe_dependencies`` starts the spec's dependency probes with the app.
    """

    max_pipelines: int = DEFAULT_MAX_PIPELINES
    max_body_bytes: int = 1024 * 1024
    multiprocess_dir: Path | None = None
    probe_dependencies: bool = True
    gzip_level: int = 3
