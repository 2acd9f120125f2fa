"""Notification metrics, registered in the receiver's registry (names kept stable for dashboards).

* ``pipemedic_notifications_total{destination_kind,event,outcome}``: delivery
  attempts by destination kind (apprise scheme or ``alertmanager``), event and
  outcome (``sent``, ``failed``, ``given_up``)
* ``pipemedic_notification_outbox_depth``: messages not yet delivered or given up
* ``pipemedic_notification_outbox_oldest_age_seconds``: age of the oldest of them
* ``pipemedic_notification_delivery_seconds``: from the causing timeline entry to sent
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["NotifyMetrics"]


class NotifyMetrics:
    """The instruments of the notification outbox and its delivery worker."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.registry = r
        self.notifications = Counter(
            "pipemedic_notifications",
            "Notification delivery attempts by destination kind, event and outcome.",
            ["destination_kind", "event", "outcome"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "pipemedic_notification_outbox_depth",
            "Notifications waiting in the outbox (not sent, not given up).",
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "pipemedic_notification_outbox_oldest_age_seconds",
            "Age of the oldest notification waiting in the outbox (0 when empty).",
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "pipemedic_notification_delivery_seconds",
            "From the timeline entry causing a notification to its delivery.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 3600),
            registry=r,
        )
