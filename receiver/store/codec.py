"""Turn incidents and actions into JSON documents and back, for every backend.

A backend stores an incident's own fields and timeline as one document
(``incident_to_doc``) beside the indexed columns; actions live in the action
ledger and are attached on reading (``incident_from_doc(doc, actions)``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from receiver.models import (
    ActionRecord,
    Alert,
    Diagnosis,
    Incident,
    TimelineEntry,
    parse_time,
)

__all__ = [
    "action_from_doc",
    "alert_from_doc",
    "alert_to_doc",
    "dumps",
    "epoch",
    "incident_from_doc",
    "incident_to_doc",
]


def dumps(doc: Any) -> str:
    """Serialise compactly; unicode is kept as is."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)


def alert_to_doc(alert: Alert) -> dict[str, Any]:
    return alert.to_json()


def alert_from_doc(doc: Mapping[str, Any]) -> Alert:
    return Alert.from_json(doc)


def incident_to_doc(incident: Incident) -> dict[str, Any]:
    """Return the incident's own fields: no actions (the ledger's), alerts or timeline.

    Alerts and timeline entries are rows of their own, appended as they come.
    """
    return {**incident.fields_json(), "postmortem": incident.postmortem}


def _time(value: Any) -> datetime | None:
    return parse_time(value) if isinstance(value, str) else None


def incident_from_doc(
    doc: Mapping[str, Any],
    actions: Sequence[ActionRecord] = (),
    alerts: Sequence[dict[str, Any]] | None = None,
    timeline: Sequence[TimelineEntry] | None = None,
) -> Incident:
    """Rebuild an ``Incident`` from ``incident_to_doc`` output, its ledger rows and its rows.

    ``alerts``/``timeline`` None: take them from the document (as written before
    they were kept apart). The result is marked as stored.
    """
    diagnosis = doc.get("diagnosis")
    diagnoses = [Diagnosis.from_json(d) for d in doc.get("diagnoses") or ()]
    incident = Incident(
        id=int(doc["id"]),
        pipeline=doc["pipeline"],
        state=doc["state"],
        sev=doc["sev"],
        opened_at=_time(doc.get("opened_at")) or datetime.fromtimestamp(0, UTC),
        category=doc.get("category", ""),
        team=doc.get("team", ""),
        roles=dict(doc.get("roles") or {}),
        alerts=list(doc.get("alerts") or []) if alerts is None else list(alerts),
        diagnosis=Diagnosis.from_json(diagnosis) if diagnosis else None,
        diagnoses=diagnoses,
        actions=list(actions),
        timeline=(
            [TimelineEntry.from_json(t) for t in doc.get("timeline") or []]
            if timeline is None
            else list(timeline)
        ),
        resolved_at=_time(doc.get("resolved_at")),
        closed_at=_time(doc.get("closed_at")),
        postmortem=doc.get("postmortem"),
        acknowledged_at=_time(doc.get("acknowledged_at")),
        acknowledged_by=doc.get("acknowledged_by"),
        pending_approval=doc.get("pending_approval"),
        review=doc.get("review"),
        version=int(doc.get("version") or 0),
    )
    incident.mark_stored()
    return incident


def action_from_doc(doc: Mapping[str, Any]) -> ActionRecord:
    return ActionRecord.from_json(doc)


def epoch(value: datetime | None) -> float | None:
    """Return unix seconds for an indexed column (``None`` stays ``None``)."""
    return value.timestamp() if value is not None else None
