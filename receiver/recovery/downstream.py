"""Verify the downstream pipelines of an incident once its upstream's recovery is verified.

A downstream pipeline's alert that joined an upstream's incident
(``downstream_impact``) gets no recovery of its own: fixing the upstream is
what fixes it. Once the incident is ``recovered`` (the upstream's condition
verified clear), each downstream pipeline with a firing alert is verified by
its alert kind's own condition (``verify.alert_symptoms``: the pipeline not
down, and e.g. its data no older than ``max_staleness``). The worker pool
asks every ``verify_interval``; a pipeline is judged once per recovery:

* ``downstream_verified``: its condition cleared (its alerts resolving then
  close the incident out);
* ``downstream_still_failing``: not cleared ``deadline_seconds`` after the
  upstream recovered (a downstream pipeline needs its own next run, so the
  deadline is longer than a recovery's); the pool escalates the incident,
  naming these pipelines, and their teams (in the blast radius) are told.

Example::

    check = DownstreamVerifier(verifier, spec, deadline_seconds=3600)
    verdict = await check(incident)     # entries to write, pipelines still failing
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from receiver.models import DOWNSTREAM_EVENT, Incident, TimelineEntry
from receiver.recovery.verify import Verifier, alert_symptoms
from receiver.worker.stages import DownstreamVerdict
from rules.spec import Spec

__all__ = ["JUDGED_EVENTS", "DownstreamVerifier", "awaiting"]

VERIFIED = "downstream_verified"
STILL_FAILING = "downstream_still_failing"
JUDGED_EVENTS = frozenset({VERIFIED, STILL_FAILING})


def _recovered_at(incident: Incident) -> datetime | None:
    """When the incident's latest verified recovery was recorded."""
    found = [t.at for t in incident.timeline if t.event == "recovered"]
    return max(found) if found else None


def awaiting(incident: Incident) -> dict[str, list[str]]:
    """Downstream pipeline -> its firing alert names, for those not judged since the
    incident's latest recovery (none unless the incident is ``recovered``)."""
    since = _recovered_at(incident)
    if incident.state != "recovered" or since is None:
        return {}
    downstream = {
        str(t.detail.get("pipeline"))
        for t in incident.timeline
        if t.event == DOWNSTREAM_EVENT and isinstance(t.detail, dict)
    }
    judged = {
        str(t.detail.get("pipeline"))
        for t in incident.timeline
        if t.event in JUDGED_EVENTS and t.at >= since and isinstance(t.detail, dict)
    }
    out: dict[str, list[str]] = {}
    for doc in incident.alerts:
        labels = doc.get("labels") or {}
        name = str(labels.get("pipeline", ""))
        if name in downstream and name not in judged and doc.get("status") == "firing":
            out.setdefault(name, []).append(str(labels.get("alertname", "")))
    return out


class DownstreamVerifier:
    """Judge a recovered incident's downstream pipelines (see the module docstring)."""

    def __init__(
        self,
        verifier: Verifier,
        spec: Spec,
        *,
        deadline_seconds: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.verifier = verifier
        self.spec = spec
        self.deadline = timedelta(seconds=deadline_seconds)
        self.clock = clock

    async def __call__(self, incident: Incident) -> DownstreamVerdict:
        """Check each downstream pipeline awaiting verification once; say what to write."""
        since = _recovered_at(incident)
        pending = awaiting(incident)
        if since is None or not pending:
            return DownstreamVerdict()
        now = self.clock()
        entries: list[TimelineEntry] = []
        failing: list[str] = []
        for pipeline, alerts in pending.items():
            spec = self.spec.pipeline(pipeline)
            checks = [
                s
                for name in dict.fromkeys(alerts)
                for s in alert_symptoms(name, spec, self.verifier.window_seconds)
            ]
            checks = list({s.query: s for s in checks}.values())
            present = await self.verifier.present(checks)
            detail: dict[str, Any] = {
                "pipeline": pipeline,
                "alerts": sorted(set(alerts)),
                "upstream": incident.pipeline,
                "checks": [s.note for s in checks],
            }
            if present == []:
                entries.append(TimelineEntry(now, VERIFIED, detail))
            elif present is not None and now - since >= self.deadline:
                waited = round((now - since).total_seconds())
                still = {**detail, "still": present, "waited_seconds": waited}
                entries.append(TimelineEntry(now, STILL_FAILING, still))
                failing.append(pipeline)
        return DownstreamVerdict(tuple(entries), tuple(failing))
