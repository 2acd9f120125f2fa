"""The notification outbox on SQLite: rows written with the incident, leased for delivery.

Every function runs inside a transaction of the store's writer thread:
``write`` from ``create_incident``/``save_incident`` (the same commit as the
timeline entries causing the rows), ``claim``/``finish``/``stats`` from
``receiver.notify.delivery``. A lease whose worker died runs out and the row
is claimed again, as for recovery steps. Messages of one incident to one
destination go out in order: a row is not claimed while an earlier one of
the same pair is undelivered (in flight, or waiting for a retry).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from receiver.models import OutboxMessage, TimelineEntry
from receiver.store.codec import dumps, epoch

__all__ = ["SCHEMA", "append_entry", "claim", "finish", "stats", "write"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL,
    event       TEXT NOT NULL,
    destination TEXT NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    due_at      REAL NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL,
    done_at     REAL,
    outcome     TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (due_at, id) WHERE done_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (incident_id, destination, id)
    WHERE done_at IS NULL;
"""

_CLAIM = """
UPDATE outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM outbox AS o
    WHERE done_at IS NULL AND due_at <= ? AND (lease_until IS NULL OR lease_until < ?)
      AND NOT EXISTS (  -- in order per incident and destination: earlier ones first
          SELECT 1 FROM outbox AS e
          WHERE e.incident_id = o.incident_id AND e.destination = o.destination
            AND e.done_at IS NULL AND e.id < o.id)
    ORDER BY due_at, id LIMIT ?
)
RETURNING id, incident_id, event, destination, kind, detail, created_at, attempts
"""


def write(conn: sqlite3.Connection, incident_id: int, messages: Sequence[OutboxMessage]) -> None:
    """Insert ``messages`` for ``incident_id`` (in the caller's transaction)."""
    conn.executemany(
        "INSERT INTO outbox (incident_id, event, destination, kind, detail, created_at, due_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                incident_id,
                m.event,
                m.destination,
                m.kind,
                dumps(m.detail),
                epoch(m.created_at),
                epoch(m.created_at),
            )
            for m in messages
        ],
    )


def claim(
    conn: sqlite3.Connection, worker: str, limit: int, now: float, lease_seconds: float
) -> list[OutboxMessage]:
    rows = conn.execute(_CLAIM, (worker, now + lease_seconds, now, now, limit)).fetchall()
    return sorted(
        (
            OutboxMessage(
                id=int(r[0]),
                incident_id=int(r[1]),
                event=r[2],
                destination=r[3],
                kind=r[4],
                detail=json.loads(r[5]),
                created_at=datetime.fromtimestamp(r[6], UTC),
                attempts=int(r[7]),
            )
            for r in rows
        ),
        key=lambda m: m.id,
    )


def finish(
    conn: sqlite3.Connection,
    message: OutboxMessage,
    worker: str,
    outcome: str,
    entry: TimelineEntry,
    now: float,
    retry_at: datetime | None,
) -> bool:
    """Record an attempt if ``worker`` holds the lease, with its timeline entry."""
    if outcome == "failed":
        cur = conn.execute(
            "UPDATE outbox SET lease_owner = NULL, lease_until = NULL, due_at = ?, outcome = ? "
            "WHERE id = ? AND lease_owner = ? AND done_at IS NULL",
            (epoch(retry_at) if retry_at else now, outcome, message.id, worker),
        )
    else:
        cur = conn.execute(
            "UPDATE outbox SET lease_until = NULL, done_at = ?, outcome = ? "
            "WHERE id = ? AND lease_owner = ? AND done_at IS NULL",
            (now, outcome, message.id, worker),
        )
    if cur.rowcount != 1:
        return False
    append_entry(conn, message.incident_id, entry)
    return True


def append_entry(conn: sqlite3.Connection, incident_id: int, entry: TimelineEntry) -> None:
    """Append one timeline entry to a stored incident (a row of its own; nothing rewritten)."""
    conn.execute(
        "INSERT INTO incident_timeline (incident_id, doc) SELECT id, ? FROM incidents WHERE id = ?",
        (dumps(entry.to_json()), incident_id),
    )


def stats(conn: sqlite3.Connection) -> tuple[int, datetime | None]:
    count, oldest = conn.execute(
        "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE done_at IS NULL"
    ).fetchone()
    return int(count), (datetime.fromtimestamp(oldest, UTC) if oldest is not None else None)
