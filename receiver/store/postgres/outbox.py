"""The notification outbox on PostgreSQL (table in ``migrations/0004_outbox.sql``).

``write`` runs in the transaction of ``create_incident``/``save_incident``;
``claim`` leases due rows ``FOR UPDATE SKIP LOCKED`` on the database's clock,
so across replicas each row is held by one worker at a time; ``finish``
records the attempt and its timeline entry in one transaction, only for the
lease holder. Messages of one incident to one destination go out in order
(a row waits while an earlier one of the pair is undelivered).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from receiver.models import OutboxMessage, TimelineEntry
from receiver.store.postgres.ledger import json_text

__all__ = ["claim", "finish", "stats", "write"]

_WRITE = """
INSERT INTO outbox (incident_id, event, destination, kind, detail, created_at, due_at)
VALUES ($1, $2, $3, $4, $5, $6, $6)
"""
_CLAIM = """
UPDATE outbox SET claimed_by = $1, lease_until = clock_timestamp() + $2 * interval '1 second',
                  attempts = attempts + 1
WHERE id IN (
    SELECT id FROM outbox AS o
    WHERE done_at IS NULL AND due_at <= clock_timestamp()
      AND (lease_until IS NULL OR lease_until < clock_timestamp())
      AND NOT EXISTS (  -- in order per incident and destination: earlier ones first
          SELECT 1 FROM outbox AS e
          WHERE e.incident_id = o.incident_id AND e.destination = o.destination
            AND e.done_at IS NULL AND e.id < o.id)
    ORDER BY due_at, id LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING id, incident_id, event, destination, kind, detail, created_at, attempts
"""
_RETRY = """
UPDATE outbox SET claimed_by = NULL, lease_until = NULL, due_at = coalesce($3, clock_timestamp()),
                  outcome = 'failed'
WHERE id = $1 AND claimed_by = $2 AND done_at IS NULL
RETURNING id
"""
_DONE = """
UPDATE outbox SET lease_until = NULL, done_at = clock_timestamp(), outcome = $3
WHERE id = $1 AND claimed_by = $2 AND done_at IS NULL
RETURNING id
"""
_NOTE = """
INSERT INTO incident_timeline (incident_id, at, event, detail)
SELECT id, $2, $3, $4 FROM incidents WHERE id = $1
"""
_STATS = "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE done_at IS NULL"


async def write(conn: Any, incident_id: int, messages: Sequence[OutboxMessage]) -> None:
    if messages:
        await conn.executemany(
            _WRITE,
            [
                (
                    incident_id,
                    m.event,
                    m.destination,
                    m.kind,
                    json.loads(json.dumps(m.detail, default=str)),  # jsonb codec: objects
                    m.created_at,
                )
                for m in messages
            ],
        )


async def claim(conn: Any, worker: str, limit: int, lease_seconds: float) -> list[OutboxMessage]:
    rows = await conn.fetch(_CLAIM, worker, float(lease_seconds), limit)
    return sorted(
        (
            OutboxMessage(
                id=int(r["id"]),
                incident_id=int(r["incident_id"]),
                event=r["event"],
                destination=r["destination"],
                kind=r["kind"],
                detail=r["detail"],
                created_at=r["created_at"],
                attempts=int(r["attempts"]),
            )
            for r in rows
        ),
        key=lambda m: m.id,
    )


async def finish(
    conn: Any,
    message: OutboxMessage,
    worker: str,
    outcome: str,
    entry: TimelineEntry,
    retry_at: datetime | None,
) -> bool:
    if outcome == "failed":
        done = await conn.fetchval(_RETRY, message.id, worker, retry_at)
    else:
        done = await conn.fetchval(_DONE, message.id, worker, outcome)
    if done is None:
        return False
    await conn.execute(_NOTE, message.incident_id, entry.at, entry.event, json_text(entry.detail))
    return True


async def stats(conn: Any) -> tuple[int, datetime | None]:
    row = await conn.fetchrow(_STATS)
    return int(row["n"]), row["oldest"]
