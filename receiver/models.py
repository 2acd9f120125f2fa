"""The receiver's data: alerts as Alertmanager sends them, and incidents.

Everything here is a plain dataclass with ``to_json``/``from_json`` so the
same objects go into the store, out of the HTTP API and into the post-mortem.
Times are timezone-aware UTC ``datetime``; Alertmanager's zero time
(``0001-01-01T00:00:00Z``, sent as ``endsAt`` while firing) becomes ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pipemedic.vocabulary import IncidentState

__all__ = [
    "DOWNSTREAM_EVENT",
    "INCIDENT_STATES",
    "MERGED_EVENT",
    "ActionRecord",
    "Alert",
    "AlertEvent",
    "Diagnosis",
    "Evidence",
    "Incident",
    "IngestResult",
    "Notification",
    "OutboxMessage",
    "TimelineEntry",
    "format_time",
    "parse_time",
    "utcnow",
]

AlertStatus = Literal["firing", "resolved"]
# the states' names, in lifecycle order (pipemedic.vocabulary.IncidentState)
INCIDENT_STATES: tuple[str, ...] = tuple(s.value for s in IncidentState)


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_time(text: str | None) -> datetime | None:
    """Parse an RFC 3339 time as Alertmanager writes it; the zero time is ``None``.

    The one time parser of the receiver (webhook bodies, stored documents, the
    API). ``fromisoformat`` takes the common forms at C speed; Go's nanosecond
    fractions are cut to the microseconds Python keeps. ``ValueError`` for
    anything else.
    """
    if not text or text.startswith("0001-01-01"):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        head, _, tail = text.partition(".")
        if tail:
            digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]
            zone = tail[len(digits) :]
            text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)


def format_time(value: datetime | None) -> str | None:
    """Format a time as ISO-8601 UTC with a ``Z``; ``None`` stays ``None``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Alert:
    """One alert of a webhook notification. Labels and annotations are untrusted."""

    status: AlertStatus
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    generator_url: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def pipeline(self) -> str:
        return self.labels.get("pipeline", "")

    @property
    def category(self) -> str:
        return self.labels.get("category", "")

    @property
    def dedup_key(self) -> tuple[str, str, str]:
        """Identity for idempotency: (fingerprint, startsAt, status)."""
        return (self.fingerprint, format_time(self.starts_at) or "", self.status)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": format_time(self.starts_at),
            "endsAt": format_time(self.ends_at),
            "fingerprint": self.fingerprint,
            "generatorURL": self.generator_url,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Alert:
        starts = parse_time(doc.get("startsAt"))
        return cls(
            status=doc["status"],
            labels=dict(doc.get("labels") or {}),
            annotations=dict(doc.get("annotations") or {}),
            starts_at=starts or datetime.fromtimestamp(0, UTC),
            ends_at=parse_time(doc.get("endsAt")),
            fingerprint=doc.get("fingerprint") or "",
            generator_url=doc.get("generatorURL") or "",
        )


@dataclass(frozen=True)
class Notification:
    """A whole webhook payload (version 4) after schema validation."""

    receiver: str
    status: AlertStatus
    alerts: tuple[Alert, ...]
    group_labels: Mapping[str, str] = field(default_factory=dict)
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""
    group_key: str = ""
    truncated_alerts: int = 0

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Notification:
        return cls(
            receiver=doc.get("receiver", ""),
            status=doc["status"],
            alerts=tuple(Alert.from_json(a) for a in doc.get("alerts") or ()),
            group_labels=dict(doc.get("groupLabels") or {}),
            common_labels=dict(doc.get("commonLabels") or {}),
            common_annotations=dict(doc.get("commonAnnotations") or {}),
            external_url=doc.get("externalURL", ""),
            group_key=doc.get("groupKey", ""),
            truncated_alerts=int(doc.get("truncatedAlerts") or 0),
        )


@dataclass(frozen=True)
class AlertEvent:
    """A stored alert waiting in (or taken from) the durable work queue."""

    id: int
    alert: Alert
    received_at: datetime
    group_key: str = ""
    attempts: int = 0


@dataclass(frozen=True)
class IngestResult:
    """What a store did with a notification: alerts new to it, and repeats."""

    accepted: int
    duplicates: int


@dataclass(frozen=True)
class TimelineEntry:
    """One step of an incident: ``{"at": ISO-8601, "event": ..., "detail": ...}``.

    ``by`` names the person behind a human action (``{..., "by": "alice"}``);
    automation's entries have none and carry no ``by`` key.
    """

    at: datetime
    event: str
    detail: Any = None
    by: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc = {"at": format_time(self.at), "event": self.event, "detail": self.detail}
        if self.by is not None:
            doc["by"] = self.by
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TimelineEntry:
        at = parse_time(doc["at"])
        assert at is not None
        return cls(at=at, event=doc["event"], detail=doc.get("detail"), by=doc.get("by"))


@dataclass(frozen=True)
class Evidence:
    """One observation a diagnosis made: the PromQL it ran and what came back."""

    query: str
    result: Any
    note: str = ""


@dataclass(frozen=True)
class Diagnosis:
    """A cause with the evidence for it; ``error`` says why evidence was missing."""

    cause: str
    handler: str
    summary: str
    evidence: tuple[Evidence, ...] = ()
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        # by hand, not asdict: asdict deep-copies every evidence result (half the cost of a save)
        return {
            "cause": self.cause,
            "handler": self.handler,
            "summary": self.summary,
            "evidence": [
                {"query": e.query, "result": e.result, "note": e.note} for e in self.evidence
            ],
            "error": self.error,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Diagnosis:
        return cls(
            cause=doc["cause"],
            handler=doc["handler"],
            summary=doc.get("summary", ""),
            evidence=tuple(Evidence(**e) for e in doc.get("evidence") or ()),
            error=doc.get("error"),
        )


@dataclass(frozen=True)
class ActionRecord:
    """One recovery attempt and its outcome (also the guardrails' ledger row).

    ``outcome`` is one of ``running``, ``success``, ``failure``, ``timeout``,
    ``dry_run``, ``blocked``; ``verified`` says whether Prometheus showed the
    condition cleared afterwards (``None``: not checked). ``diagnosis`` is the
    number (1-based, in ``Incident.diagnoses``) of the diagnosis that decided it.
    """

    incident_id: int
    step: str
    pipeline: str
    strategy: str
    action: str
    target: str
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str = "running"
    retryable: bool = False
    verified: bool | None = None
    detail: str = ""
    worker: str = ""
    diagnosis: int | None = None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["started_at"] = format_time(self.started_at)
        doc["ended_at"] = format_time(self.ended_at)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ActionRecord:
        started = parse_time(doc["started_at"])
        assert started is not None
        return cls(**{**doc, "started_at": started, "ended_at": parse_time(doc.get("ended_at"))})


@dataclass(frozen=True)
class OutboxMessage:
    """A notification to deliver, stored in the same transaction as the entry that causes it.

    ``event`` is a notification event (``receiver.notify.events``),
    ``destination`` names where it goes (``teams.<t>.notify[<i>]`` or
    ``alertmanager``) and ``detail`` is the causing timeline entry's detail.
    """

    event: str
    destination: str
    kind: str
    detail: Any = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    incident_id: int = 0
    id: int = 0
    attempts: int = 0


# the timeline event of a downstream pipeline's alert joining an upstream's incident
DOWNSTREAM_EVENT = "downstream_impact"
# the timeline event on an upstream's incident naming a downstream incident merged into it
MERGED_EVENT = "merged_from"


@dataclass
class Stored:
    """What of an incident its store holds already (set by the store when it reads or writes).

    A save appends the timeline entries after the first ``timeline`` and
    writes only the alerts that are new or changed status, so its cost does
    not grow with the incident's history.
    """

    timeline: int = 0
    alerts: dict[tuple[str, str], str] = field(default_factory=dict)  # (fp, startsAt) -> status


def alert_key(doc: Mapping[str, Any]) -> tuple[str, str]:
    """Identity of an incident's alert: ``(fingerprint, startsAt)``."""
    return (str(doc.get("fingerprint", "")), str(doc.get("startsAt", "")))


@dataclass
class Incident:
    """One open-to-closed incident of one pipeline; alerts of the pipeline join it.

    ``diagnoses`` holds every diagnosis made, in order (an alert joining with
    another cause adds one); ``diagnosis`` is the one that decides: the one
    behind the latest recovery, else the first. The timeline is kept in the
    order entries were written; readers see it in time order (``sorted_timeline``).

    People's fields: ``acknowledged_at``/``acknowledged_by`` (a person took it),
    ``pending_approval`` (a recovery step waiting for approve/reject, with
    ``decision`` once someone decided), ``review`` (written when closing).
    ``version`` counts saves, so the lifecycle can tell a concurrent write
    by a person from its own (``Lifecycle.save``).
    """

    id: int
    pipeline: str
    state: str
    sev: str
    opened_at: datetime
    category: str = ""
    team: str = ""
    roles: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    diagnosis: Diagnosis | None = None
    diagnoses: list[Diagnosis] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    postmortem: str | None = None
    stored: Stored | None = field(default=None, compare=False, repr=False)
    # notifications caused by entries not saved yet; the store writes them with the entries
    outbox: list[OutboxMessage] = field(default_factory=list, repr=False, compare=False)
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    pending_approval: dict[str, Any] | None = None
    review: dict[str, Any] | None = None
    version: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            **self.fields_json(),
            "alerts": self.alerts,
            "actions": [a.to_json() for a in self.actions],
            "timeline": [t.to_json() for t in self.sorted_timeline()],
            "blast_radius": self.blast_radius(),
            **self.merges(),
            "has_postmortem": self.postmortem is not None,
        }

    def merges(self) -> dict[str, Any]:
        """``merged_into``: the upstream incident this one was merged into (lineage), or None;
        ``merged_from``: the downstream incidents merged into this one. Read from the
        timeline (the ``closed`` and ``merged_from`` entries), like the blast radius."""
        into: Any = None
        merged_from: list[Any] = []
        for entry in self.timeline:
            detail = entry.detail if isinstance(entry.detail, Mapping) else {}
            if entry.event == "closed" and detail.get("merged_into") is not None:
                into = detail["merged_into"]
            elif entry.event == MERGED_EVENT and detail.get("incident") is not None:
                merged_from.append(detail["incident"])
        return {"merged_into": into, "merged_from": merged_from}

    def fields_json(self) -> dict[str, Any]:
        """Return the incident's own fields (no alerts, actions, timeline or post-mortem)."""
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "state": self.state,
            "sev": self.sev,
            "category": self.category,
            "team": self.team,
            "roles": self.roles,
            "opened_at": format_time(self.opened_at),
            "resolved_at": format_time(self.resolved_at),
            "closed_at": format_time(self.closed_at),
            "diagnosis": self.diagnosis.to_json() if self.diagnosis else None,
            "diagnoses": [d.to_json() for d in self.diagnoses],
            "acknowledged_at": format_time(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "pending_approval": self.pending_approval,
            "review": self.review,
            "version": self.version,
        }

    def unsaved(self) -> tuple[list[TimelineEntry], list[dict[str, Any]]]:
        """Return the timeline entries and alerts (new or changed) its store does not hold yet."""
        stored = self.stored or Stored()
        alerts = [a for a in self.alerts if stored.alerts.get(alert_key(a)) != a.get("status")]
        return self.timeline[stored.timeline :], alerts

    def add_stored_entries(self, entries: list[TimelineEntry]) -> None:
        """Take in entries another writer stored meanwhile (they are not written again)."""
        at = self.stored.timeline if self.stored is not None else len(self.timeline)
        self.timeline[at:at] = entries
        if self.stored is not None:
            self.stored.timeline += len(entries)

    def mark_stored(self) -> None:
        """Note that the store now holds the whole incident (after a read or a write)."""
        self.stored = Stored(
            len(self.timeline), {alert_key(a): str(a.get("status", "")) for a in self.alerts}
        )

    def blast_radius(self) -> list[dict[str, Any]]:
        """The downstream pipelines whose alerts joined this incident, in joining order.

        Each: ``pipeline``, ``team``, ``impact``, ``hops`` (how far downstream),
        ``datasets`` (what it writes: ``name``, ``updated_at``), ``cause``
        (``upstream_failure``), ``alerts`` (firing, resolved). Read from the
        ``downstream_impact`` entries the lifecycle writes and the alerts' states,
        so it needs no field of its own and survives concurrent saves.
        """
        found: dict[str, dict[str, Any]] = {}
        for entry in self.timeline:
            detail = entry.detail if isinstance(entry.detail, Mapping) else None
            if entry.event != DOWNSTREAM_EVENT or detail is None:
                continue
            name = str(detail.get("pipeline", ""))
            if name and name not in found:
                found[name] = {
                    "pipeline": name,
                    "team": str(detail.get("team", "")),
                    "impact": str(detail.get("impact", "")),
                    "hops": detail.get("hops"),
                    "datasets": [
                        {"name": str(d.get("name", "")), "updated_at": d.get("updated_at")}
                        for d in detail.get("datasets") or ()
                        if isinstance(d, Mapping)
                    ],
                    "cause": str(detail.get("cause", "")),
                    "alerts": {"firing": 0, "resolved": 0},
                }
        for doc in self.alerts:
            labels = doc.get("labels") or {}
            row = found.get(str(labels.get("pipeline", "")))
            status = str(doc.get("status", ""))
            if row is not None and status in row["alerts"]:
                row["alerts"][status] += 1
        return list(found.values())

    def sorted_timeline(self) -> list[TimelineEntry]:
        """Return the timeline in time order (entries of one instant in written order)."""
        return sorted(self.timeline, key=lambda t: t.at)
