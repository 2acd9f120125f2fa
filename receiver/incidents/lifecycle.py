"""The incident lifecycle: one open incident per pipeline, its SEV, roles and timeline.

States (``receiver.models.INCIDENT_STATES``)::

    open -> diagnosing -> recovering -> recovered -> resolved -> closed
       \\________\\____________\\___________\\-> escalated -> resolved | closed
    recovered -> recovering   (an alert joins with another cause whose symptom persists)
    resolved -> open          (a new firing alert within the reopen window)
    any open state -> closed  (merged into its upstream's incident: ``merge``, not a transition)

``recovered``: a recovery's verification saw the condition clear; the
incident waits for its alerts to resolve (time to recover is measured
here). An alert joining a recovered incident is diagnosed (the diagnosis is
appended); with the same cause it starts nothing, with another it acts only
through the recovery guard.

Alerts of a pipeline join its incident. The SEV comes from the alert's
``sev`` label when valid, otherwise from the seed's table (degradation x
users affected); automation only ever raises it, and every change is a
timeline event. Roles come from the team's entry in the spec. Every method
here runs under ``store.pipeline_lock(pipeline)`` (the worker takes it).

The lifecycle is the only writer of incidents: ``correlate`` (the first
stage) and ``apply`` (every later stage's ``StageResult``) each save once;
``apply`` renders the post-mortem (the report) in the same save when a
result ends automation (resolved, escalated) — unless the worker is busy
(``put_off_drafts``: a storm), when the draft is written right after the
burst (``write_due_draft``) and readers render it on demand meanwhile.

Example::

    lifecycle = Lifecycle(store, spec, reopen_window_seconds=1800)
    found = await lifecycle.correlate(StageContext(event, spec.pipeline(p)))
    await lifecycle.apply(found.incident, StageResult(entries=(entry,)))   # one save
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from pipemedic.vocabulary import IncidentState, by_alert, cause
from receiver.diagnosis import queries
from receiver.errors import IllegalTransition, StoreError
from receiver.incidents.lineage import UpstreamGraph
from receiver.incidents.timeline import merge_timelines
from receiver.metrics import ReceiverMetrics, count_by_sev
from receiver.models import (
    DOWNSTREAM_EVENT,
    MERGED_EVENT,
    Alert,
    AlertEvent,
    Diagnosis,
    Incident,
    OutboxMessage,
    TimelineEntry,
    format_time,
    utcnow,
)
from receiver.store.base import Store
from receiver.worker.stages import StageContext, StageResult, Transition
from rules.severity import SEVS, sev_for, sev_rank
from rules.spec import Spec

__all__ = [
    "ACTIVE_STATES",
    "ENDED_STATES",
    "OPEN_STATES",
    "TRANSITIONS",
    "WORK_STATES",
    "IllegalTransition",
    "Lifecycle",
    "Mobilize",
    "RenderPostmortem",
    "alert_sev",
]

S = IncidentState
# state -> the states it may move to (one exception: ``Lifecycle.merge`` closes an open
# incident merged into its upstream's, outside these moves)
TRANSITIONS: dict[str, frozenset[str]] = {
    S.OPEN: frozenset({S.DIAGNOSING, S.ESCALATED, S.RESOLVED}),
    S.DIAGNOSING: frozenset({S.RECOVERING, S.ESCALATED, S.RESOLVED}),
    S.RECOVERING: frozenset({S.DIAGNOSING, S.RECOVERED, S.ESCALATED, S.RESOLVED}),
    S.RECOVERED: frozenset({S.RECOVERING, S.ESCALATED, S.RESOLVED}),
    S.ESCALATED: frozenset({S.RESOLVED, S.CLOSED}),
    S.RESOLVED: frozenset({S.OPEN, S.CLOSED}),
    S.CLOSED: frozenset(),
}
# states in which automation still works on the incident
ACTIVE_STATES: frozenset[str] = frozenset({S.OPEN, S.DIAGNOSING, S.RECOVERING})
# states in which a new firing alert is diagnosed (and may act, through the guard)
WORK_STATES: frozenset[str] = ACTIVE_STATES | {S.RECOVERED}
# states automation never leaves by itself while working: people may reach them
# concurrently (reject escalates, resolve, close), and automation's saves keep them
ENDED_STATES: frozenset[str] = frozenset({S.ESCALATED, S.RESOLVED, S.CLOSED})
_T = TypeVar("_T")
# states counted as open incidents in the metrics
OPEN_STATES: tuple[str, ...] = (S.OPEN, S.DIAGNOSING, S.RECOVERING, S.RECOVERED, S.ESCALATED)
# states whose arrival ends automation: the post-mortem draft is written with them
_REPORTED_STATES: frozenset[str] = frozenset({S.RESOLVED, S.ESCALATED})

_DEGRADATION_BY_SEVERITY: dict[str, str] = {
    "critical": "significant",
    "warning": "performance",
    "info": "annoyance",
}


log = logging.getLogger(__name__)
# Our own page alert (receiver.notify.paging): if a route sends it back here, it is not an incident.
_PAGE_ALERT = "PipelineIncident"


class Mobilize(Protocol):
    """Return the notifications a new timeline entry causes (``receiver.notify.Mobilizer``)."""

    def __call__(self, incident: Incident, entry: TimelineEntry) -> list[OutboxMessage]: ...


class RenderPostmortem(Protocol):
    """Render an incident's post-mortem draft as Markdown (engineer E's)."""

    def __call__(self, incident: Incident, spec: Spec | None = None) -> str: ...


def alert_sev(alert: Alert, spec: Spec) -> tuple[str, str]:
    """Return ``(SEV, why)``: the ``sev`` label when valid, else the SEV table.

    The degradation is the alert kind's (:mod:`pipemedic.vocabulary.alerts`);
    someone else's alert is judged by its ``severity`` label.
    """
    label = alert.labels.get("sev", "")
    if label in SEVS:
        return label, "sev label"
    kind = by_alert(alert.name)
    degradation = kind.degradation if kind is not None else None
    if degradation is None:
        degradation = _DEGRADATION_BY_SEVERITY.get(alert.labels.get("severity", ""), "performance")
    impact = spec.pipeline(alert.pipeline).impact
    return sev_for(degradation, impact), f"computed: degradation={degradation}, impact={impact}"


def _mergeable(incident: Incident) -> bool:
    """Whether a downstream incident may be merged into its upstream's (``Lifecycle.merge``)."""
    return incident.state in OPEN_STATES and incident.acknowledged_by is None


def _detail(entry: TimelineEntry) -> Mapping[str, Any]:
    return entry.detail if isinstance(entry.detail, Mapping) else {}


def _alert_key(doc: dict[str, Any]) -> tuple[str, str]:
    return (str(doc.get("fingerprint", "")), str(doc.get("startsAt", "")))


def _key(alert: Alert) -> tuple[str, str]:
    return (alert.fingerprint, format_time(alert.starts_at) or "")


class Lifecycle:
    """Create, join, reopen, advance and close incidents (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        spec: Spec,
        *,
        reopen_window_seconds: float = 3600.0,
        metrics: ReceiverMetrics | None = None,
        render_postmortem: RenderPostmortem | None = None,
        clock: Callable[[], datetime] = utcnow,
        mobilize: Mobilize | None = None,
        lineage: UpstreamGraph | None = None,
        merge_window_seconds: float = 3600.0,
    ) -> None:
        self.store = store
        self.spec = spec
        self.reopen_window = timedelta(seconds=reopen_window_seconds)
        self.metrics = metrics
        self.render_postmortem = render_postmortem
        self.clock = clock
        self.mobilize = mobilize
        self.lineage = lineage
        # a downstream incident opened this close to its upstream's is merged into it
        self.merge_window = timedelta(seconds=merge_window_seconds)
        # open incident id -> SEV, and the count per SEV: the gauge, kept without recounting
        self._open_sevs: dict[int, str] = {}
        self._sev_counts: Counter[str] = Counter()
        # Set by the worker pool while it runs: True while other work waits, and the
        # post-mortem draft is then put off (incident id -> pipeline, oldest first).
        self.put_off_drafts: Callable[[], bool] | None = None
        self.drafts_due: dict[int, str] = {}

    # timeline, state and SEV --------------------------------------------------
    def note(
        self,
        incident: Incident,
        event: str,
        detail: Any = None,
        at: datetime | None = None,
        by: str | None = None,
    ) -> None:
        """Append a timeline entry (``at`` defaults to now; ``by``: the person acting)
        and the notifications it causes.

        The notifications ride on ``incident.outbox`` and are written by the
        same store call that writes the entry.
        """
        entry = TimelineEntry(at=at or self.clock(), event=event, detail=detail, by=by)
        self._append(incident, entry)

    def _append(self, incident: Incident, entry: TimelineEntry) -> None:
        """Append one entry, with the notifications it causes (written in the same save)."""
        incident.timeline.append(entry)
        if self.mobilize is not None:
            incident.outbox.extend(self.mobilize(incident, entry))

    def transition(
        self,
        incident: Incident,
        state: str,
        detail: Any = None,
        at: datetime | None = None,
        event: str | None = None,
        by: str | None = None,
    ) -> None:
        """Move to ``state`` if the lifecycle allows it, with a timeline entry."""
        if state == incident.state:
            return
        if state not in TRANSITIONS.get(incident.state, frozenset()):
            raise IllegalTransition(
                f"incident {incident.id}: {incident.state} -> {state} is not allowed"
            )
        before, incident.state = incident.state, state
        self.note(incident, event or state, detail, at, by)
        log.log(
            logging.WARNING if state == "escalated" else logging.INFO,
            "incident %d %s: %s -> %s (%s)",
            incident.id,
            incident.pipeline,
            before,
            state,
            incident.sev,
            extra={
                "incident": incident.id,
                "pipeline": incident.pipeline,
                "sev": incident.sev,
                "state": state,
            },
        )

    def raise_sev(self, incident: Incident, sev: str, why: str, at: datetime | None = None) -> None:
        """Raise the SEV (never lower it); each change is a timeline event."""
        if sev_rank(sev) < sev_rank(incident.sev):
            self.note(incident, "sev_changed", {"from": incident.sev, "to": sev, "why": why}, at)
            incident.sev = sev

    # correlate -----------------------------------------------------------------
    async def correlate(self, ctx: StageContext) -> StageResult:
        """The first stage: attach the alert to its pipeline's incident, opening one if needed.

        The result names the incident (``incident``), what happened (``change``:
        opened | joined | reopened | repeated | stale | resolved | ignored) and
        whether diagnosis and recovery follow (``work``). Saved here, once.
        """
        event = ctx.event
        alert = event.alert
        if not alert.pipeline or alert.name == _PAGE_ALERT:
            return StageResult(change="ignored", stop=True)
        if alert.status == "resolved":
            return await self._resolve(event)
        return await self._fire(event)

    async def _fire(self, event: AlertEvent) -> StageResult:
        alert = event.alert
        incident = await self.store.open_incident(alert.pipeline)
        if incident is None or incident.state == S.RESOLVED:
            joined = await self._join_upstream(event)
            if joined is not None:
                return joined
        now = self.clock()
        if incident is not None and incident.state == "resolved":
            resolved_at = incident.resolved_at or now
            if _key(alert) in self._keys(incident, "resolved"):
                return StageResult(incident=incident, change="stale")
            if now - resolved_at <= self.reopen_window:
                why = {"alert": alert.name, "why": "fired again within the reopen window"}
                self.transition(incident, "open", why, at=event.received_at, event="reopened")
                incident.resolved_at = None
                self._add_alert(incident, alert)
                self._sev(incident, alert)
                await self._save(incident)
                return StageResult(incident=incident, change="reopened", work=True)
            await self.close(incident)
            incident = None
        if incident is None:
            incident = await self._open(event)
            return await self._opened(incident)
        known = self._keys(incident, None)
        if _key(alert) in self._keys(incident, "resolved"):  # resolved before this firing came
            return StageResult(incident=incident, change="stale")
        if _key(alert) in known:
            return StageResult(
                incident=incident, change="repeated", work=incident.state in ACTIVE_STATES
            )
        self._add_alert(incident, alert)
        self.note(
            incident,
            "alert_joined",
            {"alert": alert.name, "fingerprint": alert.fingerprint},
            at=event.received_at,
        )
        self._sev(incident, alert)
        await self._save(incident)
        return StageResult(incident=incident, change="joined", work=incident.state in WORK_STATES)

    async def _open(
        self, event: AlertEvent, upstream: tuple[str, int, str] | None = None
    ) -> Incident:
        """Open an incident for the alert's pipeline, or for ``upstream`` (name, hops,
        its firing alert) when a downstream alert finds its upstream firing first."""
        alert = event.alert
        sev, why = alert_sev(alert, self.spec)
        pipeline = upstream[0] if upstream is not None else alert.pipeline
        team = self.spec.pipeline(pipeline).team
        if upstream is None:
            team = alert.labels.get("team") or team
        found = self.spec.team(team)
        incident = Incident(
            id=0,
            pipeline=pipeline,
            state="open",
            sev=sev,
            opened_at=alert.starts_at,
            category=alert.category,
            team=team,
            roles=found.roles() if found is not None else {},
        )
        self._add_alert(incident, alert)
        if upstream is not None:  # the downstream team hears of it with the opening
            datasets = await self._datasets(alert.pipeline)
            self._downstream(incident, alert, upstream[1], datasets, at=event.received_at)
        detected: dict[str, Any] = {"alert": alert.name, "fingerprint": alert.fingerprint}
        if upstream is not None:
            detected.update(pipeline=alert.pipeline, upstream_alert=upstream[2])
        self.note(incident, "detected", detected, at=alert.starts_at)
        # receipt of the webhook; a person's acknowledgement is ``acknowledged``
        self.note(incident, "received", {"group_key": event.group_key}, at=event.received_at)
        impact = self.spec.pipeline(alert.pipeline).impact  # users affected, as declared
        if upstream is not None:
            why = f"downstream {alert.pipeline}: {why}"
        self.note(
            incident, "sev_set", {"sev": sev, "why": why, "impact": impact}, at=event.received_at
        )
        self.note(
            incident,
            "roles_assigned",
            {"team": team, **incident.roles}
            if found
            else {"team": team, "note": "team not in the spec"},
            at=event.received_at,
        )
        incident = await self.store.create_incident(incident)
        log.info(
            "incident %d %s: opened (%s)",
            incident.id,
            incident.pipeline,
            sev,
            extra={
                "incident": incident.id,
                "pipeline": incident.pipeline,
                "sev": sev,
                "state": "open",
            },
        )
        self._track(incident)
        return incident

    async def _resolve(self, event: AlertEvent) -> StageResult:
        alert = event.alert
        ended = alert.ends_at or event.received_at
        incident = await self.store.open_incident(alert.pipeline)
        if incident is None and self.lineage is not None:
            incident = await self._holding_upstream(alert)
        if incident is None:
            last = await self.store.last_incident(alert.pipeline)
            if last is not None and _key(alert) in self._keys(last, None):
                return StageResult(incident=last, change="stale")
            # resolved before its firing arrived (or the firing was never sent)
            incident = await self._open(event)
        elif _key(alert) in self._keys(incident, "resolved"):
            return StageResult(incident=incident, change="repeated")
        self._add_alert(incident, alert)
        self.note(
            incident,
            "alert_resolved",
            {"alert": alert.name, "fingerprint": alert.fingerprint},
            at=ended,
        )
        if not self._keys(incident, "firing") and incident.state not in ("resolved", "closed"):
            recovered = incident.state == "recovered"  # time to recover was taken then
            self.transition(incident, "resolved", {"alert": alert.name}, at=ended)
            incident.resolved_at = ended
            if self.metrics is not None and not recovered:
                took = (ended - incident.opened_at).total_seconds()
                self.metrics.time_to_recover.labels(sev=incident.sev).observe(max(took, 0.0))
            await self._report(incident)  # saved with the new state (and the draft)
        else:
            await self._save(incident)
        return StageResult(incident=incident, change="resolved")

    # lineage: a downstream alert joins its upstream's incident --------------------
    async def _join_upstream(self, event: AlertEvent) -> StageResult | None:
        """Join the alert to an upstream pipeline's open incident as downstream impact.

        Upstreams are walked nearest first (one cached graph lookup); the first
        with an open incident takes the alert. When none has one but an
        upstream's alert fires in Prometheus, the incident is opened for that
        upstream now (its own alert joins it when it arrives). No work follows:
        recovering the upstream is what fixes the downstream. None: the
        pipeline is on its own (no lineage, no upstream in trouble).
        """
        if self.lineage is None:
            return None
        alert = event.alert
        ups = await self.lineage.upstreams(alert.pipeline)
        if not ups:
            return None
        for name, hops in ups:
            incident = await self.store.open_incident(name)
            if incident is not None and incident.state in OPEN_STATES:
                return await self._join_as_downstream(event, incident, hops)
        firing = await self.lineage.firing([name for name, _ in ups])
        for name, hops in ups:
            if name not in firing:
                continue
            try:
                incident = await self._open(event, (name, hops, "firing in Prometheus"))
            except StoreError:  # the upstream's own alert opened it meanwhile
                found = await self.store.open_incident(name)
                if found is None or found.state not in OPEN_STATES:
                    raise
                return await self._join_as_downstream(event, found, hops)
            incident = await self._merge_downstream(incident)
            return StageResult(incident=incident, change="downstream")
        return None

    async def _join_as_downstream(
        self, event: AlertEvent, incident: Incident, hops: int
    ) -> StageResult:
        alert = event.alert
        if _key(alert) in self._keys(incident, "resolved"):
            return StageResult(incident=incident, change="stale")
        if _key(alert) in self._keys(incident, None):
            return StageResult(incident=incident, change="repeated")
        self._add_alert(incident, alert)
        datasets = await self._datasets(alert.pipeline)
        self._downstream(incident, alert, hops, datasets, at=event.received_at)
        sev, why = alert_sev(alert, self.spec)
        self.raise_sev(incident, sev, f"downstream {alert.pipeline}: {alert.name}: {why}")
        await self._save(incident)
        return StageResult(incident=incident, change="downstream")

    async def _datasets(self, pipeline: str) -> list[dict[str, Any]]:
        """The datasets a downstream pipeline writes (cached with the graph), for its entry."""
        return await self.lineage.datasets(pipeline) if self.lineage is not None else []

    def _downstream(
        self,
        incident: Incident,
        alert: Alert,
        hops: int,
        datasets: list[dict[str, Any]],
        at: datetime,
    ) -> None:
        """Record a downstream pipeline's alert as impact, diagnosed ``upstream_failure``,
        with the datasets it writes (what its consumers find stale)."""
        spec = self.spec.pipeline(alert.pipeline)
        self.note(
            incident,
            DOWNSTREAM_EVENT,
            {
                "pipeline": alert.pipeline,
                "alert": alert.name,
                "fingerprint": alert.fingerprint,
                "team": alert.labels.get("team") or spec.team,
                "impact": spec.impact,
                "hops": hops,
                "datasets": datasets,
                "cause": "upstream_failure",
                "summary": f"{incident.pipeline} is upstream of {alert.pipeline} "
                f"({hops} hop{'s' if hops != 1 else ''}) and has incident {incident.id or 'new'}",
                "evidence": [
                    {
                        "query": str(queries.lineage_edges()),
                        "result": {"upstream": incident.pipeline, "hops": hops},
                        "note": "the lineage graph (pipeline_upstream_info)",
                    }
                ],
            },
            at=at,
        )

    # lineage: incidents opened in either order end up as one -------------------------
    async def _opened(self, incident: Incident) -> StageResult:
        """After a pipeline's own incident opened: merge it, or merge into it, by lineage.

        A downstream incident opened before its upstream's (its alert was handled
        first) is merged into the upstream's when that opens; the upstream's
        opening between this pipeline's look (``_join_upstream``) and its own
        opening is caught here by looking again, so either order ends as one.
        """
        if self.lineage is None:
            return StageResult(incident=incident, change="opened", work=True)
        for name, hops in await self.lineage.upstreams(incident.pipeline):
            up = await self.store.open_incident(name)
            if up is not None and up.state in OPEN_STATES:
                into = await self.merge(incident.id, up.id, hops)
                if into is not None:
                    return StageResult(incident=into, change="merged")
                break
        incident = await self._merge_downstream(incident)
        return StageResult(incident=incident, change="opened", work=True)

    async def _merge_downstream(self, incident: Incident) -> Incident:
        """Merge the open incidents of pipelines downstream of ``incident``'s into it.

        Returns the incident as stored after the merges (itself when none merged).
        """
        assert self.lineage is not None
        merged = False
        for name, hops in await self.lineage.downstreams(incident.pipeline):
            down = await self.store.open_incident(name)
            if down is None or down.id == incident.id or not _mergeable(down):
                continue
            if abs(down.opened_at - incident.opened_at) > self.merge_window:
                continue
            merged = await self.merge(down.id, incident.id, hops) is not None or merged
        if not merged:
            return incident
        return await self.store.get_incident(incident.id) or incident

    async def merge(self, down_id: int, up_id: int, hops: int) -> Incident | None:
        """Merge incident ``down_id`` (a downstream pipeline's) into ``up_id`` as downstream
        impact; return the upstream incident as saved, None when nothing was merged.

        Any open incident (escalated and recovered ones too: automation could not
        tell it was upstream impact) is merged unless a person acknowledged it:
        then it is theirs. Exactly once across replicas: under the downstream
        incident's lock its stored copy is read again and closed only while it
        is still mergeable; only that writer moves its alerts. It is closed
        first (entry ``closed`` with ``merged_into``; a waiting approval is
        cancelled, and a recovery running
        for it stops before its next attempt since the incident is closed), then
        its alerts move to the upstream's incident with a ``downstream_impact``
        entry per pipeline and a ``merged_from`` entry. Closing first means a
        crash in between loses nothing: the moved alerts' next notification
        joins the upstream's incident as any downstream alert does.
        """
        async with self.store.incident_lock(down_id):
            down = await self.store.get_incident(down_id)
            up = await self.store.get_incident(up_id)
            if down is None or up is None or not _mergeable(down):
                return None
            if up.state not in OPEN_STATES:
                return None
            now = self.clock()
            pending = down.pending_approval
            if pending is not None:
                why = f"merged into incident {up.id} of upstream {up.pipeline}"
                self.note(down, "approval_cancelled", {"step": pending.get("step"), "why": why})
                down.pending_approval = None
            before, down.state = down.state, S.CLOSED
            self.note(
                down,
                "closed",
                {
                    "merged_into": up.id,
                    "upstream": up.pipeline,
                    "hops": hops,
                    "why": f"{up.pipeline} is upstream of {down.pipeline} and has incident "
                    f"{up.id}: recovering it is what fixes this one",
                },
                at=now,
            )
            log.info(
                "incident %d %s: merged into incident %d of %s",
                down.id,
                down.pipeline,
                up.id,
                up.pipeline,
                extra={"incident": down.id, "pipeline": down.pipeline, "state": "closed"},
            )
            down.closed_at = now
            down.version += 1
            await self.store.save_incident(down)
        self._track(down)
        # only the writer that closed it gets here; the upstream's own lock guards this save
        await self._absorb(up, down, hops, before, now)
        return up

    async def _absorb(
        self, up: Incident, down: Incident, hops: int, before: str, at: datetime
    ) -> None:
        """Move a merged incident's alerts into ``up``: impact per pipeline, SEV, pointer."""
        merged = [_detail(t).get("incident") for t in up.timeline if t.event == MERGED_EVENT]
        if down.id in merged:
            return  # merged already (a save that crashed after this one)
        farther = {r["pipeline"]: r["hops"] for r in down.blast_radius()}
        known = self._keys(up, None)
        seen: set[str] = set()
        for doc in down.alerts:
            if _alert_key(doc) in known:
                continue
            up.alerts.append(doc)
            alert = Alert.from_json(doc)
            if alert.pipeline in seen:
                continue
            seen.add(alert.pipeline)
            extra = farther.get(alert.pipeline)
            distance = hops + extra if isinstance(extra, int) else hops
            datasets = await self._datasets(alert.pipeline)
            self._downstream(up, alert, distance, datasets, at=at)
        self.note(
            up,
            MERGED_EVENT,
            {
                "incident": down.id,
                "pipeline": down.pipeline,
                "hops": hops,
                "state": before,
                "alerts": len(down.alerts),
                "actions": len(down.actions),
            },
            at=at,
        )
        self.raise_sev(up, down.sev, f"merged incident {down.id} of downstream {down.pipeline}")
        await self._save(up)

    async def _holding_upstream(self, alert: Alert) -> Incident | None:
        """The upstream incident this downstream alert joined, if any (for its resolution)."""
        assert self.lineage is not None
        for name, _hops in await self.lineage.upstreams(alert.pipeline):
            incident = await self.store.open_incident(name)
            if incident is not None and _key(alert) in self._keys(incident, None):
                return incident
        return None

    def _keys(self, incident: Incident, status: str | None) -> set[tuple[str, str]]:
        return {
            _alert_key(a) for a in incident.alerts if status is None or a.get("status") == status
        }

    def _add_alert(self, incident: Incident, alert: Alert) -> None:
        """Record the alert on the incident; a resolution replaces its firing entry."""
        doc = alert.to_json()
        for i, existing in enumerate(incident.alerts):
            if _alert_key(existing) == _key(alert):
                if alert.status == "resolved":
                    incident.alerts[i] = doc
                return
        incident.alerts.append(doc)

    def _sev(self, incident: Incident, alert: Alert) -> None:
        sev, why = alert_sev(alert, self.spec)
        self.raise_sev(incident, sev, f"{alert.name}: {why}")

    # later stages ---------------------------------------------------------------
    async def apply(self, incident: Incident, result: StageResult) -> None:
        """Apply one stage's result to ``incident`` and save it once.

        Entries are appended, the diagnosis added (``diagnosed`` entry, its
        number), transitions made in order; a result that ends automation
        (resolved, escalated) gets its post-mortem draft in the same save.
        """
        if result.empty:
            return
        for entry in result.entries:
            self._append(incident, entry)
        if result.diagnosis is not None:
            self._diagnosed(incident, result.diagnosis)
        for t in result.transitions:
            self.transition(incident, t.state, t.detail, t.at, t.event)
        if result.deciding is not None:  # the diagnosis behind the verified recovery
            self._decide(incident, incident.diagnoses[result.deciding - 1])
        if result.recovered_at is not None and self.metrics is not None:
            took = (result.recovered_at - incident.opened_at).total_seconds()
            self.metrics.time_to_recover.labels(sev=incident.sev).observe(max(took, 0.0))
        if any(t.state in _REPORTED_STATES for t in result.transitions):
            await self._report(incident)
        else:
            await self._save(incident)

    def _diagnosed(self, incident: Incident, diagnosis: Diagnosis) -> None:
        """Append a diagnosis; the first one decides until a recovery says otherwise."""
        first = not incident.diagnoses and incident.diagnosis is None
        incident.diagnoses.append(diagnosis)
        if first:
            self._decide(incident, diagnosis)
        self.note(
            incident,
            "diagnosed",
            {
                "number": len(incident.diagnoses),
                "cause": diagnosis.cause,
                "category": incident.category,
                "handler": diagnosis.handler,
                "summary": diagnosis.summary,
                "error": diagnosis.error,
            },
        )
        if first and self.metrics is not None:
            took = (self.clock() - incident.opened_at).total_seconds()
            self.metrics.time_to_diagnose.labels(sev=incident.sev).observe(max(took, 0.0))

    def _decide(self, incident: Incident, diagnosis: Diagnosis) -> None:
        """Make ``diagnosis`` the root cause; the incident takes its cause's category.

        A timeout behind an error-rate alert is a connectivity incident, whatever
        the alert's static label said; a cause without a category (``unknown``,
        a plugin's) leaves the category as it was.
        """
        incident.diagnosis = diagnosis
        row = cause(diagnosis.cause)
        if row is not None and row.category is not None:
            incident.category = str(row.category)

    def escalation(
        self, incident: Incident, reason: str, detail: Mapping[str, Any] | None = None
    ) -> Transition:
        """Return the hand-over to people: one ``escalated`` entry with the reason and roles."""
        return Transition(
            "escalated", {**(detail or {}), "reason": reason, "roles": incident.roles}
        )

    def request_approval(self, incident: Incident, request: Mapping[str, Any]) -> bool:
        """Record that a step waits for a person (``approval_needed``); False if it already does."""
        pending = incident.pending_approval
        same = pending is not None and pending.get("strategy") == request.get("strategy")
        if same and pending is not None and pending.get("decision") is None:
            return False
        incident.pending_approval = dict(request)
        shown = {k: v for k, v in request.items() if k != "alert"}
        self.note(incident, "approval_needed", {**shown, "roles": incident.roles})
        return True

    async def escalate(
        self, incident: Incident, reason: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        """Hand the incident to people now: state escalated, post-mortem drafted (one save)."""
        if incident.state in ("escalated", "resolved", "closed"):
            return
        await self.apply(
            incident, StageResult(transitions=(self.escalation(incident, reason, detail),))
        )

    async def close(self, incident: Incident) -> None:
        """Close a resolved or escalated incident (end of the reopen window, or by hand)."""
        self.transition(incident, "closed")
        incident.closed_at = self.clock()
        await self._save(incident)

    async def close_expired(self) -> int:
        """Close resolved incidents whose reopen window has passed; return how many."""
        closed = 0
        now = self.clock()
        for incident in await self.store.list_incidents(state="resolved", limit=1000):
            if incident.resolved_at is None or now - incident.resolved_at <= self.reopen_window:
                continue
            async with self.store.pipeline_lock(incident.pipeline):
                fresh = await self.store.get_incident(incident.id)
                if fresh is not None and fresh.state == "resolved":
                    await self.close(fresh)
                    closed += 1
        return closed

    async def _report(self, incident: Incident) -> None:
        """Save an incident that reached a reported state, with its draft unless put off."""
        if self.render_postmortem is None or self.put_off_drafts is None:
            await self.write_postmortem(incident)
        elif self.put_off_drafts():
            await self._save(incident)
            self.drafts_due[incident.id] = incident.pipeline
        else:
            self.drafts_due.pop(incident.id, None)
            await self.write_postmortem(incident)

    async def write_due_draft(self) -> bool:
        """Write the oldest post-mortem draft put off in a burst; False when none is due.

        Under the pipeline's lock, from the incident as stored now (so the draft
        also covers what happened since); an incident reopened meanwhile gets
        its draft when it ends again.
        """
        if not self.drafts_due:
            return False
        incident_id = next(iter(self.drafts_due))
        pipeline = self.drafts_due.pop(incident_id)
        async with self.store.pipeline_lock(pipeline):
            incident = await self.store.get_incident(incident_id)
            if incident is not None and incident.state in ENDED_STATES:
                assert self.render_postmortem is not None
                incident.postmortem = self.render_postmortem(incident, self.spec)
                await self._save(incident)
        return True

    async def write_postmortem(self, incident: Incident) -> None:
        """Render the post-mortem draft (ledger actions attached) and save the incident.

        One save covers the state change and the draft, so no reader sees a
        resolved or escalated incident without its post-mortem. The draft is
        written from the incident as stored plus this copy's new entries:
        another replica, or the store itself (PostgreSQL's ``work_taken_over``),
        may have added timeline entries since this copy was read.
        """
        if self.render_postmortem is not None:
            view = incident
            fresh = await self.store.get_incident(incident.id)
            if fresh is not None:  # the store may know more than this copy
                merged = merge_timelines(incident.timeline, fresh.timeline)
                view = dataclasses.replace(incident, actions=fresh.actions, timeline=merged)
            incident.postmortem = self.render_postmortem(view, self.spec)
        await self._save(incident)

    async def _save(self, incident: Incident) -> None:
        """The one write of an incident, keeping what people wrote meanwhile.

        Automation holds its copy for a whole recovery (under the pipeline lock)
        while people act on the stored one (under the short incident lock, see
        ``act``). When the stored version moved on since this copy was read, a
        person wrote: their fields, their timeline entries, a state they ended the
        incident in, a SEV they set and an approval decision win over this copy.
        The open-incidents gauge follows the save.
        """
        async with self.store.incident_lock(incident.id):
            version = await self.store.incident_version(incident.id)  # one small read
            if version is not None and version != incident.version:
                stored = await self.store.get_incident(incident.id)
                if stored is not None:
                    _keep_concurrent(incident, stored)
                    version = stored.version
            incident.version = (version if version is not None else incident.version) + 1
            await self.store.save_incident(incident)
        self._track(incident)

    async def act(self, incident_id: int, apply: Callable[[Incident], _T]) -> tuple[Incident, _T]:
        """Apply a person's change to the stored incident and save it, atomically.

        ``apply`` raises to refuse (nothing is saved); ``LookupError`` for an
        unknown id. Never waits for a recovery (no pipeline lock).
        """
        async with self.store.incident_lock(incident_id):
            incident = await self.store.get_incident(incident_id)
            if incident is None:
                raise LookupError(incident_id)
            result = apply(incident)
            incident.version += 1
            await self.store.save_incident(incident)
        self._track(incident)
        return incident, result

    def _track(self, incident: Incident) -> None:
        """Keep ``pipemedic_incidents_open`` in step with one saved incident (no recount)."""
        if self.metrics is None:
            return
        was = self._open_sevs.pop(incident.id, None)
        if was is not None:
            self._sev_counts[was] -= 1
        if incident.state in OPEN_STATES:
            self._open_sevs[incident.id] = incident.sev
            self._sev_counts[incident.sev] += 1
        if was != self._open_sevs.get(incident.id):
            self.metrics.set_open_incidents(self._sev_counts)

    async def refresh_open_metrics(self) -> None:
        """Recount open incidents by SEV from the store (at start and in the periodic sweep).

        Between recounts the gauge moves with each save (``_track``); the
        recount picks up what other replicas changed.
        """
        if self.metrics is None:
            return
        found = await self.store.incident_sevs(OPEN_STATES)  # ids and SEVs, not incidents
        self._open_sevs = found
        self._sev_counts = Counter(found.values())
        self.metrics.set_open_incidents(count_by_sev(found.values()))


def _keep_concurrent(held: Incident, stored: Incident) -> None:
    """Bring what people wrote to ``stored`` into automation's ``held`` copy (``_save``)."""
    held.add_stored_entries(merge_timelines(held.timeline, stored.timeline)[len(held.timeline) :])
    _merge_alerts(held, stored)
    held.acknowledged_at, held.acknowledged_by = stored.acknowledged_at, stored.acknowledged_by
    held.roles, held.review = stored.roles, stored.review
    if stored.state in ENDED_STATES and stored.state != held.state:
        held.state, held.resolved_at, held.closed_at = (
            stored.state,
            stored.resolved_at,
            stored.closed_at,
        )
        held.postmortem, held.pending_approval = stored.postmortem, stored.pending_approval
    mine, theirs = held.pending_approval, stored.pending_approval
    if mine is not None and theirs is not None and mine.get("step") == theirs.get("step"):
        held.pending_approval = theirs  # a decision taken meanwhile
    sevs = [t for t in held.timeline if t.event in ("sev_set", "sev_changed")]
    for entry in sorted(sevs, key=lambda t: t.at)[-1:]:  # the latest SEV decision wins
        if isinstance(entry.detail, Mapping):
            held.sev = str(entry.detail.get("to") or entry.detail.get("sev") or held.sev)


def _merge_alerts(held: Incident, stored: Incident) -> None:
    """Keep alerts another writer added meanwhile (a downstream pipeline's, joining under its
    own pipeline's lock) and their resolutions; the held copy's own changes stay."""
    mine = {_alert_key(a): i for i, a in enumerate(held.alerts)}
    for doc in stored.alerts:
        key, i = _alert_key(doc), mine.get(_alert_key(doc))
        if i is None:
            held.alerts.append(doc)
        elif doc.get("status") == "resolved":
            held.alerts[i] = doc
        else:
            continue
        if held.stored is not None:  # the store holds it already: not written again
            held.stored.alerts[key] = str(doc.get("status", ""))
