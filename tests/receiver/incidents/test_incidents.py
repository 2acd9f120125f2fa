"""Incident lifecycle through the worker's stages (fake diagnosis/recovery, real SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from core_helpers import (
    T0,
    Clock,
    FakeDiagnose,
    FakeFiring,
    FakeRecover,
    alert_doc,
    later,
    notification_doc,
    until,
)

from pipemedic.vocabulary import cause
from receiver.diagnosis.prometheus import PrometheusAPI
from receiver.incidents.lifecycle import IllegalTransition, Lifecycle, alert_sev
from receiver.metrics import ReceiverMetrics
from receiver.models import Alert, AlertEvent, Incident, Notification, TimelineEntry
from receiver.recovery import Recoverer, RecoveryConfig
from receiver.report.facts import users_affected
from receiver.report.postmortem import render_postmortem
from receiver.store import Store, open_store
from receiver.store.postgres.store import PostgresStore
from receiver.store.sqlite.store import SqliteStore
from receiver.worker.pool import WorkerPool
from receiver.worker.stages import StageContext
from rules.spec import Spec, parse_spec

SPEC_YAML = """
defaults: {impact: some, team: data-platform}
pipelines:
  etl_orders: {impact: most}
  quiet_job: {impact: none}
teams:
  data-platform:
    commander: alice
    scribe: bob
    liaison: carol
    sme: [dave, erin]
"""


class World:
    """A store, a lifecycle and a worker pool driven event by event."""

    def __init__(self, store: SqliteStore, outcome: str = "recovered") -> None:
        self.store = store
        self.spec: Spec = parse_spec(SPEC_YAML, "spec.yml")
        self.clock = Clock(later(30))
        self.metrics = ReceiverMetrics()
        self.rendered: list[int] = []
        self.lifecycle = Lifecycle(
            store,
            self.spec,
            reopen_window_seconds=600,
            metrics=self.metrics,
            render_postmortem=self.render,
            clock=self.clock,
        )
        self.diagnose = FakeDiagnose()
        self.recover = FakeRecover(outcome, clock=self.clock)
        self.pool = WorkerPool(
            store,
            self.lifecycle,
            diagnose=self.diagnose,
            recover=self.recover,
            firing=FakeFiring(False),
            metrics=self.metrics,
            clock=self.clock,
        )
        self._ids = 0

    def render(self, incident: Incident, spec: Spec | None = None) -> str:
        self.rendered.append(incident.id)
        return f"# post-mortem {incident.id} {incident.state}"

    async def send(self, doc: dict[str, Any], received: datetime | None = None) -> Incident:
        self._ids += 1
        event = AlertEvent(
            id=self._ids, alert=Alert.from_json(doc), received_at=received or self.clock()
        )
        async with self.store.pipeline_lock(event.alert.pipeline):
            await self.pool.handle(event)
        found = await self.store.open_incident(
            event.alert.pipeline
        ) or await self.store.last_incident(event.alert.pipeline)
        assert found is not None
        return found


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await SqliteStore.open(tmp_path / "incidents.db")
    yield s
    await s.close()


def events(incident: Incident) -> list[str]:
    return [t.event for t in incident.timeline]


async def test_firing_opens_one_incident_with_roles_sev_and_timeline(store: SqliteStore) -> None:
    w = World(store)
    inc = await w.send(alert_doc("etl_orders", name="PipelineDown"))
    assert inc.state == "recovered"  # recovered by automation, awaiting the alert's resolution
    assert inc.sev == "SEV1"  # unavailable x most users
    assert inc.roles == {
        "commander": "alice",
        "scribe": "bob",
        "liaison": "carol",
        "sme": ["dave", "erin"],
    }
    assert events(inc)[:4] == ["detected", "received", "sev_set", "roles_assigned"]
    assert inc.timeline[0].at == T0  # detected at the alert's startsAt
    for step in (
        "diagnosing",
        "diagnosed",
        "recovering",
        "recovery_attempt",
        "recovery_finished",
        "recovered",
    ):
        assert step in events(inc)
    again = await w.send(alert_doc("etl_orders", name="PipelineHighErrorRate", fingerprint="f2"))
    assert again.id == inc.id
    assert "alert_joined" in events(again)
    assert len(await store.list_incidents()) == 1


async def test_sev_label_wins_and_automation_only_raises(store: SqliteStore) -> None:
    w = World(store)
    inc = await w.send(alert_doc("p", name="PipelineSLAViolation", labels={"sev": "SEV4"}))
    assert inc.sev == "SEV4"
    inc = await w.send(
        alert_doc("p", name="PipelineDataStale", fingerprint="f2", labels={"sev": "SEV5"})
    )
    assert inc.sev == "SEV4"  # never lowered
    inc = await w.send(
        alert_doc("p", name="PipelineDown", fingerprint="f3", labels={"sev": "SEV2"})
    )
    assert inc.sev == "SEV2"
    changes = [t.detail for t in inc.timeline if t.event == "sev_changed"]
    assert changes == [{"from": "SEV4", "to": "SEV2", "why": "PipelineDown: sev label"}]


@pytest.mark.parametrize(
    ("pipeline", "alertname", "expected"),
    [
        ("etl_orders", "PipelineDown", "SEV1"),  # unavailable, most
        ("etl_orders", "PipelineHighErrorRate", "SEV2"),  # significant, most
        ("etl_orders", "PipelineSLAViolation", "SEV3"),  # performance, most
        ("other", "PipelineDown", "SEV3"),  # unavailable, some
        ("quiet_job", "PipelineDataStale", "SEV4"),  # performance, none
        ("quiet_job", "SomethingElse", "SEV4"),
    ],
)
def test_computed_sev_follows_the_table(pipeline: str, alertname: str, expected: str) -> None:
    spec = parse_spec(SPEC_YAML, "spec.yml")
    alert = Alert.from_json(alert_doc(pipeline, name=alertname, labels={"sev": "bogus"}))
    assert alert_sev(alert, spec)[0] == expected


async def test_resolution_reopen_and_close(store: SqliteStore) -> None:
    w = World(store)
    inc = await w.send(alert_doc("p", name="PipelineDown", fingerprint="f1"))
    ended = later(120)
    inc = await w.send(
        alert_doc("p", name="PipelineDown", fingerprint="f1", status="resolved", ends=ended)
    )
    assert inc.state == "resolved"
    assert inc.resolved_at == ended
    resolved = [t for t in inc.timeline if t.event == "resolved"]
    assert resolved and resolved[0].at == ended  # at the alert's endsAt
    assert w.rendered == [inc.id] and inc.postmortem
    assert len(w.recover.calls) == 1  # the resolved alert started no recovery

    # a new firing alert within the window reopens the same incident
    w.clock.now = ended + timedelta(seconds=300)
    inc2 = await w.send(alert_doc("p", name="PipelineDown", fingerprint="f1", starts=w.clock.now))
    assert inc2.id == inc.id and "reopened" in events(inc2)
    await w.send(
        alert_doc(
            "p",
            name="PipelineDown",
            fingerprint="f1",
            starts=w.clock.now,
            status="resolved",
            ends=w.clock.now,
        )
    )
    # after the window it is closed, and the next alert opens a new incident
    w.clock.now += timedelta(seconds=601)
    assert await w.lifecycle.close_expired() == 1
    closed = await store.get_incident(inc.id)
    assert closed is not None and closed.state == "closed" and events(closed)[-1] == "closed"
    inc3 = await w.send(alert_doc("p", name="PipelineDown", fingerprint="f1", starts=w.clock.now))
    assert inc3.id != inc.id


async def test_recovered_then_resolved_with_time_to_recover_taken_at_verification(
    store: SqliteStore,
) -> None:
    w = World(store)
    w.clock.now = later(40)
    inc = await w.send(alert_doc("p", name="PipelineDown", fingerprint="f1"))
    assert inc.state == "recovered"  # verified; the alert has not resolved yet
    (entry,) = [t for t in inc.timeline if t.event == "recovered"]
    assert entry.at == later(40) and entry.detail == {
        "strategy": "retry_with_backoff",
        "attempts": 1,
    }

    def recover_times() -> tuple[float | None, float | None]:
        labels = {"sev": inc.sev}
        return (
            w.metrics.registry.get_sample_value(
                "pipemedic_incident_time_to_recover_seconds_count", labels
            ),
            w.metrics.registry.get_sample_value(
                "pipemedic_incident_time_to_recover_seconds_sum", labels
            ),
        )

    assert recover_times() == (1.0, 40.0)  # from the alert's start (T0) to verification
    # a joining alert of the same cause is diagnosed and recorded, and starts nothing
    inc = await w.send(alert_doc("p", name="PipelineHighErrorRate", fingerprint="f2"))
    assert inc.state == "recovered" and len(w.recover.calls) == 1
    assert [d.cause for d in inc.diagnoses] == ["network_timeout"] * 2
    assert events(inc).count("recovery_not_repeated") == 1
    w.clock.now = later(600)
    for fp, name in (("f1", "PipelineDown"), ("f2", "PipelineHighErrorRate")):
        inc = await w.send(
            alert_doc("p", name=name, fingerprint=fp, status="resolved", ends=later(600))
        )
    assert inc.state == "resolved" and inc.resolved_at == later(600)
    names = [t.event for t in inc.sorted_timeline()]
    assert names.index("recovered") < names.index("resolved")
    assert recover_times() == (1.0, 40.0)  # not measured again at the resolution


async def test_out_of_order_and_repeated_notifications(store: SqliteStore) -> None:
    w = World(store)
    # resolved arrives before its firing: recorded as a resolved incident, no work
    inc = await w.send(alert_doc("p", fingerprint="f1", status="resolved", ends=later(60)))
    assert inc.state == "resolved" and events(inc)[0] == "detected"
    late = await w.send(alert_doc("p", fingerprint="f1"))
    assert late.id == inc.id and late.state == "resolved"
    assert w.diagnose.calls == [] and w.recover.calls == []
    # repeated firing (same fingerprint and startsAt) joins nothing twice
    a = await w.send(alert_doc("q", fingerprint="g1"))
    b = await w.send(alert_doc("q", fingerprint="g1"))
    assert a.id == b.id and len(b.alerts) == 1
    assert events(b).count("alert_joined") == 0


async def test_a_draft_put_off_while_busy_is_written_after_from_the_stored_incident(
    store: SqliteStore,
) -> None:
    """In a burst the escalation is saved at once and its draft written when the pool idles."""
    w = World(store, outcome="escalated")
    busy = True
    w.lifecycle.put_off_drafts = lambda: busy
    inc = await w.send(alert_doc("etl_orders", name="PipelineDown"))
    assert inc.state == "escalated" and inc.postmortem is None and w.rendered == []
    assert w.lifecycle.drafts_due == {inc.id: "etl_orders"}
    # a person acts meanwhile: the draft is written from the incident as stored now
    await w.lifecycle.act(inc.id, lambda i: w.lifecycle.note(i, "note", {"text": "on it"}))
    assert await w.lifecycle.write_due_draft()
    assert not await w.lifecycle.write_due_draft()  # none left
    got = await store.get_incident(inc.id)
    assert got is not None and got.postmortem == f"# post-mortem {inc.id} escalated"
    assert w.rendered == [inc.id] and "note" in events(got)
    busy = False  # quiet again: the next draft is written in the same save, as before
    inc2 = await w.send(alert_doc("quiet_job", name="PipelineDown"))
    assert inc2.postmortem and not w.lifecycle.drafts_due


async def test_escalation_renders_postmortem_and_counts_open(store: SqliteStore) -> None:
    w = World(store, outcome="escalated")
    inc = await w.send(alert_doc("etl_orders", name="PipelineDown"))
    assert inc.state == "escalated" and "escalated" in events(inc)
    assert inc.postmortem and w.rendered == [inc.id]
    joined = await w.send(alert_doc("etl_orders", name="PipelineDataStale", fingerprint="z"))
    assert joined.state == "escalated" and len(w.recover.calls) == 1  # people own it now
    text = w.metrics.render().decode()
    assert 'pipemedic_incidents_open{sev="SEV1"} 1.0' in text
    # time to acknowledge counts from a person's acknowledgement (tests/receiver/test_people.py)
    assert 'pipemedic_incident_time_to_acknowledge_seconds_count{sev="SEV1"}' not in text
    assert 'pipemedic_incident_time_to_diagnose_seconds_count{sev="SEV1"} 1.0' in text


async def test_illegal_transitions_are_refused(store: SqliteStore) -> None:
    w = World(store)
    inc = await w.send(alert_doc("p"))
    with pytest.raises(IllegalTransition, match="recovered -> closed"):
        w.lifecycle.transition(inc, "closed")


@pytest.mark.parametrize("configured", [True, False])
async def test_an_escalation_is_one_timeline_entry_carrying_the_reason(
    store: SqliteStore, configured: bool
) -> None:
    w = World(store)
    w.diagnose.cause = "logic_error"  # no strategy: the real recoverer escalates at once
    async with aiohttp.ClientSession() as session:
        # Prometheus is never asked on this path; the address is a closed loopback port.
        prom = PrometheusAPI("http://127.0.0.1:9", session)
        recoverer = Recoverer(RecoveryConfig(), store, prom, session)
        w.pool.recover = recoverer.recover if configured else None
        inc = await w.send(alert_doc("etl_orders", name="PipelineDown"))

    assert inc.state == "escalated"
    (entry,) = [t for t in inc.timeline if t.event == "escalated"]
    logic = cause("logic_error")
    assert logic is not None
    why = (
        f"no recovery strategy for cause 'logic_error': {logic.escalation}"
        if configured
        else "automatic recovery is not configured"
    )
    assert entry.detail["reason"] == f"requires manual intervention: {why}"
    assert entry.detail["roles"]["commander"] == "alice"
    if configured:
        assert entry.detail["strategy"] is None  # the recoverer's detail rides along
        assert events(inc).index("recovery_finished") < events(inc).index("escalated")
    assert w.rendered == [inc.id]  # drafted once, from the state with that one entry


# the post-mortem reads the incident as stored ----------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        opened = await open_store(f"sqlite:///{tmp_path / 'incidents.db'}")
    else:
        opened = await open_store(request.getfixturevalue("postgres_server")())
    yield opened
    await opened.close()


async def test_the_postmortem_includes_entries_stored_after_the_incident_was_read(
    any_store: Store,
) -> None:
    spec = parse_spec(SPEC_YAML, "spec.yml")
    lifecycle = Lifecycle(any_store, spec, render_postmortem=render_postmortem)
    first = Alert.from_json(alert_doc("etl_orders", fingerprint="f1"))
    fired = AlertEvent(id=1, alert=first, received_at=later(5))
    held = (await lifecycle.correlate(StageContext(fired, spec.pipeline("etl_orders")))).incident
    assert held is not None  # this worker's copy, read before the entries below were stored

    # Another worker notes an abandoned event on the stored incident meanwhile.
    other = await any_store.get_incident(held.id)
    assert other is not None
    other.timeline.append(TimelineEntry(later(20), "event_abandoned", {"event_id": 7}))
    await any_store.save_incident(other)
    expected = ["event_abandoned"]
    if isinstance(any_store, PostgresStore):
        # ... and a dead replica's event is retaken: PostgreSQL writes that itself.
        second = alert_doc("etl_orders", name="PipelineDataStale", fingerprint="f2")
        await any_store.ingest(Notification.from_json(notification_doc(second)))
        assert await any_store.claim_events("dead-replica", 10, lease_seconds=0.05)

        async def retaken() -> bool:
            return bool(await any_store.claim_events("survivor", 10, lease_seconds=60))

        await until(retaken)
        expected.append("work_taken_over")

    await lifecycle.escalate(held, "requires manual intervention: test")
    got = await any_store.get_incident(held.id)
    assert got is not None and got.state == "escalated" and got.postmortem
    for event in expected:
        assert f"`{event}`" in got.postmortem, got.postmortem
        assert events(got).count(event) == 1, events(got)  # kept once, not doubled
    assert events(got).count("escalated") == 1


@pytest.mark.parametrize(
    ("cause", "category"),
    [("network_timeout", "connectivity"), ("out_of_nowhere", "data"), ("unknown", "data")],
)
async def test_the_category_is_the_diagnosed_cause_s_not_the_alert_label(
    store: SqliteStore, cause: str, category: str
) -> None:
    w = World(store)
    w.diagnose.cause = cause
    doc = alert_doc("etl_orders", name="PipelineHighErrorRate", labels={"category": "data"})
    inc = await w.send(doc)
    assert inc.category == category  # a cause with no category keeps the alert's label
    (diagnosed,) = [t for t in inc.timeline if t.event == "diagnosed"]
    assert diagnosed.detail["category"] == category


async def test_users_affected_is_the_spec_s_impact_recorded_at_open(store: SqliteStore) -> None:
    w = World(store)
    inc = await w.send(alert_doc("etl_orders", name="PipelineDown", labels={"sev": "SEV2"}))
    (sev_set,) = [t for t in inc.timeline if t.event == "sev_set"]
    assert sev_set.detail == {"sev": "SEV2", "why": "sev label", "impact": "most"}
    assert inc.sev == "SEV2" and users_affected(inc) == "most users affected"
