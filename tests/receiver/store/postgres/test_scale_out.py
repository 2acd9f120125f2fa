"""Several receiver replicas on one PostgreSQL: effects happen once, dead replicas' work is retaken.

The "replicas" here are separate ``PostgresStore`` instances (separate pools,
like separate processes) and, where death matters, a real child process that
is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg
import pytest
from core_helpers import until

from receiver.models import ActionRecord, Alert, Incident, Notification, TimelineEntry
from receiver.store.postgres.ledger import TAKEOVER_EVENT
from receiver.store.postgres.migrate import migrations
from receiver.store.postgres.store import RETAKEN_EVENT, PostgresStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def alert(fingerprint: str, pipeline: str = "etl_orders") -> Alert:
    return Alert(
        status="firing",
        labels={"alertname": "PipelineDown", "pipeline": pipeline},
        annotations={},
        starts_at=NOW,
        ends_at=None,
        fingerprint=fingerprint,
    )


def notification(*alerts: Alert) -> Notification:
    return Notification(receiver="pipemedic", status="firing", alerts=alerts)


@pytest.fixture
def dsn(postgres_server: Callable[[], str]) -> str:
    return postgres_server()


@pytest.fixture
async def replicas(dsn: str) -> AsyncIterator[list[PostgresStore]]:
    stores = [await PostgresStore.open(dsn) for _ in range(3)]
    yield stores
    for store in stores:
        await store.close()


async def test_replicas_starting_together_migrate_the_schema_once(dsn: str) -> None:
    stores = await asyncio.gather(*(PostgresStore.open(dsn) for _ in range(4)))
    try:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        finally:
            await conn.close()
        assert [(r["version"], r["name"]) for r in rows] == [
            (m.version, m.name) for m in migrations()
        ]
    finally:
        for store in stores:
            await store.close()


async def test_the_same_notification_at_every_replica_is_stored_once(
    replicas: list[PostgresStore],
) -> None:
    payload = notification(*(alert(f"fp{i}") for i in range(20)))
    results = await asyncio.gather(*(r.ingest(payload) for r in replicas for _ in range(5)))
    assert sum(r.accepted for r in results) == 20
    assert sum(r.duplicates for r in results) == 20 * 14
    assert await replicas[0].queue_depth() == 20


async def test_replicas_claiming_at_once_never_share_an_event(
    replicas: list[PostgresStore],
) -> None:
    await replicas[0].ingest(notification(*(alert(f"fp{i}") for i in range(60))))

    async def drain(store: PostgresStore, name: str) -> list[int]:
        taken: list[int] = []
        while batch := await store.claim_events(name, 7, lease_seconds=300):
            taken += [e.id for e in batch]
        return taken

    claimed = await asyncio.gather(*(drain(r, f"replica-{i}") for i, r in enumerate(replicas)))
    every = [event_id for batch in claimed for event_id in batch]
    assert len(every) == 60
    assert len(set(every)) == 60


async def test_one_replica_wins_each_recovery_step(replicas: list[PostgresStore]) -> None:
    incident = await replicas[0].create_incident(
        Incident(id=0, pipeline="etl_orders", state="recovering", sev="SEV2", opened_at=NOW)
    )
    for step in ("retry_with_backoff#1", "retry_with_backoff#2"):
        record = ActionRecord(
            incident_id=incident.id,
            step=step,
            pipeline="etl_orders",
            strategy="retry_with_backoff",
            action="http",
            target="http restart",
            started_at=NOW,
        )
        claims = [
            r.begin_action(dataclasses.replace(record, worker=f"replica-{i}-{n}"), 300)
            for i, r in enumerate(replicas)
            for n in range(4)
        ]
        assert sorted(await asyncio.gather(*claims)) == [False] * 11 + [True]
    # Guardrails read the same history at every replica.
    seen = [len(await r.actions_since(NOW, pipeline="etl_orders")) for r in replicas]
    assert seen == [2, 2, 2]


async def test_pipeline_lock_serialises_replicas(replicas: list[PostgresStore]) -> None:
    first, second, _ = replicas
    order: list[str] = []
    holding = asyncio.Event()

    async def hold() -> None:
        async with first.pipeline_lock("etl_orders"):
            holding.set()
            await asyncio.sleep(0.2)
            order.append("first done")

    async def wait() -> None:
        await holding.wait()
        async with second.pipeline_lock("etl_orders"):
            order.append("second in")
        async with second.pipeline_lock("etl_users"):
            order.append("other pipeline")

    await asyncio.wait_for(asyncio.gather(hold(), wait()), timeout=60)
    assert order == ["first done", "second in", "other pipeline"]


# a replica that dies -----------------------------------------------------------
_DYING_REPLICA = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from receiver.models import ActionRecord
    from receiver.store.postgres.store import PostgresStore

    async def main(dsn: str, incident_id: int) -> None:
        store = await PostgresStore.open(dsn)
        (event,) = await store.claim_events("replica-a", 10, lease_seconds=1.0)
        async with store.pipeline_lock(event.alert.pipeline):
            record = ActionRecord(
                incident_id=incident_id, step="retry_with_backoff#1", pipeline="etl_orders",
                strategy="retry_with_backoff", action="http", target="http restart",
                started_at=datetime.now(UTC), worker="replica-a")
            assert await store.begin_action(record, lease_seconds=1.0)
            print("mid-action", flush=True)
            await asyncio.sleep(3600)   # the action hangs until SIGKILL

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_a_killed_replicas_event_lock_and_step_are_taken_over(
    dsn: str, replicas: list[PostgresStore]
) -> None:
    survivor = replicas[0]
    incident = await survivor.create_incident(
        Incident(
            id=0,
            pipeline="etl_orders",
            state="recovering",
            sev="SEV2",
            opened_at=NOW,
            timeline=[TimelineEntry(NOW, "detected", {"alert": "PipelineDown"})],
        )
    )
    await survivor.ingest(notification(alert("fp1")))
    child = subprocess.Popen(
        [sys.executable, "-c", _DYING_REPLICA, dsn, str(incident.id)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pipeline_lock = survivor.pipeline_lock("etl_orders")
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), timeout=60)
        assert line.strip() == "mid-action", child.stderr.read() if child.stderr else ""

        # Alive, it holds the pipeline: the survivor waits.
        locked = asyncio.ensure_future(pipeline_lock.__aenter__())
        await asyncio.sleep(0.2)
        assert not locked.done()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    await asyncio.wait_for(locked, timeout=60)  # PostgreSQL dropped the dead session's lock
    try:
        events: list[object] = []

        async def retaken() -> bool:
            events.extend(await survivor.claim_events("replica-b", 10, lease_seconds=300))
            return bool(events)

        await until(retaken)
        step = ActionRecord(
            incident_id=incident.id,
            step="retry_with_backoff#1",
            pipeline="etl_orders",
            strategy="retry_with_backoff",
            action="http",
            target="http restart",
            started_at=datetime.now(UTC),
            worker="replica-b",
        )
        await until(lambda: survivor.begin_action(step, lease_seconds=300))  # lease runs out
        await survivor.end_action(dataclasses.replace(step, outcome="success"))
    finally:
        await pipeline_lock.__aexit__(None, None, None)

    got = await survivor.get_incident(incident.id)
    assert got is not None
    notes = {e.event: e.detail for e in got.timeline}
    assert notes[RETAKEN_EVENT]["from_worker"] == "replica-a"
    assert notes[RETAKEN_EVENT]["to_worker"] == "replica-b"
    assert notes[RETAKEN_EVENT]["attempt"] == 2
    # The step's takeover is the recoverer's to write (test_worker.py), once on any store.
    assert TAKEOVER_EVENT not in notes
    (done,) = got.actions
    assert (done.worker, done.outcome) == ("replica-b", "success")
    assert json.dumps(got.to_json())  # the timeline stays JSON for the API
