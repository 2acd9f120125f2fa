"""SQLite ingest of a whole batch of notifications: few statements, one commit.

The writer thread must hand the GIL back to the event loop at every
``sqlite3_step``; one statement per alert (``executemany``) turns a batch into
hundreds of hand-offs. Here a batch's rows go in as multi-row ``INSERT ...
VALUES (...), (...) ON CONFLICT DO NOTHING`` statements whose sizes are powers
of two (so at most log2(rows) statements, each prepared once and cached).

Duplicates are counted per notification: if the statements changed as many
rows as they were given, nothing was a duplicate (the usual case); otherwise
the rows just inserted are read back and each notification is credited with
the keys it was first to send (``batching.credit``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from receiver.models import Alert, IngestResult, Notification, format_time
from receiver.store.batching import credit
from receiver.store.codec import dumps

__all__ = ["insert_batch", "starts_key"]

_COLUMNS = 8
_MAX_CHUNK = 256  # rows per statement: 2048 parameters, below every SQLite limit
_HEAD = (
    "INSERT INTO events (fingerprint, starts_at, status, pipeline, alert, group_key, receiver, "
    "received_at) VALUES "
)
_TAIL = " ON CONFLICT (fingerprint, starts_at, status) DO NOTHING"
_SQL: dict[int, str] = {}


def _sql(rows: int) -> str:
    sql = _SQL.get(rows)
    if sql is None:
        sql = _SQL[rows] = _HEAD + ",".join(["(?,?,?,?,?,?,?,?)"] * rows) + _TAIL
    return sql


def _iso(value: datetime | None) -> str | None:
    """Return ``format_time(value)``, without its conversions when already UTC."""
    if value is None:
        return None
    if value.tzinfo is UTC:
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"
    return format_time(value)


def starts_key(alert: Alert) -> str:
    """Return the ``starts_at`` column of an alert: its idempotency key part."""
    return _iso(alert.starts_at) or ""


def _alert_text(alert: Alert) -> str:
    """Return ``dumps(alert.to_json())`` at a lower cost."""
    return dumps(
        {
            "status": alert.status,
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": _iso(alert.starts_at),
            "endsAt": _iso(alert.ends_at),
            "fingerprint": alert.fingerprint,
            "generatorURL": alert.generator_url,
        }
    )


def insert_batch(
    conn: sqlite3.Connection, notifications: Sequence[Notification], received_at: float
) -> list[IngestResult]:
    """Insert every alert of ``notifications``; return each one's accepted/duplicate counts."""
    params: list[Any] = []
    keys: list[list[tuple[str, str, str]]] = []
    for n in notifications:
        mine: list[tuple[str, str, str]] = []
        for a in n.alerts:
            key = (a.fingerprint, starts_key(a), a.status)
            mine.append(key)
            params += (*key, a.pipeline, _alert_text(a), n.group_key, n.receiver, received_at)
        keys.append(mine)
    total = len(params) // _COLUMNS
    if total == 0:
        return [IngestResult(0, 0) for _ in notifications]
    before = conn.total_changes
    done = 0
    while done < total:
        size = min(_MAX_CHUNK, 1 << ((total - done).bit_length() - 1))
        conn.execute(_sql(size), params[done * _COLUMNS : (done + size) * _COLUMNS])
        done += size
    changed = conn.total_changes - before
    if changed == total:
        return [IngestResult(len(k), 0) for k in keys]
    inserted: set[tuple[str, str, str]] = set()
    if changed:
        # INTEGER PRIMARY KEY: the new rows got the ids max+1, max+2, ... in order
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        inserted = set(
            conn.execute(
                "SELECT fingerprint, starts_at, status FROM events WHERE id > ?",
                (int(last) - changed,),
            ).fetchall()
        )
    return [IngestResult(n, len(k) - n) for k, n in zip(keys, credit(keys, inserted), strict=True)]
