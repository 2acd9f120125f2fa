"""The receiver's own metrics, one registry per app, exposed off the event loop.

Names (all ``pipemedic_receiver_`` or ``pipemedic_incident``):

* ``pipemedic_receiver_notifications_total{result}``: webhook requests by result
  (``accepted``, ``duplicate``, ``invalid``, ``unauthorized``, ``too_large``, ``unavailable``)
* ``pipemedic_receiver_alerts_total{status}``: alerts received, by firing/resolved
* ``pipemedic_receiver_duplicate_alerts_total``, ``pipemedic_receiver_truncated_alerts_total``
* ``pipemedic_receiver_queue_depth``: events acknowledged and not yet processed
* ``pipemedic_receiver_intake_seconds``: POST /alerts from first byte to answer
* ``pipemedic_receiver_event_queue_seconds``, ``pipemedic_receiver_event_processing_seconds``
* ``pipemedic_receiver_events_processed_total{result}``
* ``pipemedic_receiver_store_commit_seconds``, ``pipemedic_receiver_store_commit_batch_size``
* ``pipemedic_receiver_store_checkpoint_seconds{mode}``, ``pipemedic_receiver_store_wal_frames``:
  SQLite's background WAL checkpoints and the frames they have not copied yet
* ``pipemedic_incident_time_to_{acknowledge,diagnose,recover}_seconds{sev}``
* ``pipemedic_incidents_open{sev}``: incidents not resolved or closed
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from receiver.store.sqlite.checkpoint import CheckpointResult
from rules.severity import SEVS

__all__ = ["ReceiverMetrics", "metrics_handler"]

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


class ReceiverMetrics:
    """All instruments of one receiver app, in a private registry (no global state)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.notifications = Counter(
            "pipemedic_receiver_notifications",
            "Webhook notifications by result.",
            ["result"],
            registry=r,
        )
        self.alerts = Counter(
            "pipemedic_receiver_alerts", "Alerts received, by status.", ["status"], registry=r
        )
        self.duplicates = Counter(
            "pipemedic_receiver_duplicate_alerts",
            "Alerts already stored (same fingerprint, startsAt, status).",
            registry=r,
        )
        self.truncated = Counter(
            "pipemedic_receiver_truncated_alerts",
            "Alerts Alertmanager left out of notifications (max_alerts).",
            registry=r,
        )
        self.queue_depth = Gauge(
            "pipemedic_receiver_queue_depth", "Events acknowledged, not yet processed.", registry=r
        )
        self.intake_seconds = Histogram(
            "pipemedic_receiver_intake_seconds",
            "POST /alerts handling time, up to the answer.",
            buckets=_FAST,
            registry=r,
        )
        self.event_queue_seconds = Histogram(
            "pipemedic_receiver_event_queue_seconds",
            "Time from acknowledgement to a worker taking the event.",
            buckets=(*_FAST, 5.0, 10.0, 30.0, 60.0),
            registry=r,
        )
        self.event_processing_seconds = Histogram(
            "pipemedic_receiver_event_processing_seconds",
            "Worker time per event (correlate to record).",
            buckets=(*_FAST, 5.0, 10.0, 30.0, 60.0, 300.0),
            registry=r,
        )
        self.events_processed = Counter(
            "pipemedic_receiver_events_processed",
            "Events the workers finished, by result.",
            ["result"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            "pipemedic_receiver_store_commit_seconds",
            "Store commit latency (one commit covers a batch).",
            buckets=_FAST,
            registry=r,
        )
        self.commit_batch = Histogram(
            "pipemedic_receiver_store_commit_batch_size",
            "Operations per store commit (group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "pipemedic_receiver_store_checkpoint_seconds",
            "SQLite WAL checkpoints run off the commit path, by mode (PASSIVE, RESTART, TRUNCATE).",
            ["mode"],
            buckets=_FAST,
            registry=r,
        )
        self.wal_frames = Gauge(
            "pipemedic_receiver_store_wal_frames",
            "SQLite WAL frames not yet copied into the database after the last checkpoint.",
            registry=r,
        )
        self.time_to_acknowledge = Histogram(
            "pipemedic_incident_time_to_acknowledge_seconds",
            "From the first alert's startsAt to a person acknowledging the incident.",
            ["sev"],
            buckets=_SLOW,
            registry=r,
        )
        self.time_to_diagnose = Histogram(
            "pipemedic_incident_time_to_diagnose_seconds",
            "From detection to the first diagnosis.",
            ["sev"],
            buckets=_SLOW,
            registry=r,
        )
        self.time_to_recover = Histogram(
            "pipemedic_incident_time_to_recover_seconds",
            "From detection to resolution.",
            ["sev"],
            buckets=_SLOW,
            registry=r,
        )
        self.open_incidents = Gauge(
            "pipemedic_incidents_open",
            "Incidents not yet resolved or closed, by SEV.",
            ["sev"],
            registry=r,
        )
        for sev in SEVS:
            self.open_incidents.labels(sev=sev).set(0)

    def observe_commit(self, seconds: float, batch: int) -> None:
        """Record one store commit (called from the writer thread; thread-safe)."""
        self.commit_seconds.observe(seconds)
        self.commit_batch.observe(batch)

    def observe_checkpoint(self, result: CheckpointResult) -> None:
        """Record one WAL checkpoint (called from the checkpoint thread; thread-safe)."""
        self.checkpoint_seconds.labels(mode=result.mode).observe(result.seconds)
        self.wal_frames.set(max(result.wal_frames - result.checkpointed, 0))

    def set_open_incidents(self, counts: Mapping[str, int]) -> None:
        for sev in SEVS:
            self.open_incidents.labels(sev=sev).set(counts.get(sev, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def count_by_sev(sevs: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sev in sevs:
        counts[sev] = counts.get(sev, 0) + 1
    return counts


def metrics_handler(
    metrics: ReceiverMetrics,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Return a GET /metrics handler that renders in a thread, not on the loop."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await asyncio.get_running_loop().run_in_executor(None, metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle
