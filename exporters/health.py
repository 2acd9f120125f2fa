"""Count what the exporter itself does: events accepted and rejected, scrape time.

An exporter that silently drops events is worse than none, so every refusal
is counted by reason (``schema``, ``invalid_json``, ``encoding``,
``too_large``, ``cardinality``) next to the pipeline metrics it protects.
"""

from __future__ import annotations

import threading
from typing import Final

from pipemedic.vocabulary.metrics import metric

__all__ = ["REJECT_REASONS", "HealthMetrics"]

REJECT_REASONS: Final = (
    "invalid_json",
    "encoding",
    "schema",
    "too_large",
    "cardinality",
    "content_type",
    "unauthorized",
)


class HealthMetrics:
    """The exporter's own counters; thread-safe, rendered after the pipeline metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events_accepted = 0
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)
        self.scrape_count = 0
        self.scrape_seconds_sum = 0.0
        self.last_scrape_seconds = 0.0

    def accepted(self, n: int) -> None:
        with self._lock:
            self.events_accepted += n

    def reject(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.rejected[reason] = self.rejected.get(reason, 0) + n

    def observe_scrape(self, seconds: float) -> None:
        with self._lock:
            self.scrape_count += 1
            self.scrape_seconds_sum += seconds
            self.last_scrape_seconds = seconds

    def render(
        self, pipelines: int, max_pipelines: int, refused: int, openmetrics: bool = False
    ) -> str:
        """Return the exposition lines of the exporter's own metrics."""

        def family(name: str) -> str:
            row = metric(name)
            counter = openmetrics and row.type == "counter"
            shown = name.removesuffix("_total") if counter else name
            return f"# HELP {shown} {row.help}\n# TYPE {shown} {row.type}\n"

        with self._lock:
            out = [
                family("pipemedic_exporter_events_accepted_total"),
                f"pipemedic_exporter_events_accepted_total {self.events_accepted}\n",
                family("pipemedic_exporter_events_rejected_total"),
                *(
                    f'pipemedic_exporter_events_rejected_total{{reason="{r}"}} {n}\n'
                    for r, n in sorted(self.rejected.items())
                ),
                family("pipemedic_exporter_scrape_duration_seconds"),
                f"pipemedic_exporter_scrape_duration_seconds_sum {self.scrape_seconds_sum!r}\n",
                f"pipemedic_exporter_scrape_duration_seconds_count {self.scrape_count}\n",
                family("pipemedic_exporter_last_scrape_duration_seconds"),
                f"pipemedic_exporter_last_scrape_duration_seconds {self.last_scrape_seconds!r}\n",
            ]
        out += [
            family("pipemedic_exporter_pipelines"),
            f"pipemedic_exporter_pipelines {pipelines}\n",
            family("pipemedic_exporter_max_pipelines"),
            f"pipemedic_exporter_max_pipelines {max_pipelines}\n",
            family("pipemedic_exporter_pipelines_refused_total"),
            f"pipemedic_exporter_pipelines_refused_total {refused}\n",
        ]
        return "".join(out)
