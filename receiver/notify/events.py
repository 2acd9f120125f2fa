"""The notification events: which timeline entries cause them and what they ask of the reader.

One row per event (names from ``rules.people.NOTIFY_EVENTS``,
docs/notifications.md). ``cause`` lists the lifecycle's timeline events that produce the
notification event; the renderer reads ``ask`` and ``state``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rules.people import NOTIFY_EVENTS

__all__ = ["EVENTS", "NotifyEvent", "event_for_timeline"]


@dataclass(frozen=True)
class NotifyEvent:
    """One event people are told about."""

    name: str
    causes: tuple[str, ...]
    ask: str
    state: str | None = None  # the state the message reports (None: the incident's own)


EVENTS: dict[str, NotifyEvent] = {
    e.name: e
    for e in (
        NotifyEvent(
            "opened",
            ("detected", "reopened"),
            "Nothing yet: automation is diagnosing and recovering; you hear again if it escalates.",
            "open",
        ),
        NotifyEvent(
            "escalated",
            ("escalated",),
            "Automation gave up: the commander acknowledges the incident, assigns the roles "
            "and resolves it by hand.",
            "escalated",
        ),
        NotifyEvent(
            "approval_needed",
            ("approval_needed",),
            "A recovery step waits for a person: approve or reject it on the incident page.",
        ),
        NotifyEvent(
            "handoff",
            ("handoff",),
            "A role changed hands: the new holder takes over from here.",
        ),
        NotifyEvent(
            "status_update",
            ("status_update",),
            "For your information: the liaison's status update.",
        ),
        NotifyEvent(
            "resolved",
            ("resolved",),
            "Nothing: the condition cleared. Review the post-mortem draft.",
            "resolved",
        ),
        NotifyEvent(
            "closed",
            ("closed",),
            "Nothing: the incident is closed. Follow up its action items.",
            "closed",
        ),
    )
}
assert tuple(EVENTS) == NOTIFY_EVENTS, "receiver.notify.events and rules.people disagree"

_BY_TIMELINE: dict[str, str] = {cause: e.name for e in EVENTS.values() for cause in e.causes}


def event_for_timeline(timeline_event: str) -> str | None:
    """Return the notification event a timeline entry causes, if any."""
    return _BY_TIMELINE.get(timeline_event)
