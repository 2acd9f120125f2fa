"""PostgreSQL store: several receiver replicas share one queue, incidents and ledger.

Each guarantee lives in the database, so it holds across replicas:

* ``ingest`` inserts alerts with ``ON CONFLICT DO NOTHING`` on (fingerprint,
  starts_at, status): a repeat, even from another Alertmanager peer to another
  replica, changes nothing. Concurrent ingests of one replica share one
  statement and one commit (``batching.Batcher``), as on SQLite;
* ``claim_events`` takes rows ``FOR UPDATE SKIP LOCKED`` and leases them
  (``claimed_by``, ``lease_until``); a dead replica's rows are taken again
  once the lease ran out;
* ``pipeline_lock`` is a session advisory lock per pipeline, so replicas
  serialise work on one incident; PostgreSQL releases it when the holder's
  connection ends, even if its process died;
* the action ledger (``ledger``) claims (incident_id, step) exactly once;
* takeovers are written to the incident's timeline: ``work_taken_over`` when
  an event is claimed again after its lease ran out (here), and
  ``action_taken_over`` when a running step is (by the recoverer, on every store);
* ``renew_leases`` extends a worker's event leases while it still works on them.

Leases run on the database's clock, the one clock all replicas share. The
statements are in ``sql`` (all parameterised), the schema in
``migrations`` (applied on open).

Example::

    store = await PostgresStore.open("postgresql://pipemedic@127.0.0.1:5432/pipemedic")
    result = await store.ingest(notification)
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from receiver.models import (
    ActionRecord,
    Alert,
    AlertEvent,
    Diagnosis,
    Incident,
    IngestResult,
    Notification,
    OutboxMessage,
    TimelineEntry,
    alert_key,
)
from receiver.store.base import StoreError, StoreUnavailable
from receiver.store.batching import Batcher, credit
from receiver.store.locks import KeyedLocks
from receiver.store.postgres import ledger as pg_ledger
from receiver.store.postgres import outbox, sql
from receiver.store.postgres.migrate import migrate

__all__ = ["RETAKEN_EVENT", "PostgresStore", "redact_dsn"]

# Timeline event written when a worker claims an event whose lease ran out.
RETAKEN_EVENT = "work_taken_over"

# Errors that mean "the database is not reachable or not taking work now".
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
    asyncpg.ReadOnlySQLTransactionError,
)
_ONE_OPEN = "pipeline {!r} already has an incident that is not closed"


def redact_dsn(dsn: str) -> str:
    """Return the DSN without its password, for error messages and logs."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = f"{parts.username}:***@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def _init_connection(conn: Any) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def _incident_values(incident: Incident) -> tuple[Any, ...]:
    """Return parameters of CREATE_INCIDENT ($1..$17; SAVE_INCIDENT's $2..$18)."""
    return (
        incident.pipeline,
        incident.state,
        incident.sev,
        incident.category,
        incident.team,
        incident.roles,
        incident.diagnosis.to_json() if incident.diagnosis else None,
        incident.opened_at,
        incident.resolved_at,
        incident.closed_at,
        incident.postmortem,
        [d.to_json() for d in incident.diagnoses],
        incident.acknowledged_at,
        incident.acknowledged_by,
        incident.pending_approval,
        incident.review,
        incident.version,
    )


def _incident(
    row: Any,
    timeline: list[TimelineEntry],
    actions: list[ActionRecord],
    alerts: list[dict[str, Any]],
) -> Incident:
    diagnosis = row["diagnosis"]
    incident = Incident(
        id=int(row["id"]),
        pipeline=row["pipeline"],
        state=row["state"],
        sev=row["sev"],
        opened_at=row["opened_at"],
        category=row["category"],
        team=row["team"],
        roles=dict(row["roles"] or {}),
        alerts=alerts,
        diagnosis=Diagnosis.from_json(diagnosis) if diagnosis else None,
        diagnoses=[Diagnosis.from_json(d) for d in row["diagnoses"] or ()],
        actions=actions,
        timeline=timeline,
        resolved_at=row["resolved_at"],
        closed_at=row["closed_at"],
        postmortem=row["postmortem"],
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        pending_approval=row["pending_approval"],
        review=row["review"],
        version=int(row["version"]),
    )
    incident.mark_stored()
    return incident


async def _note_retaken(conn: Any, row: Any, worker: str) -> None:
    """Write on the incident's timeline that ``worker`` took over a dead worker's event."""
    alert = row["alert"]
    labels = alert.get("labels") or {}
    detail = {
        "event_id": int(row["id"]),
        "alert": labels.get("alertname", ""),
        "fingerprint": alert.get("fingerprint", ""),
        "status": alert.get("status", ""),
        "from_worker": row["previous"],
        "to_worker": worker,
        "attempt": int(row["attempts"]),
    }
    await conn.execute(
        sql.NOTE_RETAKEN, labels.get("pipeline", ""), RETAKEN_EVENT, pg_ledger.json_text(detail)
    )


class PostgresStore:
    """The ``Store`` on PostgreSQL (asyncpg pools), safe for several replicas at once.

    Open with ``await PostgresStore.open(dsn)``: it connects and migrates the
    schema. A second small pool holds the sessions of pipeline locks, so
    waiting for a lock never starves the queries the lock holder needs.
    """

    def __init__(self, dsn: str, pool: Any, lock_pool: Any) -> None:
        self._dsn = dsn
        self._pool = pool
        self._lock_pool = lock_pool
        # each lock holds a connection of lock_pool; a pipeline lock's holder takes an
        # incident lock too, so half of them can be pipeline locks without starving
        self.max_pipeline_locks: int | None = max(lock_pool.get_max_size() // 2, 1)
        self._local_locks: KeyedLocks[tuple[int, str]] = KeyedLocks()
        self._ingests: Batcher[Notification, IngestResult] = Batcher(self._flush_ingests)

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        lock_pool_size: int = 10,
        command_timeout: float = 30.0,
    ) -> PostgresStore:
        """Connect, migrate the schema, return the store; ``StoreUnavailable`` if down."""
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                command_timeout=command_timeout,
                init=_init_connection,
            )
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot connect to {redact_dsn(dsn)}: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            lock_pool = await asyncpg.create_pool(dsn, min_size=0, max_size=lock_pool_size)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, _UNAVAILABLE):
                raise StoreUnavailable(f"cannot migrate {redact_dsn(dsn)}: {exc}") from exc
            raise
        return cls(dsn, pool, lock_pool)

    @asynccontextmanager
    async def _conn(self, *, transaction: bool = False) -> AsyncIterator[Any]:
        """Lend a pooled connection; turn connection trouble into ``StoreUnavailable``."""
        try:
            async with self._pool.acquire() as conn:
                if transaction:
                    async with conn.transaction():
                        yield conn
                else:
                    yield conn
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL at {redact_dsn(self._dsn)}: {exc}") from exc

    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.execute(sql.HEARTBEAT)

    async def close(self) -> None:
        await self._ingests.close()
        await self._lock_pool.close()
        await self._pool.close()

    # durable queue ---------------------------------------------------------
    async def ingest(self, notification: Notification) -> IngestResult:
        if not notification.alerts:
            return IngestResult(accepted=0, duplicates=0)
        return await self._ingests.submit(notification)

    async def _flush_ingests(self, batch: list[Notification]) -> list[IngestResult]:
        """Insert the alerts of concurrent ingests in one statement (one commit)."""
        keys: list[list[tuple[str, datetime, str]]] = []
        fingerprints, starts, statuses, docs, groups = [], [], [], [], []
        for n in batch:
            keys.append([(a.fingerprint, a.starts_at, a.status) for a in n.alerts])
            for a in n.alerts:
                fingerprints.append(a.fingerprint)
                starts.append(a.starts_at)
                statuses.append(a.status)
                docs.append(json.dumps(a.to_json()))
                groups.append(n.group_key)
        async with self._conn() as conn:
            rows = await conn.fetch(sql.INGEST, fingerprints, starts, statuses, docs, groups)
        inserted = {(r["fingerprint"], r["starts_at"], r["status"]) for r in rows}
        return [
            IngestResult(accepted=n, duplicates=len(k) - n)
            for k, n in zip(keys, credit(keys, inserted), strict=True)
        ]

    async def claim_events(self, worker: str, limit: int, lease_seconds: float) -> list[AlertEvent]:
        async with self._conn(transaction=True) as conn:
            rows = await conn.fetch(sql.CLAIM_EVENTS, worker, limit, float(lease_seconds))
            for row in rows:
                if row["previous"] is not None:
                    await _note_retaken(conn, row, worker)
        return [
            AlertEvent(
                id=int(r["id"]),
                alert=Alert.from_json(r["alert"]),
                received_at=r["received_at"],
                group_key=r["group_key"],
                attempts=int(r["attempts"]),
            )
            for r in sorted(rows, key=lambda r: int(r["id"]))
        ]

    async def renew_leases(
        self, worker: str, event_ids: Sequence[int], lease_seconds: float
    ) -> set[int]:
        if not event_ids:
            return set()
        async with self._conn() as conn:
            rows = await conn.fetch(sql.RENEW_LEASES, list(event_ids), worker, float(lease_seconds))
        return {int(r["id"]) for r in rows}

    async def finish_event(self, event_id: int, worker: str) -> None:
        async with self._conn() as conn:
            await conn.execute(sql.FINISH_EVENT, event_id, worker)

    async def queue_depth(self) -> int:
        async with self._conn() as conn:
            return int(await conn.fetchval(sql.QUEUE_DEPTH))

    # incidents -------------------------------------------------------------
    def pipeline_lock(self, pipeline: str) -> AbstractAsyncContextManager[None]:
        return self._advisory_lock(sql.PIPELINE_LOCK_NS, pipeline, "pipeline")

    def incident_lock(self, incident_id: int) -> AbstractAsyncContextManager[None]:
        return self._advisory_lock(sql.INCIDENT_LOCK_NS, str(incident_id), "incident")

    @asynccontextmanager
    async def _advisory_lock(self, namespace: int, key: str, what: str) -> AsyncIterator[None]:
        # In-process first, so a replica waits with at most one session per key.
        async with self._local_locks.hold((namespace, key)):
            where = f"PostgreSQL at {redact_dsn(self._dsn)}: cannot lock {what}"
            try:
                conn = await self._lock_pool.acquire()
            except _UNAVAILABLE as exc:
                raise StoreUnavailable(f"{where}: {exc}") from exc
            try:
                await conn.execute(sql.LOCK_PIPELINE, namespace, key)
            except BaseException as exc:
                # Failed or cancelled while waiting: the reset on release drops the lock.
                await self._lock_pool.release(conn)
                if isinstance(exc, _UNAVAILABLE):
                    raise StoreUnavailable(f"{where}: {exc}") from exc
                raise
            try:
                yield
            finally:
                try:
                    await conn.execute(sql.UNLOCK_PIPELINE, namespace, key)
                finally:
                    await self._lock_pool.release(conn)

    async def incident_version(self, incident_id: int) -> int | None:
        async with self._conn() as conn:
            found = await conn.fetchval(sql.INCIDENT_VERSION, incident_id)
        return None if found is None else int(found)

    async def incident_sevs(self, states: Collection[str]) -> dict[int, str]:
        async with self._conn() as conn:
            rows = await conn.fetch(sql.INCIDENT_SEVS, list(states))
        return {int(r["id"]): str(r["sev"]) for r in rows}

    async def open_incident(self, pipeline: str) -> Incident | None:
        found = await self._incidents(sql.OPEN_INCIDENT, pipeline)
        return found[0] if found else None

    async def last_incident(self, pipeline: str) -> Incident | None:
        found = await self._incidents(sql.LAST_INCIDENT, pipeline)
        return found[0] if found else None

    async def get_incident(self, incident_id: int) -> Incident | None:
        found = await self._incidents(sql.GET_INCIDENT, incident_id)
        return found[0] if found else None

    async def approvals_waiting(self) -> list[tuple[int, str, dict[str, Any]]]:
        async with self._conn() as conn:
            rows = await conn.fetch(sql.APPROVALS_WAITING)
        return [(int(r["id"]), r["pipeline"], dict(r["pending_approval"])) for r in rows]

    async def list_incidents(
        self,
        *,
        state: str | None = None,
        pipeline: str | None = None,
        sev: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Incident]:
        return await self._incidents(sql.LIST_INCIDENTS, state, pipeline, sev, limit, offset)

    async def _incidents(self, query: str, *args: Any) -> list[Incident]:
        """Run an incident SELECT of ``sql``; add timelines and the ledger's actions."""
        async with self._conn() as conn:
            rows = await conn.fetch(query, *args)
            ids = [int(r["id"]) for r in rows]
            if not ids:
                return []
            entries = await conn.fetch(sql.TIMELINES, ids)
            actions = await conn.fetch(sql.ACTIONS_OF, ids)
            alert_rows = await conn.fetch(sql.ALERTS_OF, ids)
        timelines: dict[int, list[TimelineEntry]] = {i: [] for i in ids}
        for e in entries:
            entry = TimelineEntry(
                at=e["at"], event=e["event"], detail=json.loads(e["detail"]), by=e["by_person"]
            )
            timelines[int(e["incident_id"])].append(entry)
        ledger: dict[int, list[ActionRecord]] = {i: [] for i in ids}
        for a in actions:
            ledger[int(a["incident_id"])].append(pg_ledger.action_from_row(a))
        alerts: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        for a in alert_rows:
            alerts[int(a["incident_id"])].append(a["doc"])
        return [
            _incident(r, timelines[int(r["id"])], ledger[int(r["id"])], alerts[int(r["id"])])
            for r in rows
        ]

    async def create_incident(self, incident: Incident) -> Incident:
        pending = list(incident.outbox)
        async with self._conn(transaction=True) as conn:
            try:
                new_id = await conn.fetchval(sql.CREATE_INCIDENT, *_incident_values(incident))
            except asyncpg.UniqueViolationError:
                raise StoreError(_ONE_OPEN.format(incident.pipeline)) from None
            incident.id = int(new_id)
            incident.stored = None
            await self._merge_children(conn, incident)
            await outbox.write(conn, incident.id, pending)
        del incident.outbox[: len(pending)]
        incident.mark_stored()
        return incident

    async def save_incident(self, incident: Incident) -> None:
        pending = list(incident.outbox)
        async with self._conn(transaction=True) as conn:
            try:
                found = await conn.fetchval(
                    sql.SAVE_INCIDENT, incident.id, *_incident_values(incident)
                )
            except asyncpg.UniqueViolationError:
                raise StoreError(_ONE_OPEN.format(incident.pipeline)) from None
            if found is None:
                raise StoreError(f"incident {incident.id} does not exist; create it first")
            await self._merge_children(conn, incident)
            await outbox.write(conn, incident.id, pending)
        del incident.outbox[: len(pending)]
        incident.mark_stored()

    # notification outbox -----------------------------------------------------
    async def claim_outbox(
        self, worker: str, limit: int, lease_seconds: float
    ) -> list[OutboxMessage]:
        async with self._conn(transaction=True) as conn:
            return await outbox.claim(conn, worker, limit, lease_seconds)

    async def finish_outbox(
        self,
        message: OutboxMessage,
        worker: str,
        outcome: str,
        entry: TimelineEntry,
        retry_at: datetime | None = None,
    ) -> bool:
        async with self._conn(transaction=True) as conn:
            return await outbox.finish(conn, message, worker, outcome, entry, retry_at)

    async def outbox_stats(self) -> tuple[int, datetime | None]:
        async with self._conn() as conn:
            return await outbox.stats(conn)

    async def _merge_children(self, conn: Any, incident: Incident) -> None:
        """Append timeline entries and alerts not stored yet; add actions the ledger lacks.

        Never deletes: entries another replica wrote (a takeover) stay, and the
        ledger's own rows win over the incident's copies of them. An incident
        read from the store appends what it added since (no read); one that was
        not (``stored`` unset) is compared with the stored timeline first.
        """
        entries, alerts = incident.unsaved()
        if incident.stored is None:
            stored = await conn.fetch(sql.TIMELINE_OF, incident.id)
            have = Counter((r["at"], r["event"], r["detail"]) for r in stored)
            entries = []
            for entry in incident.timeline:
                key = (entry.at, entry.event, pg_ledger.json_text(entry.detail))
                if have[key] > 0:
                    have[key] -= 1
                else:
                    entries.append(entry)
        new: list[tuple[int, datetime, str, str, str | None]] = [
            (incident.id, e.at, e.event, pg_ledger.json_text(e.detail), e.by) for e in entries
        ]
        if new:
            await conn.executemany(sql.APPEND_TIMELINE, new)
        if alerts:
            await conn.executemany(
                sql.APPEND_ALERT,
                [(incident.id, *alert_key(a), str(a.get("status", "")), a) for a in alerts],
            )
        if incident.actions:
            await conn.executemany(
                sql.ADD_ACTION_IF_MISSING,
                [
                    pg_ledger.action_values(dataclasses.replace(a, incident_id=incident.id))
                    for a in incident.actions
                ],
            )

    # action ledger ---------------------------------------------------------
    async def begin_action(self, record: ActionRecord, lease_seconds: float) -> bool:
        async with self._conn(transaction=True) as conn:
            return await pg_ledger.begin_action(conn, record, lease_seconds)

    async def renew_action(self, record: ActionRecord, lease_seconds: float) -> bool:
        async with self._conn() as conn:
            return await pg_ledger.renew_action(conn, record, lease_seconds)

    async def end_action(self, record: ActionRecord) -> None:
        async with self._conn(transaction=True) as conn:
            await pg_ledger.end_action(conn, record)

    async def actions_since(
        self, since: datetime, *, pipeline: str | None = None, target: str | None = None
    ) -> Sequence[ActionRecord]:
        async with self._conn() as conn:
            return await pg_ledger.actions_since(conn, since, pipeline, target)
