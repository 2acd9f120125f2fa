"""Decide which destinations a timeline entry notifies, as outbox rows.

``Mobilizer.messages_for`` runs when the lifecycle appends a timeline entry
(``Lifecycle.note``); the rows ride on ``incident.outbox`` and the store
writes them in the transaction that stores the entry. A team's destination
takes an event when it lists it and the incident is at or above its
``min_sev``; with paging on, ``opened``/``escalated`` at or above the team's
``page_sev`` fire a ``PipelineIncident`` alert and ``resolved``/``closed``
resolve it (destination ``alertmanager``).

Example::

    mobilizer = Mobilizer(spec, paging=True)
    lifecycle = Lifecycle(store, spec, mobilize=mobilizer.messages_for)
"""

from __future__ import annotations

from receiver.models import Incident, OutboxMessage, TimelineEntry
from receiver.notify.events import event_for_timeline
from rules.severity import sev_rank
from rules.spec import Spec

__all__ = ["PAGE_DESTINATION", "PAGE_EVENTS", "Mobilizer"]

PAGE_DESTINATION = "alertmanager"
# event -> whether the page alert fires (True) or resolves (False)
PAGE_EVENTS: dict[str, bool] = {
    "opened": True,
    "escalated": True,
    "resolved": False,
    "closed": False,
}


class Mobilizer:
    """Turn timeline entries into outbox rows for the incident's team."""

    def __init__(self, spec: Spec, *, paging: bool = False) -> None:
        self.spec = spec
        self.paging = paging

    def messages_for(self, incident: Incident, entry: TimelineEntry) -> list[OutboxMessage]:
        """Return the rows ``entry`` causes (none for most entries)."""
        event = event_for_timeline(entry.event)
        team = self.spec.team(incident.team) if event is not None else None
        if event is None or team is None:
            return []
        detail = entry.detail
        if entry.by is not None and isinstance(detail, dict):  # a person's action: say who
            detail = {**detail, "by": entry.by}
        out = [
            OutboxMessage(
                event=event,
                destination=d.where,
                kind=d.kind,
                detail=detail,
                created_at=entry.at,
                incident_id=incident.id,
            )
            for d in team.notify
            if d.takes(event, incident.sev)
        ]
        if (
            self.paging
            and team.page_sev is not None
            and event in PAGE_EVENTS
            and (not PAGE_EVENTS[event] or sev_rank(incident.sev) <= sev_rank(team.page_sev))
        ):
            out.append(
                OutboxMessage(
                    event=event,
                    destination=PAGE_DESTINATION,
                    kind=PAGE_DESTINATION,
                    detail=detail,
                    created_at=entry.at,
                    incident_id=incident.id,
                )
            )
        return out
