"""SQLite ingest of a whole batch of notifications: one statement, one commit.

The writer thread must win the GIL back from a busy event loop after every
``sqlite3_step``, and binding thousands of parameters holds the GIL too. So a
batch goes in as *one* parameter: each notification's rows are encoded to
JSON on the event loop (one msgspec ``encode`` call per notification, while the
previous batch commits), the writer joins those texts and runs a single
``INSERT ... SELECT ... FROM json_each(?) ON CONFLICT DO NOTHING``. SQLite
unpacks the rows in C with the GIL released, and since it is one statement
the writer can run it in autocommit mode (``GroupCommitWriter.submit_item``):
BEGIN, the inserts and the fsynced COMMIT are one GIL release.

The ``alert`` column is the row's alert object as SQLite re-renders it: the
same document as ``codec.dumps(alert.to_json())`` (same keys, order and
values, non-ASCII characters as UTF-8). The batch is bound as text, never as
bytes: SQLite 3.45 and later would read a BLOB as its binary JSONB.

Duplicates are counted per notification: if the statement changed as many
rows as it was given, nothing was a duplicate (the usual case); otherwise the
rows just inserted are read back and each notification is credited with the
keys it was first to send (``batching.credit``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from receiver.models import Alert, IngestResult, Notification, format_time
from receiver.store.batching import credit

__all__ = ["EventRows", "event_rows", "insert_batch", "iso", "starts_key"]

# Each json_each row is [alert document, group key, receiver, received_at]; the
# key columns come from the document, so they are the values it stores. The CTE
# is materialized because json_each renders ``value`` anew at every reference.
_INSERT = """
WITH r(v) AS MATERIALIZED (SELECT value FROM json_each(?))
INSERT INTO events (fingerprint, starts_at, status, pipeline, alert, group_key, receiver,
                    received_at)
SELECT v ->> '$[0].fingerprint', v ->> '$[0].startsAt', v ->> '$[0].status',
       coalesce(v ->> '$[0].labels.pipeline', ''), v ->> 0, v ->> 1, v ->> 2, v ->> 3
FROM r WHERE true
ON CONFLICT (fingerprint, starts_at, status) DO NOTHING
"""


def iso(value: datetime | None) -> str | None:
    """Return ``format_time(value)`` at a third of its cost when already UTC."""
    if value is None:
        return None
    if value.tzinfo is UTC:
        return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 (the fastest form)
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond // 1000,
        )
    return format_time(value)


def starts_key(alert: Alert) -> str:
    """Return the ``starts_at`` column of an alert: its idempotency key part."""
    return iso(alert.starts_at) or ""


class _StoredAlert(msgspec.Struct, gc=False):
    """The ``alert`` column: ``Alert.to_json()``'s keys in its order (encoded in C)."""

    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    startsAt: str | None
    endsAt: str | None
    fingerprint: str
    generatorURL: str


# One encoder built once; compact UTF-8 JSON.
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class EventRows:
    """One notification's rows for the events table, built before it joins a batch.

    ``text`` is the UTF-8 JSON of its rows without the enclosing brackets, so
    a batch is ``b"[" + b",".join(texts) + b"]"`` (decoded to text to bind).
    """

    notification: Notification
    text: bytes


def event_rows(notification: Notification, received_at: float) -> EventRows:
    """Encode a notification's rows (on the caller's thread, in one ``encode`` call).

    Done while the previous batch commits, so the writer thread's serial
    cycle is only the INSERT and the fsync.
    """
    group_key, receiver = notification.group_key, notification.receiver
    # iso() once per distinct time: the alerts of a group share their times
    texts: dict[datetime | None, str | None] = {None: None}
    for a in notification.alerts:
        if a.starts_at not in texts:
            texts[a.starts_at] = iso(a.starts_at)
        if a.ends_at not in texts:
            texts[a.ends_at] = iso(a.ends_at)
    rows = [
        (
            _StoredAlert(
                a.status,
                a.labels,
                a.annotations,
                texts[a.starts_at],
                texts[a.ends_at],
                a.fingerprint,
                a.generator_url,
            ),
            group_key,
            receiver,
            received_at,
        )
        for a in notification.alerts
    ]
    return EventRows(notification, _encode(rows)[1:-1])


def _keys(notification: Notification) -> list[tuple[str, str, str]]:
    return [(a.fingerprint, iso(a.starts_at) or "", a.status) for a in notification.alerts]


def insert_batch(conn: sqlite3.Connection, batch: Sequence[EventRows]) -> list[IngestResult]:
    """Insert every row of ``batch`` in one statement; return each notification's counts.

    The only write is that one statement, so this may run in autocommit mode.
    """
    texts = [rows.text for rows in batch if rows.text]
    total = sum(len(rows.notification.alerts) for rows in batch)
    if total == 0:
        return [IngestResult(0, 0) for _ in batch]
    before = conn.total_changes
    conn.execute(_INSERT, ((b"[" + b",".join(texts) + b"]").decode(),))
    changed = conn.total_changes - before
    if changed == total:
        return [IngestResult(len(r.notification.alerts), 0) for r in batch]
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
    keys = [_keys(r.notification) for r in batch]
    return [IngestResult(n, len(k) - n) for k, n in zip(keys, credit(keys, inserted), strict=True)]
