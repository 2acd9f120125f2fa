"""Incidents written before alerts and timelines were rows of their own are moved, not lost.

SQLite: documents holding ``alerts`` and ``timeline`` are split on opening.
PostgreSQL: migration 0003 moves the ``alerts`` column into ``incident_alerts``.
Both then keep only the incident's own fields in the document or row, so a
save never rewrites the incident's history.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import asyncpg

from receiver.models import TimelineEntry
from receiver.store.postgres.migrate import migrations
from receiver.store.postgres.store import PostgresStore
from receiver.store.sqlite.store import SqliteStore

ALERTS = [
    {"status": "resolved", "labels": {"alertname": "PipelineDown"}, "fingerprint": "a",
     "startsAt": "2026-03-01T12:00:00.000Z", "endsAt": "2026-03-01T12:05:00.000Z"},
    {"status": "firing", "labels": {"alertname": "PipelineDataStale"}, "fingerprint": "b",
     "startsAt": "2026-03-01T12:01:00.000Z", "endsAt": None},
]  # fmt: skip
TIMELINE = [
    {"at": "2026-03-01T12:00:00.000Z", "event": "detected", "detail": {"alert": "PipelineDown"}},
    {"at": "2026-03-01T12:01:00.000Z", "event": "alert_joined", "detail": {"fingerprint": "b"}},
]


async def test_sqlite_moves_alerts_and_timeline_out_of_old_documents(tmp_path: Path) -> None:
    path = tmp_path / "receiver.db"
    await (await SqliteStore.open(path)).close()  # the schema, then an incident as written before
    doc = {
        "pipeline": "etl_orders", "state": "open", "sev": "SEV2",
        "opened_at": "2026-03-01T12:00:00.000Z", "alerts": ALERTS, "timeline": TIMELINE,
    }  # fmt: skip
    with sqlite3.connect(path) as conn:
        cur = conn.execute(
            "INSERT INTO incidents (pipeline, state, sev, opened_at, doc) VALUES (?, ?, ?, ?, ?)",
            ("etl_orders", "open", "SEV2", 0.0, "{}"),
        )
        conn.execute(
            "UPDATE incidents SET doc = ? WHERE id = ?",
            (json.dumps({**doc, "id": cur.lastrowid}), cur.lastrowid),
        )
    store = await SqliteStore.open(path)
    try:
        got = await store.open_incident("etl_orders")
        assert got is not None
        assert [a["fingerprint"] for a in got.alerts] == ["a", "b"]
        assert [t.event for t in got.timeline] == ["detected", "alert_joined"]
        got.timeline.append(TimelineEntry(got.timeline[-1].at, "diagnosed", None))
        await store.save_incident(got)
        again = await store.get_incident(got.id)
        assert again is not None and [t.event for t in again.timeline][-1] == "diagnosed"
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        (stored,) = conn.execute("SELECT doc FROM incidents").fetchone()
    assert "alerts" not in json.loads(stored) and "timeline" not in json.loads(stored)


async def test_postgres_migration_moves_the_alerts_column_into_rows(
    postgres_server: Callable[[], str],
) -> None:
    dsn = postgres_server()
    conn = await asyncpg.connect(dsn)
    try:  # the schema as it was before 0003, with an incident in it
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        for m in migrations():
            if m.version < 3:
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    m.version,
                    m.name,
                )
        await conn.execute(
            "INSERT INTO incidents (pipeline, state, sev, alerts, opened_at)"
            " VALUES ('etl_orders', 'open', 'SEV2', $1::jsonb, clock_timestamp())",
            json.dumps(ALERTS),
        )
    finally:
        await conn.close()
    store = await PostgresStore.open(dsn)
    try:
        got = await store.open_incident("etl_orders")
        assert got is not None
        assert got.alerts == ALERTS
        async with store._pool.acquire() as check:
            columns = await check.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'incidents'"
            )
        assert "alerts" not in {c["column_name"] for c in columns}
    finally:
        await store.close()
