"""The store contract: SQLite and PostgreSQL behave the same behind ``Store``.

Every test runs once per backend (``store`` is parametrized). Times are
whole milliseconds because that is the precision the JSON documents keep.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from core_helpers import until

from receiver.models import (
    ActionRecord,
    Alert,
    Diagnosis,
    Evidence,
    Incident,
    Notification,
    OutboxMessage,
    TimelineEntry,
)
from receiver.store import Store, StoreError, open_store

Opener = Callable[[], Awaitable[Store]]
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def alert(
    fingerprint: str,
    *,
    status: str = "firing",
    starts: float = 0,
    pipeline: str = "etl_orders",
    **labels: str,
) -> Alert:
    return Alert(
        status=status,  # type: ignore[arg-type]
        labels={"alertname": "PipelineDown", "pipeline": pipeline, **labels},
        annotations={"summary": f"{pipeline} is down"},
        starts_at=at(starts),
        ends_at=at(starts + 60) if status == "resolved" else None,
        fingerprint=fingerprint,
    )


def notification(*alerts: Alert, group_key: str = '{}:{pipeline="etl_orders"}') -> Notification:
    return Notification(
        receiver="pipemedic",
        status=alerts[0].status if alerts else "firing",
        alerts=alerts,
        group_key=group_key,
    )


def incident(pipeline: str = "etl_orders", *, sev: str = "SEV2", state: str = "open") -> Incident:
    return Incident(
        id=0,
        pipeline=pipeline,
        state=state,
        sev=sev,
        opened_at=at(0),
        category="connectivity",
        team="data-platform",
        roles={"commander": "alice", "scribe": "bob"},
        alerts=[alert("fp1").to_json()],
        timeline=[TimelineEntry(at(0), "opened", {"alert": "PipelineDown"})],
    )


def action(
    incident_id: int, step: str, *, worker: str = "w1", start: float = 0, **kw: str
) -> ActionRecord:
    fields = {
        "pipeline": "etl_orders",
        "strategy": "retry_with_backoff",
        "action": "http",
        "target": "restart",
    } | kw
    return ActionRecord(
        incident_id=incident_id,
        step=step,
        started_at=at(start),
        worker=worker,
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["sqlite", "postgresql"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Return ``open()`` for one database of the backend; every store opened is closed."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'receiver.db'}"
    else:
        url = request.getfixturevalue("postgres_server")()
    opened: list[Store] = []

    async def open_() -> Store:
        store = await open_store(url)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


@pytest.fixture
async def store(opener: Opener) -> Store:
    return await opener()


# durable queue ------------------------------------------------------------------
async def test_ingest_is_idempotent_on_fingerprint_starts_at_status(store: Store) -> None:
    first = await store.ingest(notification(alert("fp1"), alert("fp2")))
    assert (first.accepted, first.duplicates) == (2, 0)

    again = await store.ingest(notification(alert("fp2"), alert("fp1")))
    assert (again.accepted, again.duplicates) == (0, 2)

    # A new status or a new startsAt is a new event; a repeat within one payload is not.
    mixed = await store.ingest(
        notification(alert("fp1", status="resolved"), alert("fp1", starts=300), alert("fp1"))
    )
    assert (mixed.accepted, mixed.duplicates) == (2, 1)
    assert await store.queue_depth() == 4


async def test_ingested_events_survive_reopening_and_keep_untrusted_labels(
    opener: Opener,
) -> None:
    hostile = {"team": "x'); DROP TABLE incidents; --", "note": 'Grüße \u2603 \\ " %s $1'}
    store = await opener()
    await store.ingest(notification(alert("fp1", **hostile)))
    await store.close()

    reopened = await opener()
    (event,) = await reopened.claim_events("w1", 10, lease_seconds=60)
    assert event.alert == alert("fp1", **hostile)
    assert event.group_key == '{}:{pipeline="etl_orders"}'
    assert event.attempts == 1


async def test_claim_takes_oldest_first_and_a_leased_event_only_once(store: Store) -> None:
    await store.ingest(notification(*(alert(f"fp{i}", starts=i) for i in range(5))))

    first = await store.claim_events("w1", 2, lease_seconds=60)
    second = await store.claim_events("w2", 10, lease_seconds=60)
    assert [e.alert.fingerprint for e in first] == ["fp0", "fp1"]
    assert [e.alert.fingerprint for e in second] == ["fp2", "fp3", "fp4"]
    assert await store.claim_events("w3", 10, lease_seconds=60) == []
    assert [e.id for e in first + second] == sorted(e.id for e in first + second)


async def test_an_expired_lease_is_claimed_again_by_another_worker(store: Store) -> None:
    await store.ingest(notification(alert("fp1")))
    (taken,) = await store.claim_events("dead-worker", 10, lease_seconds=0.05)

    retaken: list[int] = []

    async def claimed() -> bool:
        retaken.extend(e.id for e in await store.claim_events("w2", 10, lease_seconds=60))
        return bool(retaken)

    await until(claimed)
    assert retaken == [taken.id]
    assert await store.queue_depth() == 1


async def test_a_renewed_lease_keeps_the_event_from_other_workers(store: Store) -> None:
    await store.ingest(notification(alert("fp1"), alert("fp2")))
    one, two = await store.claim_events("w1", 10, lease_seconds=0.05)

    assert await store.renew_leases("w1", [one.id, two.id], lease_seconds=60) == {one.id, two.id}
    assert await store.renew_leases("w2", [one.id], lease_seconds=60) == set()  # not its lease
    await asyncio.sleep(0.2)  # the first leases would have run out by now
    assert await store.claim_events("w2", 10, lease_seconds=60) == []

    await store.finish_event(one.id, "w1")
    assert await store.renew_leases("w1", [one.id, two.id], lease_seconds=0.05) == {two.id}
    assert await store.renew_leases("w1", [], lease_seconds=60) == set()


async def test_a_lease_lost_to_another_worker_is_not_renewed(store: Store) -> None:
    await store.ingest(notification(alert("fp1")))
    (taken,) = await store.claim_events("slow-worker", 10, lease_seconds=0.05)
    retaken: list[int] = []

    async def claimed() -> bool:
        retaken.extend(e.id for e in await store.claim_events("w2", 10, lease_seconds=60))
        return bool(retaken)

    await until(claimed)
    assert retaken == [taken.id]
    assert await store.renew_leases("slow-worker", [taken.id], lease_seconds=60) == set()
    assert await store.renew_leases("w2", [taken.id], lease_seconds=60) == {taken.id}


async def test_finished_events_are_never_claimed_again(store: Store) -> None:
    await store.ingest(notification(alert("fp1"), alert("fp2")))
    events = await store.claim_events("w1", 10, lease_seconds=0.05)
    for event in events:
        await store.finish_event(event.id, "w1")
    assert await store.queue_depth() == 0
    await asyncio.sleep(0.1)  # the leases would have run out by now
    assert await store.claim_events("w2", 10, lease_seconds=60) == []
    assert (await store.ingest(notification(alert("fp1")))).duplicates == 1


# incidents ------------------------------------------------------------------------
async def test_incident_round_trips_with_every_field(store: Store) -> None:
    new = incident()
    new.diagnosis = Diagnosis(
        cause="network_timeout",
        handler="check_infrastructure",
        summary="the orders API timed out",
        evidence=(Evidence(query='pipeline_up{pipeline="etl_orders"}', result=[0], note="down"),),
    )
    new.postmortem = "# Post-mortem\n"
    created = await store.create_incident(new)
    assert created.id > 0

    got = await store.get_incident(created.id)
    assert got is not None
    assert got.to_json() == created.to_json()
    assert got.postmortem == "# Post-mortem\n"
    assert await store.get_incident(created.id + 1000) is None


async def test_one_incident_per_pipeline_until_it_is_closed(store: Store) -> None:
    first = await store.create_incident(incident())
    assert (await store.open_incident("etl_orders")).id == first.id  # type: ignore[union-attr]
    assert await store.open_incident("etl_users") is None
    with pytest.raises(StoreError, match="etl_orders"):
        await store.create_incident(incident())

    first.state = "closed"
    first.closed_at = at(600)
    await store.save_incident(first)
    assert await store.open_incident("etl_orders") is None
    assert (await store.last_incident("etl_orders")).id == first.id  # type: ignore[union-attr]

    second = await store.create_incident(incident())
    assert second.id != first.id
    assert (await store.last_incident("etl_orders")).id == second.id  # type: ignore[union-attr]
    assert (await store.open_incident("etl_orders")).id == second.id  # type: ignore[union-attr]


async def test_save_updates_fields_and_appends_to_the_timeline(store: Store) -> None:
    inc = await store.create_incident(incident())
    inc.state = "resolved"
    inc.resolved_at = at(120)
    inc.sev = "SEV1"
    inc.timeline.append(TimelineEntry(at(60), "diagnosed", {"cause": "network_timeout"}))
    inc.timeline.append(TimelineEntry(at(120), "resolved", None))
    await store.save_incident(inc)
    await store.save_incident(inc)  # saving twice adds nothing

    got = await store.get_incident(inc.id)
    assert got is not None
    assert (got.state, got.sev, got.resolved_at) == ("resolved", "SEV1", at(120))
    assert [(e.at, e.event, e.detail) for e in got.timeline] == [
        (at(0), "opened", {"alert": "PipelineDown"}),
        (at(60), "diagnosed", {"cause": "network_timeout"}),
        (at(120), "resolved", None),
    ]

    with pytest.raises(StoreError):
        await store.save_incident(dataclasses.replace(inc, id=inc.id + 1000))


async def test_list_filters_and_pages_newest_first(store: Store) -> None:
    ids: dict[str, int] = {}
    for name, sev in (("a", "SEV1"), ("b", "SEV3"), ("c", "SEV1"), ("d", "SEV2")):
        ids[name] = (await store.create_incident(incident(f"etl_{name}", sev=sev))).id
    done = await store.get_incident(ids["b"])
    assert done is not None
    done.state = "resolved"
    await store.save_incident(done)

    def names(found: list[Incident]) -> list[str]:
        return [i.pipeline.removeprefix("etl_") for i in found]

    assert names(await store.list_incidents()) == ["d", "c", "b", "a"]
    assert names(await store.list_incidents(sev="SEV1")) == ["c", "a"]
    assert names(await store.list_incidents(state="resolved")) == ["b"]
    assert names(await store.list_incidents(state="open", pipeline="etl_d")) == ["d"]
    assert names(await store.list_incidents(pipeline="etl_' OR 1=1 --")) == []
    assert names(await store.list_incidents(limit=2)) == ["d", "c"]
    assert names(await store.list_incidents(limit=2, offset=2)) == ["b", "a"]


@pytest.mark.parametrize("kind", ["pipeline", "incident"])
async def test_a_lock_serialises_one_key_and_no_other(store: Store, kind: str) -> None:
    """``pipeline_lock`` (a pipeline's work) and ``incident_lock`` (one incident's
    read-modify-write): one holder per key; other keys, and the other kind of lock
    on the same key, do not wait."""

    def lock(which: str, key: int) -> AbstractAsyncContextManager[None]:
        if which == "pipeline":
            return store.pipeline_lock(f"etl_{key}")
        return store.incident_lock(key)

    other_kind = "incident" if kind == "pipeline" else "pipeline"
    order: list[str] = []
    inside, others_in = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with lock(kind, 1):
            inside.set()
            order.append("first in")
            await others_in.wait()  # blocked others would never get here: the timeout says so
            order.append("first out")

    async def second() -> None:
        await inside.wait()
        async with lock(kind, 1):
            order.append("second in")

    async def others() -> None:
        await inside.wait()
        async with lock(kind, 2), lock(other_kind, 1):
            order.append("others in")
            others_in.set()

    await asyncio.wait_for(asyncio.gather(first(), second(), others()), timeout=60)
    assert order == ["first in", "others in", "first out", "second in"]


async def test_people_fields_and_approval_waits_round_trip(store: Store) -> None:
    new = incident(state="recovering")
    new.acknowledged_at, new.acknowledged_by = at(5), "alice"
    new.pending_approval = {"step": "rollback_to_checkpoint", "strategy": "rollback_to_checkpoint"}
    new.review = {"preventive_measures": ["x"], "action_items": []}
    new.version = 3
    new.timeline.append(TimelineEntry(at(5), "acknowledged", {"state": "open"}, by="alice"))
    created = await store.create_incident(new)
    got = await store.get_incident(created.id)
    assert got is not None and got.to_json() == created.to_json()
    assert got.timeline[-1].by == "alice" and got.timeline[0].by is None
    assert await store.approvals_waiting() == [(created.id, "etl_orders", new.pending_approval)]
    got.pending_approval = None
    await store.save_incident(got)
    assert await store.approvals_waiting() == []


# action ledger -------------------------------------------------------------------
async def test_a_step_is_claimed_exactly_once(store: Store) -> None:
    inc = await store.create_incident(incident())
    step = action(inc.id, "retry_with_backoff:1")
    assert await store.begin_action(step, lease_seconds=60) is True
    assert await store.begin_action(step, lease_seconds=60) is False
    assert await store.begin_action(dataclasses.replace(step, worker="w2"), 60) is False

    done = dataclasses.replace(step, outcome="success", ended_at=at(5), verified=True)
    await store.end_action(done)
    assert await store.begin_action(dataclasses.replace(step, worker="w2"), 0.01) is False

    got = await store.get_incident(inc.id)
    assert got is not None
    assert got.actions == [done]
    # Another step of the same incident is a claim of its own.
    assert await store.begin_action(action(inc.id, "retry_with_backoff:2", start=10), 60)


async def test_concurrent_claims_of_one_step_have_one_winner(store: Store) -> None:
    inc = await store.create_incident(incident())
    claims = [
        store.begin_action(action(inc.id, "scale_resources:1", worker=f"w{i}"), 60)
        for i in range(8)
    ]
    assert sorted(await asyncio.gather(*claims)) == [False] * 7 + [True]


async def test_a_running_step_whose_lease_ran_out_is_taken_over(store: Store) -> None:
    inc = await store.create_incident(incident())
    step = action(inc.id, "rollback_to_checkpoint:1", worker="dead")
    assert await store.begin_action(step, lease_seconds=0.05)

    takeover = dataclasses.replace(step, worker="alive", started_at=at(30))

    async def taken() -> bool:
        return await store.begin_action(takeover, lease_seconds=60)

    await until(taken)
    assert await store.begin_action(step, lease_seconds=60) is False  # the dead one lost it
    done = dataclasses.replace(takeover, outcome="failure", ended_at=at(40), retryable=True)
    await store.end_action(done)
    got = await store.get_incident(inc.id)
    assert got is not None
    assert got.actions == [done]


async def test_a_late_result_of_a_taken_over_step_does_not_overwrite_the_new_owner(
    store: Store,
) -> None:
    inc = await store.create_incident(incident())
    step = action(inc.id, "retry_with_backoff#1", worker="slow")
    assert await store.begin_action(step, lease_seconds=0.05)
    takeover = dataclasses.replace(step, worker="new-owner", started_at=at(30))

    async def taken() -> bool:
        return await store.begin_action(takeover, lease_seconds=60)

    await until(taken)
    late = dataclasses.replace(step, outcome="success", ended_at=at(35))
    await store.end_action(late)  # the slow worker finishes after losing its claim
    got = await store.get_incident(inc.id)
    assert got is not None
    assert [(a.worker, a.outcome) for a in got.actions] == [("new-owner", "running")]
    done = dataclasses.replace(takeover, outcome="failure", ended_at=at(40))
    await store.end_action(done)
    got = await store.get_incident(inc.id)
    assert got is not None
    assert got.actions == [done]


async def test_a_renewed_step_lease_keeps_the_step_from_other_workers(store: Store) -> None:
    inc = await store.create_incident(incident())
    step = action(inc.id, "scale_resources#1", worker="owner")
    assert await store.begin_action(step, lease_seconds=0.05)
    assert await store.renew_action(step, lease_seconds=60) is True
    intruder = dataclasses.replace(step, worker="intruder", started_at=at(30))
    assert await store.renew_action(intruder, lease_seconds=60) is False  # not its claim
    assert await store.renew_action(action(inc.id, "nope#1"), lease_seconds=60) is False
    await asyncio.sleep(0.2)  # the first lease would have run out by now
    assert await store.begin_action(intruder, lease_seconds=60) is False

    # Once the owner stops renewing, the lease lapses and the step can be taken over.
    assert await store.renew_action(step, lease_seconds=0.05) is True

    async def taken() -> bool:
        return await store.begin_action(intruder, lease_seconds=60)

    await until(taken)
    assert await store.renew_action(step, lease_seconds=60) is False  # the old owner lost it
    assert await store.renew_action(intruder, lease_seconds=60) is True
    done = dataclasses.replace(intruder, outcome="success", ended_at=at(40), verified=True)
    await store.end_action(done)
    assert await store.renew_action(done, lease_seconds=60) is False  # ended: nothing to renew
    got = await store.get_incident(inc.id)
    assert got is not None
    assert got.actions == [done]


async def test_ending_a_step_that_was_never_begun_is_an_error(store: Store) -> None:
    inc = await store.create_incident(incident())
    with pytest.raises(StoreError, match="never begun"):
        await store.end_action(action(inc.id, "refresh_credentials:1"))


async def test_actions_since_filters_by_time_pipeline_and_target(store: Store) -> None:
    one = await store.create_incident(incident("etl_orders"))
    two = await store.create_incident(incident("etl_users"))
    rows = [
        action(one.id, "s1", start=0),
        action(one.id, "s2", start=100, target="scale"),
        action(two.id, "s1", start=50, pipeline="etl_users"),
        action(two.id, "s2", start=200, pipeline="etl_users", target="scale"),
    ]
    for row in rows:
        assert await store.begin_action(row, lease_seconds=60)

    def keys(found: object) -> list[tuple[int, str]]:
        return [(a.incident_id, a.step) for a in found]  # type: ignore[attr-defined]

    assert keys(await store.actions_since(at(0))) == [
        (one.id, "s1"),
        (two.id, "s1"),
        (one.id, "s2"),
        (two.id, "s2"),
    ]
    assert keys(await store.actions_since(at(50))) == [
        (two.id, "s1"),
        (one.id, "s2"),
        (two.id, "s2"),
    ]
    assert keys(await store.actions_since(at(1), pipeline="etl_orders")) == [(one.id, "s2")]
    assert keys(await store.actions_since(at(0), target="scale")) == [
        (one.id, "s2"),
        (two.id, "s2"),
    ]
    assert keys(await store.actions_since(at(0), pipeline="etl_users", target="restart")) == [
        (two.id, "s1")
    ]
    assert keys(await store.actions_since(at(201))) == []


async def test_concurrent_ingests_share_a_batch_and_duplicates_go_to_the_first(
    store: Store,
) -> None:
    assert (await store.ingest(notification(alert("old")))).accepted == 1
    a, b, c = alert("fa"), alert("fb"), alert("fc")
    # one gather: every ingest reaches the store's batcher before its first flush
    results = await asyncio.gather(
        store.ingest(notification(a, b)),
        store.ingest(notification(a, b)),  # an HA peer's copy, same batch
        store.ingest(notification(alert("old"), c)),  # stored before, plus one new
        store.ingest(notification(c, c)),
    )
    assert [(r.accepted, r.duplicates) for r in results] == [(2, 0), (0, 2), (1, 1), (0, 2)]
    assert await store.queue_depth() == 4
    claimed = await store.claim_events("w1", 10, lease_seconds=60)
    assert sorted(e.alert.fingerprint for e in claimed) == ["fa", "fb", "fc", "old"]


# notification outbox -----------------------------------------------------------
def _message(event: str = "escalated", destination: str = "teams.t.notify[0]") -> OutboxMessage:
    return OutboxMessage(
        event=event, destination=destination, kind="json", detail={"x": 1}, created_at=at(1)
    )


async def test_outbox_rows_are_written_with_the_incident_and_claimed_once(store: Store) -> None:
    inc = incident()
    inc.outbox.append(_message("opened"))
    created = await store.create_incident(inc)
    assert created.outbox == []  # written, not kept twice
    created.timeline.append(TimelineEntry(at(2), "escalated", {"reason": "r"}))
    created.outbox.append(_message("escalated", "teams.t.notify[1]"))
    await store.save_incident(created)
    depth, oldest = await store.outbox_stats()
    assert depth == 2 and oldest == at(1)
    first = await store.claim_outbox("w1", 10, lease_seconds=60)
    assert [(m.event, m.incident_id, m.attempts) for m in first] == [
        ("opened", created.id, 1),
        ("escalated", created.id, 1),
    ]
    assert first[0].detail == {"x": 1}
    assert await store.claim_outbox("w2", 10, lease_seconds=60) == []  # leased to w1


async def test_outbox_finish_records_the_attempt_and_its_timeline_entry(store: Store) -> None:
    inc = incident()
    inc.outbox.append(_message())
    created = await store.create_incident(inc)
    (msg,) = await store.claim_outbox("w1", 10, lease_seconds=60)
    entry = TimelineEntry(at(3), "notification_failed", {"destination": msg.destination})
    assert not await store.finish_outbox(msg, "w2", "sent", entry)  # not the lease holder
    assert await store.finish_outbox(msg, "w1", "failed", entry, retry_at=at(0))
    (again,) = await store.claim_outbox("w2", 10, lease_seconds=60)
    assert again.id == msg.id and again.attempts == 2
    sent = TimelineEntry(at(4), "notification_sent", {"destination": msg.destination})
    assert await store.finish_outbox(again, "w2", "sent", sent)
    assert not await store.finish_outbox(again, "w2", "sent", sent)  # done already
    assert await store.outbox_stats() == (0, None)
    assert await store.claim_outbox("w3", 10, lease_seconds=60) == []
    stored = await store.get_incident(created.id)
    assert stored is not None
    events = [t.event for t in stored.timeline]
    assert events.count("notification_failed") == 1 and events.count("notification_sent") == 1
    # a held copy saved afterwards keeps the delivery entries
    created.state = "escalated"
    await store.save_incident(created)
    again_stored = await store.get_incident(created.id)
    assert again_stored is not None
    assert [t.event for t in again_stored.timeline].count("notification_sent") == 1


async def test_outbox_lease_runs_out_and_another_worker_takes_the_message(store: Store) -> None:
    inc = incident()
    inc.outbox.append(_message())
    await store.create_incident(inc)
    (msg,) = await store.claim_outbox("dead", 10, lease_seconds=0.2)
    await asyncio.sleep(0.3)
    (taken,) = await store.claim_outbox("w2", 10, lease_seconds=60)
    assert taken.id == msg.id and taken.attempts == 2
    late = TimelineEntry(at(5), "notification_sent", {})
    assert not await store.finish_outbox(msg, "dead", "sent", late)


async def test_outbox_is_not_written_when_the_save_fails(store: Store) -> None:
    ghost = incident()
    ghost.id = 987654
    ghost.outbox.append(_message())
    with pytest.raises(StoreError):
        await store.save_incident(ghost)
    assert await store.outbox_stats() == (0, None)
    assert len(ghost.outbox) == 1  # still pending: the next save writes it


async def test_outbox_delivers_one_incidents_messages_to_a_destination_in_order(
    store: Store,
) -> None:
    inc = incident()
    inc.outbox += [_message("opened"), _message("escalated"), _message("opened", "other")]
    await store.create_incident(inc)
    first = await store.claim_outbox("w1", 10, lease_seconds=60)
    assert [(m.event, m.destination) for m in first] == [
        ("opened", "teams.t.notify[0]"),
        ("opened", "other"),
    ]  # escalated waits for opened to the same destination
    assert await store.claim_outbox("w2", 10, lease_seconds=60) == []
    entry = TimelineEntry(at(3), "notification_failed", {})
    assert await store.finish_outbox(first[0], "w1", "failed", entry, retry_at=at(0))
    (again,) = await store.claim_outbox("w2", 10, lease_seconds=60)
    assert again.event == "opened" and again.destination == "teams.t.notify[0]"
    assert await store.finish_outbox(again, "w2", "sent", entry)
    (then,) = await store.claim_outbox("w2", 10, lease_seconds=60)
    assert then.event == "escalated"


async def test_alerts_and_entries_are_appended_and_a_resolution_updates_its_alert(
    store: Store,
) -> None:
    inc = await store.create_incident(incident())
    for n in range(2, 52):  # an incident that keeps collecting alerts: each save adds one
        inc.alerts.append(alert(f"fp{n}", starts=n).to_json())
        inc.timeline.append(TimelineEntry(at(n), "alert_joined", {"fingerprint": f"fp{n}"}))
        await store.save_incident(inc)
    inc.alerts[0] = alert("fp1", status="resolved").to_json()  # the first one resolves
    await store.save_incident(inc)
    got = await store.get_incident(inc.id)
    assert got is not None
    assert [a["fingerprint"] for a in got.alerts] == [f"fp{n}" for n in range(1, 52)]
    assert [a["status"] for a in got.alerts[:2]] == ["resolved", "firing"]
    assert [t.event for t in got.timeline] == ["opened"] + ["alert_joined"] * 50
    # a second copy read before more was added keeps both writers' entries
    other = await store.get_incident(inc.id)
    assert other is not None
    got.timeline.append(TimelineEntry(at(100), "escalated", {"reason": "test"}))
    other.timeline.append(TimelineEntry(at(101), "event_abandoned", {"event_id": 7}))
    await store.save_incident(got)
    await store.save_incident(other)
    final = await store.get_incident(inc.id)
    assert final is not None
    assert [t.event for t in final.timeline][-2:] == ["escalated", "event_abandoned"]
    assert len(final.alerts) == 51


async def test_incident_version_is_read_alone(store: Store) -> None:
    inc = await store.create_incident(incident())
    assert await store.incident_version(inc.id) == inc.version == 0
    inc.version += 1
    await store.save_incident(inc)
    assert await store.incident_version(inc.id) == 1
    assert await store.incident_version(inc.id + 1000) is None


async def test_incident_sevs_names_the_sev_of_each_incident_in_the_states(store: Store) -> None:
    ids = {
        name: (await store.create_incident(incident(f"etl_{name}", sev=sev, state=state))).id
        for name, sev, state in (
            ("a", "SEV1", "open"),
            ("b", "SEV3", "escalated"),
            ("c", "SEV2", "resolved"),
        )
    }
    assert await store.incident_sevs(("open", "escalated")) == {ids["a"]: "SEV1", ids["b"]: "SEV3"}
    assert await store.incident_sevs(("resolved",)) == {ids["c"]: "SEV2"}
    assert await store.incident_sevs(("closed", "x' OR 1=1 --")) == {}
