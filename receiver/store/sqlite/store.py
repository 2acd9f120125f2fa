"""The embedded store: SQLite in WAL mode with group commit.

All SQL of the SQLite backend lives here, with parameters only (alert data
never builds a statement). Every operation runs in the single writer thread
of ``GroupCommitWriter``; concurrent ingests share one transaction, and an
``await store.ingest(...)`` returns only after the commit that covers it
(``synchronous=FULL``: the WAL is fsynced at every commit). WAL checkpoints
run in a thread of their own (``checkpoint.Checkpointer``), never inside a
commit that callers wait on.

The SQLite store belongs to one receiver process: on opening it releases the
leases a previous (killed) process held, so acknowledged events it had not
finished are processed again at once. A ``secondary`` store is that process's
helper in another process (the notification delivery process,
``receiver.notify.process``): it releases nothing and leaves WAL checkpoints to
the primary.

Example::

    store = await SqliteStore.open("receiver.db")
    result = await store.ingest(notification)      # committed on return
    events = await store.claim_events("w1", 10, lease_seconds=60)
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from receiver.incidents.timeline import merge_timelines
from receiver.models import (
    ActionRecord,
    AlertEvent,
    Incident,
    IngestResult,
    Notification,
    OutboxMessage,
    TimelineEntry,
    alert_key,
)
from receiver.store.base import StoreError
from receiver.store.codec import (
    action_from_doc,
    alert_from_doc,
    dumps,
    epoch,
    incident_from_doc,
    incident_to_doc,
)
from receiver.store.locks import KeyedLocks
from receiver.store.sqlite import outbox
from receiver.store.sqlite.checkpoint import (
    WAL_SIZE_LIMIT_BYTES,
    Checkpointer,
    CheckpointObserver,
)
from receiver.store.sqlite.groupcommit import CommitObserver, GroupCommitWriter
from receiver.store.sqlite.ingest import event_rows, insert_batch

__all__ = ["SqliteStore"]

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    status      TEXT NOT NULL,
    pipeline    TEXT NOT NULL,
    alert       TEXT NOT NULL,
    group_key   TEXT NOT NULL,
    receiver    TEXT NOT NULL,
    received_at REAL NOT NULL,
    processed_at REAL,
    lease_owner TEXT,
    lease_until REAL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (fingerprint, starts_at, status)
);
CREATE INDEX IF NOT EXISTS events_pending ON events (id) WHERE processed_at IS NULL;
CREATE TABLE IF NOT EXISTS incidents (
    id        INTEGER PRIMARY KEY,
    pipeline  TEXT NOT NULL,
    state     TEXT NOT NULL,
    sev       TEXT NOT NULL,
    opened_at REAL NOT NULL,
    doc       TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_one_open ON incidents (pipeline)
    WHERE state != 'closed';
CREATE INDEX IF NOT EXISTS incidents_pipeline ON incidents (pipeline, id);
-- an incident's alerts and timeline: rows appended as they come, never the whole history
CREATE TABLE IF NOT EXISTS incident_alerts (
    seq         INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    status      TEXT NOT NULL,
    doc         TEXT NOT NULL,
    UNIQUE (incident_id, fingerprint, starts_at)
);
CREATE TABLE IF NOT EXISTS incident_timeline (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_timeline_incident ON incident_timeline (incident_id, id);
CREATE TABLE IF NOT EXISTS actions (
    incident_id INTEGER NOT NULL,
    step        TEXT NOT NULL,
    pipeline    TEXT NOT NULL,
    target      TEXT NOT NULL,
    worker      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    started_at  REAL NOT NULL,
    lease_until REAL,
    doc         TEXT NOT NULL,
    PRIMARY KEY (incident_id, step)
);
CREATE INDEX IF NOT EXISTS actions_started ON actions (started_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_CLAIM = """
UPDATE events SET lease_owner = ?, lease_until = ?, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM events
    WHERE processed_at IS NULL AND (lease_until IS NULL OR lease_until < ?)
    ORDER BY id LIMIT ?
)
RETURNING id, alert, received_at, group_key, attempts
"""

# Only the worker holding an unfinished event's lease may extend it.
_RENEW_LEASE = """
UPDATE events SET lease_until = ?
WHERE id = ? AND lease_owner = ? AND processed_at IS NULL
"""

_BEGIN_ACTION = """
INSERT INTO actions (incident_id, step, pipeline, target, worker, outcome, started_at,
                     lease_until, doc)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (incident_id, step) DO UPDATE SET
    pipeline = excluded.pipeline, target = excluded.target, worker = excluded.worker,
    outcome = excluded.outcome, started_at = excluded.started_at,
    lease_until = excluded.lease_until, doc = excluded.doc
WHERE actions.outcome = 'running' AND actions.lease_until < ?
"""

# Only the worker holding a running step's claim may extend its lease.
_RENEW_ACTION = """
UPDATE actions SET lease_until = ?
WHERE incident_id = ? AND step = ? AND worker = ? AND outcome = 'running'
"""


def _connect(
    path: str, busy_timeout_ms: int, synchronous: str, autocheckpoint: bool
) -> Callable[[], sqlite3.Connection]:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal" and path != ":memory:":
            raise StoreError(f"{path}: SQLite refused WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
        conn.execute("PRAGMA foreign_keys = ON")
        if not autocheckpoint:  # the Checkpointer's thread does it, off the commit path
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.executescript(_SCHEMA + outbox.SCHEMA)
        return conn

    return connect


class SqliteStore:
    """The ``Store`` Protocol on one SQLite file (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = 5000,
        synchronous: str = "FULL",
        on_commit: CommitObserver | None = None,
        clock: Callable[[], float] = time.time,
        checkpoint_interval: float = 0.1,
        checkpoint_restart_frames: int = WAL_SIZE_LIMIT_BYTES // 4096,
        on_checkpoint: CheckpointObserver | None = None,
        secondary: bool = False,
    ) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise StoreError(f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
        self.path = str(path)
        self._clock = clock
        # ":memory:" has no WAL to checkpoint (and no file a second connection could open)
        self.secondary = secondary
        self._checkpointer = (
            None
            if self.path == ":memory:" or secondary
            else Checkpointer(
                self.path,
                interval=checkpoint_interval,
                restart_frames=checkpoint_restart_frames,
                on_checkpoint=on_checkpoint,
            )
        )
        self._writer = GroupCommitWriter(
            _connect(
                self.path,
                busy_timeout_ms,
                synchronous.upper(),
                self._checkpointer is None and not secondary,
            ),
            on_commit=on_commit,
        )
        self._locks: KeyedLocks[str] = KeyedLocks()
        self._incident_locks: KeyedLocks[int] = KeyedLocks()
        self._pending = 0
        self.max_pipeline_locks: int | None = None  # in-process locks: no limit

    @classmethod
    async def open(cls, path: str | Path, **kwargs: Any) -> SqliteStore:
        """Open (creating if needed) the database and release stale leases (not ``secondary``)."""
        store = cls(path, **kwargs)
        await asyncio.to_thread(store._writer.start)
        try:
            if store._checkpointer is not None:
                await asyncio.to_thread(store._checkpointer.start)
            if not store.secondary:
                store._pending = await store._writer.submit(_release_leases)
                await store._writer.submit(_move_children)
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def on_commit(self) -> CommitObserver | None:
        return self._writer.on_commit

    @on_commit.setter
    def on_commit(self, observer: CommitObserver | None) -> None:
        self._writer.on_commit = observer

    async def close(self) -> None:
        await self._writer.stop()
        if self._checkpointer is not None:  # after the writer: the WAL is final now
            await asyncio.to_thread(self._checkpointer.stop)

    async def ping(self) -> None:
        now = self._clock()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('ping', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (repr(now),),
            )

        await self._writer.submit(write)

    # durable queue ---------------------------------------------------------
    async def ingest(self, notification: Notification) -> IngestResult:
        if not notification.alerts:
            return IngestResult(accepted=0, duplicates=0)
        # concurrent ingests are merged into one statement by the writer (sqlite_ingest)
        rows = event_rows(notification, self._clock())
        result: IngestResult = await self._writer.submit_item(insert_batch, rows)
        self._pending += result.accepted
        return result

    async def claim_events(self, worker: str, limit: int, lease_seconds: float) -> list[AlertEvent]:
        now = self._clock()

        def claim(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(_CLAIM, (worker, now + lease_seconds, now, limit)).fetchall()

        rows = sorted(await self._writer.submit(claim))
        return [
            AlertEvent(
                id=row[0],
                alert=alert_from_doc(json.loads(row[1])),
                received_at=datetime.fromtimestamp(row[2], UTC),
                group_key=row[3],
                attempts=row[4],
            )
            for row in rows
        ]

    async def renew_leases(
        self, worker: str, event_ids: Sequence[int], lease_seconds: float
    ) -> set[int]:
        until = self._clock() + lease_seconds
        ids = list(event_ids)

        def renew(conn: sqlite3.Connection) -> set[int]:
            held: set[int] = set()
            for event_id in ids:
                cur = conn.execute(_RENEW_LEASE, (until, event_id, worker))
                if cur.rowcount == 1:
                    held.add(event_id)
            return held

        return await self._writer.submit(renew) if ids else set()

    async def finish_event(self, event_id: int, worker: str) -> None:
        now = self._clock()

        def finish(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE events SET processed_at = ?, lease_owner = NULL, lease_until = NULL "
                "WHERE id = ? AND processed_at IS NULL",
                (now, event_id),
            )
            return cur.rowcount

        finished = await self._writer.submit(finish)
        self._pending -= finished  # read after the await: other tasks changed it meanwhile

    async def queue_depth(self) -> int:
        return max(self._pending, 0)

    async def event_counts(self) -> dict[str, int]:
        """Return events by state (``pending``, ``processed``), for tests and tools."""

        def count(conn: sqlite3.Connection) -> dict[str, int]:
            row = conn.execute(
                "SELECT COUNT(*) - COUNT(processed_at), COUNT(processed_at) FROM events"
            ).fetchone()
            return {"pending": int(row[0]), "processed": int(row[1])}

        return await self._writer.submit(count)

    # incidents -------------------------------------------------------------
    def pipeline_lock(self, pipeline: str) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(pipeline)

    def incident_lock(self, incident_id: int) -> AbstractAsyncContextManager[None]:
        return self._incident_locks.hold(incident_id)

    async def incident_version(self, incident_id: int) -> int | None:
        def read(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT json_extract(doc, '$.version') FROM incidents WHERE id = ?", (incident_id,)
            ).fetchone()
            return None if row is None else int(row[0] or 0)

        return await self._writer.submit(read)

    async def incident_sevs(self, states: Collection[str]) -> dict[int, str]:
        wanted = list(states)
        marks = ", ".join("?" for _ in wanted)
        sql = f"SELECT id, sev FROM incidents WHERE state IN ({marks})"  # noqa: S608  # ? only

        def read(conn: sqlite3.Connection) -> dict[int, str]:
            return {int(i): str(sev) for i, sev in conn.execute(sql, wanted)}

        return await self._writer.submit(read)

    async def open_incident(self, pipeline: str) -> Incident | None:
        return await self._one(
            "SELECT id, doc FROM incidents WHERE pipeline = ? AND state != 'closed' "
            "ORDER BY id DESC LIMIT 1",
            (pipeline,),
        )

    async def last_incident(self, pipeline: str) -> Incident | None:
        return await self._one(
            "SELECT id, doc FROM incidents WHERE pipeline = ? ORDER BY id DESC LIMIT 1",
            (pipeline,),
        )

    async def get_incident(self, incident_id: int) -> Incident | None:
        return await self._one("SELECT id, doc FROM incidents WHERE id = ?", (incident_id,))

    async def create_incident(self, incident: Incident) -> Incident:
        """Insert the incident, its alerts and timeline entries, and its outbox, at once."""

        def insert(conn: sqlite3.Connection) -> int:
            try:
                cur = conn.execute(
                    "INSERT INTO incidents (pipeline, state, sev, opened_at, doc) "
                    "VALUES (?, ?, ?, ?, '{}')",
                    (incident.pipeline, incident.state, incident.sev, epoch(incident.opened_at)),
                )
            except sqlite3.IntegrityError:
                raise StoreError(
                    f"pipeline {incident.pipeline!r} already has an incident that is not closed"
                ) from None
            new_id = int(cur.lastrowid or 0)
            incident.id = new_id
            conn.execute(
                "UPDATE incidents SET doc = ? WHERE id = ?",
                (dumps(incident_to_doc(incident)), new_id),
            )
            _append_children(conn, new_id, incident.timeline, incident.alerts)
            outbox.write(conn, new_id, pending)
            return new_id

        pending = list(incident.outbox)
        incident.id = await self._writer.submit(insert)
        del incident.outbox[: len(pending)]
        incident.mark_stored()
        return incident

    async def save_incident(self, incident: Incident) -> None:
        """Update the incident's fields; append its new timeline entries and alerts; its outbox.

        Only what this copy added since it was read is written: entries others
        appended meanwhile (a notification delivered, ``outbox.append_entry``)
        are rows of their own and stay, and nothing already stored is rewritten.
        """
        pending = list(incident.outbox)
        entries, alerts = incident.unsaved()
        doc = dumps(incident_to_doc(incident))

        def update(conn: sqlite3.Connection) -> None:
            fresh = entries
            if incident.stored is None:  # not read from this store: add what it lacks
                rows = conn.execute(
                    "SELECT doc FROM incident_timeline WHERE incident_id = ? ORDER BY id",
                    (incident.id,),
                ).fetchall()
                held = [TimelineEntry.from_json(json.loads(r[0])) for r in rows]
                fresh = merge_timelines(held, incident.timeline)[len(held) :]
            try:
                cur = conn.execute(
                    "UPDATE incidents SET state = ?, sev = ?, doc = ? WHERE id = ?",
                    (incident.state, incident.sev, doc, incident.id),
                )
            except sqlite3.IntegrityError:
                raise StoreError(
                    f"pipeline {incident.pipeline!r} already has an incident that is not closed"
                ) from None
            if cur.rowcount != 1:
                raise StoreError(f"incident {incident.id} does not exist")
            _append_children(conn, incident.id, fresh, alerts)
            outbox.write(conn, incident.id, pending)

        await self._writer.submit(update)
        del incident.outbox[: len(pending)]
        incident.mark_stored()

    # notification outbox -----------------------------------------------------
    async def claim_outbox(
        self, worker: str, limit: int, lease_seconds: float
    ) -> list[OutboxMessage]:
        now = self._clock()
        return await self._writer.submit(
            lambda conn: outbox.claim(conn, worker, limit, now, lease_seconds)
        )

    async def finish_outbox(
        self,
        message: OutboxMessage,
        worker: str,
        outcome: str,
        entry: TimelineEntry,
        retry_at: datetime | None = None,
    ) -> bool:
        now = self._clock()
        return await self._writer.submit(
            lambda conn: outbox.finish(conn, message, worker, outcome, entry, now, retry_at)
        )

    async def outbox_stats(self) -> tuple[int, datetime | None]:
        return await self._writer.submit(outbox.stats)

    async def list_incidents(
        self,
        *,
        state: str | None = None,
        pipeline: str | None = None,
        sev: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Incident]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("state", state), ("pipeline", pipeline), ("sev", sev)):
            if value is not None:
                clauses.append(f"{column} = ?")  # column names are fixed above
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT id, doc FROM incidents {where} ORDER BY id DESC LIMIT ? OFFSET ?"  # noqa: S608
        params += [max(0, limit), max(0, offset)]

        def read(conn: sqlite3.Connection) -> list[Incident]:
            rows = conn.execute(sql, params).fetchall()
            return _with_actions(conn, rows)

        return await self._writer.submit(read)

    async def approvals_waiting(self) -> list[tuple[int, str, dict[str, Any]]]:
        sql = (
            "SELECT id, pipeline, json_extract(doc, '$.pending_approval') FROM incidents "
            "WHERE state = 'recovering' AND json_extract(doc, '$.pending_approval') IS NOT NULL"
        )

        def read(conn: sqlite3.Connection) -> list[tuple[int, str, dict[str, Any]]]:
            return [(int(i), str(p), json.loads(d)) for i, p, d in conn.execute(sql).fetchall()]

        return await self._writer.submit(read)

    async def _one(self, sql: str, params: Sequence[Any]) -> Incident | None:
        def read(conn: sqlite3.Connection) -> list[Incident]:
            return _with_actions(conn, conn.execute(sql, params).fetchall())

        found = await self._writer.submit(read)
        return found[0] if found else None

    # action ledger -----------------------------------------------------------
    async def begin_action(self, record: ActionRecord, lease_seconds: float) -> bool:
        now = self._clock()
        params = (
            record.incident_id,
            record.step,
            record.pipeline,
            record.target,
            record.worker,
            record.outcome,
            epoch(record.started_at),
            now + lease_seconds,
            dumps(record.to_json()),
            now,
        )

        def claim(conn: sqlite3.Connection) -> bool:
            return conn.execute(_BEGIN_ACTION, params).rowcount == 1

        return await self._writer.submit(claim)

    async def renew_action(self, record: ActionRecord, lease_seconds: float) -> bool:
        params = (
            self._clock() + lease_seconds,
            record.incident_id,
            record.step,
            record.worker,
        )

        def renew(conn: sqlite3.Connection) -> bool:
            return conn.execute(_RENEW_ACTION, params).rowcount == 1

        return await self._writer.submit(renew)

    async def end_action(self, record: ActionRecord) -> None:
        """Store the outcome if ``record.worker`` still holds the claim, else log it.

        A worker whose step was taken over (its lease ran out) must not
        overwrite the new owner's row; a step never begun is a ``StoreError``.
        """
        params = (
            record.outcome,
            dumps(record.to_json()),
            record.incident_id,
            record.step,
            record.worker,
        )

        def finish(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE actions SET outcome = ?, doc = ?, lease_until = NULL "
                "WHERE incident_id = ? AND step = ? AND worker = ?",
                params,
            )
            if cur.rowcount == 1:
                return True
            exists = conn.execute(
                "SELECT 1 FROM actions WHERE incident_id = ? AND step = ?",
                (record.incident_id, record.step),
            ).fetchone()
            if exists is None:
                raise StoreError(
                    f"action {record.step!r} of incident {record.incident_id} was never begun"
                )
            return False

        if not await self._writer.submit(finish):
            _log.warning(
                "result of a step another worker took over; the new owner's claim stays",
                extra={
                    "incident": record.incident_id,
                    "step": record.step,
                    "worker": record.worker,
                    "outcome": record.outcome,
                },
            )

    async def actions_since(
        self, since: datetime, *, pipeline: str | None = None, target: str | None = None
    ) -> Sequence[ActionRecord]:
        clauses = ["started_at >= ?"]
        params: list[Any] = [epoch(since)]
        if pipeline is not None:
            clauses.append("pipeline = ?")
            params.append(pipeline)
        if target is not None:
            clauses.append("target = ?")
            params.append(target)
        sql = (
            f"SELECT doc FROM actions WHERE {' AND '.join(clauses)} "  # noqa: S608
            "ORDER BY started_at, rowid"
        )

        def read(conn: sqlite3.Connection) -> list[ActionRecord]:
            return [action_from_doc(json.loads(r[0])) for r in conn.execute(sql, params)]

        return await self._writer.submit(read)


def _release_leases(conn: sqlite3.Connection) -> int:
    """Free events a dead process leased; return how many events wait."""
    conn.execute(
        "UPDATE events SET lease_owner = NULL, lease_until = NULL "
        "WHERE processed_at IS NULL AND lease_owner IS NOT NULL"
    )
    row = conn.execute("SELECT COUNT(*) FROM events WHERE processed_at IS NULL").fetchone()
    return int(row[0])


_APPEND_ALERT = """
INSERT INTO incident_alerts (incident_id, fingerprint, starts_at, status, doc)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (incident_id, fingerprint, starts_at) DO UPDATE SET
    status = excluded.status, doc = excluded.doc
"""


def _append_children(
    conn: sqlite3.Connection,
    incident_id: int,
    entries: Sequence[TimelineEntry],
    alerts: Sequence[dict[str, Any]],
) -> None:
    """Append timeline entries; add new alerts, update the status of known ones."""
    if entries:
        conn.executemany(
            "INSERT INTO incident_timeline (incident_id, doc) VALUES (?, ?)",
            [(incident_id, dumps(e.to_json())) for e in entries],
        )
    if alerts:
        conn.executemany(
            _APPEND_ALERT,
            [(incident_id, *alert_key(a), str(a.get("status", "")), dumps(a)) for a in alerts],
        )


def _move_children(conn: sqlite3.Connection) -> int:
    """Move alerts and timelines out of documents written before they were kept apart."""
    rows = conn.execute(
        "SELECT id, doc FROM incidents WHERE json_extract(doc, '$.timeline') IS NOT NULL "
        "OR json_extract(doc, '$.alerts') IS NOT NULL"
    ).fetchall()
    for incident_id, text in rows:
        doc = json.loads(text)
        entries = [TimelineEntry.from_json(t) for t in doc.pop("timeline", None) or []]
        _append_children(conn, int(incident_id), entries, doc.pop("alerts", None) or [])
        conn.execute("UPDATE incidents SET doc = ? WHERE id = ?", (dumps(doc), incident_id))
    return len(rows)


def _with_actions(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> list[Incident]:
    """Attach each incident's alerts, timeline and ledger rows (the ledger's are the actions)."""
    if not rows:
        return []
    ids = [int(r[0]) for r in rows]
    marks = ",".join("?" * len(ids))
    actions: dict[int, list[ActionRecord]] = {i: [] for i in ids}
    for incident_id, doc in conn.execute(
        f"SELECT incident_id, doc FROM actions WHERE incident_id IN ({marks}) "  # noqa: S608
        "ORDER BY started_at, rowid",
        ids,
    ):
        actions[int(incident_id)].append(action_from_doc(json.loads(doc)))
    alerts: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for incident_id, doc in conn.execute(
        f"SELECT incident_id, doc FROM incident_alerts WHERE incident_id IN ({marks}) "  # noqa: S608
        "ORDER BY seq",
        ids,
    ):
        alerts[int(incident_id)].append(json.loads(doc))
    timelines: dict[int, list[TimelineEntry]] = {i: [] for i in ids}
    for incident_id, doc in conn.execute(
        f"SELECT incident_id, doc FROM incident_timeline WHERE incident_id IN ({marks}) "  # noqa: S608
        "ORDER BY id",
        ids,
    ):
        timelines[int(incident_id)].append(TimelineEntry.from_json(json.loads(doc)))
    return [
        incident_from_doc(json.loads(doc), actions[int(i)], alerts[int(i)], timelines[int(i)])
        for i, doc in rows
    ]
