"""Incidents built by hand for the presentation tests (post-mortem, page, API, CLI)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from receiver.models import ActionRecord, Diagnosis, Evidence, Incident, TimelineEntry
from receiver.store.base import Store

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
HOSTILE = '<script>document.title="pwned"</script>'
HOSTILE_ATTR = '"><img src=x onerror="document.title=\'pwned\'">'
ROLES = {"commander": "ana", "scribe": "ben", "liaison": "chloé", "sme": ["dev", "eve"]}


def alert(name: str, pipeline: str, starts: datetime, **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": name, "pipeline": pipeline, **labels},
        "annotations": {"summary": f"{name} on {pipeline}"},
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": None,
        "fingerprint": f"fp-{name}-{pipeline}",
    }


def recovered_incident(incident_id: int = 7, pipeline: str = "etl_orders") -> Incident:
    """An incident automation recovered on the second attempt."""
    at = lambda minutes: T0 + timedelta(minutes=minutes)  # noqa: E731
    actions = [
        ActionRecord(
            incident_id,
            "retry_with_backoff#1",
            pipeline,
            "retry_with_backoff",
            "restart",
            "http://127.0.0.1:1/restart",
            at(3),
            at(3.5),
            "failure",
            True,
            False,
            "HTTP 503",
        ),
        ActionRecord(
            incident_id,
            "retry_with_backoff#2",
            pipeline,
            "retry_with_backoff",
            "restart",
            "http://127.0.0.1:1/restart",
            at(5),
            at(5.25),
            "success",
            False,
            True,
            "HTTP 200",
        ),
    ]
    return Incident(
        id=incident_id,
        pipeline=pipeline,
        state="resolved",
        sev="SEV2",
        opened_at=at(1),
        category="connectivity",
        team="data-platform",
        roles=dict(ROLES),
        alerts=[alert("PipelineDown", pipeline, T0, sev="SEV2", category="connectivity")],
        diagnosis=Diagnosis(
            cause="network_timeout",
            handler="check_infrastructure",
            summary="timeouts to the orders API",
            evidence=(
                Evidence(
                    'increase(pipeline_errors_total{pipeline="etl_orders",reason="timeout"}[5m])',
                    [{"metric": {"reason": "timeout"}, "value": [1772366520, "42"]}],
                    "errors by reason",
                ),
            ),
        ),
        actions=actions,
        timeline=[
            TimelineEntry(T0, "detected", {"alert": "PipelineDown"}),
            TimelineEntry(at(1), "acknowledged", "received from Alertmanager"),
            TimelineEntry(at(2), "diagnosed", {"cause": "network_timeout"}),
            TimelineEntry(at(3), "recovery_attempt", {"step": "retry_with_backoff#1"}),
            TimelineEntry(at(5), "recovery_attempt", {"step": "retry_with_backoff#2"}),
            TimelineEntry(at(9), "resolved", "alert resolved"),
        ],
        resolved_at=at(9),
    )


def escalated_incident(incident_id: int = 8, pipeline: str = "ml_features") -> Incident:
    """An incident with no recovery for its cause: escalated to people."""
    at = lambda minutes: T0 + timedelta(minutes=minutes)  # noqa: E731
    return Incident(
        id=incident_id,
        pipeline=pipeline,
        state="escalated",
        sev="SEV3",
        opened_at=at(0),
        category="logic",
        team="data-platform",
        alerts=[alert("PipelineHighErrorRate", pipeline, at(0), category="logic")],
        diagnosis=Diagnosis("logic_error", "check_logic", "errors with reason bug"),
        timeline=[
            TimelineEntry(at(0), "detected", None),
            TimelineEntry(at(0.5), "acknowledged", None),
            TimelineEntry(at(1), "diagnosed", {"cause": "logic_error"}),
            TimelineEntry(at(1.5), "escalated", {"reason": "no recovery strategy for logic_error"}),
        ],
    )


def hostile_incident(incident_id: int = 9) -> Incident:
    """An incident whose every untrusted string tries to become markup."""
    incident = recovered_incident(incident_id, pipeline="p" + HOSTILE)
    incident.alerts = [
        {
            **alert(HOSTILE_ATTR, "p" + HOSTILE, T0, team=HOSTILE),
            "annotations": {"summary": HOSTILE + " ünïcødé ✓ 'quotes' \"double\" & amp"},
        }
    ]
    incident.diagnosis = Diagnosis("unknown", HOSTILE, HOSTILE_ATTR, error=HOSTILE)
    incident.timeline.append(TimelineEntry(T0 + timedelta(minutes=10), HOSTILE, HOSTILE_ATTR))
    return incident


async def persist(store: Store, incident: Incident) -> Incident:
    """Store ``incident`` the way the receiver does: row, then ledger actions, then save."""
    actions, incident.actions = incident.actions, []
    created = await store.create_incident(incident)
    for action in actions:
        record = replace(action, incident_id=created.id)
        assert await store.begin_action(replace(record, outcome="running"), lease_seconds=60)
        await store.end_action(record)
    await store.save_incident(created)
    found = await store.get_incident(created.id)
    assert found is not None
    return found
