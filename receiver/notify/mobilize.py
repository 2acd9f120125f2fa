"""Decide which destinations a timeline entry notifies, as outbox rows.

``Mobilizer.messages_for`` runs when the lifecycle appends a timeline entry
(``Lifecycle.note``); the rows ride on ``incident.outbox`` and the store
writes them in the transaction that stores the entry. A team's destination
takes an event when it lists it and the incident is at or above its
``min_sev``; with paging on, ``opened``/``escalated`` at or above the team's
``page_sev`` fire a ``PipelineIncident`` alert and ``resolved``/``closed``
resolve it (destination ``alertmanager``).

Downstream teams (the blast radius: pipelines whose alerts joined an
upstream's incident, ``Incident.blast_radius``) get the incident's messages
too, each destination once; a team whose pipeline joins an incident already
open is told with an ``opened`` message of its own.

Example::

    mobilizer = Mobilizer(spec, paging=True)
    lifecycle = Lifecycle(store, spec, mobilize=mobilizer.messages_for)
"""

from __future__ import annotations

from collections.abc import Mapping

from receiver.models import DOWNSTREAM_EVENT, Incident, OutboxMessage, TimelineEntry
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
        if entry.event == DOWNSTREAM_EVENT:
            return self._joined(incident, entry)
        event = event_for_timeline(entry.event)
        if event is None:
            return []
        detail = entry.detail
        if entry.by is not None and isinstance(detail, dict):  # a person's action: say who
            detail = {**detail, "by": entry.by}
        teams = [incident.team] + [row["team"] for row in incident.blast_radius()]
        out = self._rows(event, list(dict.fromkeys(teams)), incident, entry, detail)
        if event in PAGE_EVENTS and (
            self.pages(incident) if PAGE_EVENTS[event] else self.may_page(incident)
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

    def may_page(self, incident: Incident) -> bool:
        """Whether paging is on and ``incident``'s team has a ``page_sev``."""
        team = self.spec.team(incident.team)
        return self.paging and team is not None and team.page_sev is not None

    def pages(self, incident: Incident) -> bool:
        """Whether ``incident`` is paged now: its SEV at or above its team's ``page_sev``."""
        team = self.spec.team(incident.team)
        return (
            self.may_page(incident)
            and team is not None
            and team.page_sev is not None
            and sev_rank(incident.sev) <= sev_rank(team.page_sev)
        )

    def _rows(
        self,
        event: str,
        teams: list[str],
        incident: Incident,
        entry: TimelineEntry,
        detail: object,
    ) -> list[OutboxMessage]:
        """One row per destination of ``teams`` that takes ``event`` (each destination once)."""
        out: dict[tuple[str, str], OutboxMessage] = {}
        for name in teams:
            team = self.spec.team(name)
            for d in team.notify if team is not None else ():
                if d.takes(event, incident.sev) and (d.kind, d.where) not in out:
                    out[(d.kind, d.where)] = OutboxMessage(
                        event=event,
                        destination=d.where,
                        kind=d.kind,
                        detail=detail,
                        created_at=entry.at,
                        incident_id=incident.id,
                    )
        return list(out.values())

    def _joined(self, incident: Incident, entry: TimelineEntry) -> list[OutboxMessage]:
        """Tell a downstream team that joins an open incident (``opened``), once per team.

        An incident being opened by the downstream alert (no id yet) tells every
        team with its ``detected`` entry instead.
        """
        detail = entry.detail if isinstance(entry.detail, Mapping) else {}
        team, pipeline = str(detail.get("team", "")), str(detail.get("pipeline", ""))
        if not incident.id or not team:
            return []
        told = {incident.team} | {
            row["team"] for row in incident.blast_radius() if row["pipeline"] != pipeline
        }
        if team in told:
            return []
        return self._rows("opened", [team], incident, entry, entry.detail)
