"""The SQLite store: group commit, durable queue leases, and the fast schema check."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from core_helpers import alert_doc, notification_doc

from receiver.models import Notification, format_time, parse_time
from receiver.models import parse_time as fast_time  # the former fast parser is parse_time now
from receiver.store import codec, open_store
from receiver.store.base import StoreError, StoreUnavailable
from receiver.store.batching import Batcher, credit
from receiver.store.sqlite.ingest import iso as starts_key_of
from receiver.store.sqlite.store import SqliteStore


async def test_concurrent_ingests_share_commits(tmp_path: Path) -> None:
    batches: list[int] = []
    store = await SqliteStore.open(tmp_path / "s.db", on_commit=lambda _s, n: batches.append(n))
    try:
        docs = [notification_doc(alert_doc(f"p{i}", fingerprint=f"{i:016x}")) for i in range(200)]
        results = await asyncio.gather(*(store.ingest(Notification.from_json(d)) for d in docs))
        assert sum(r.accepted for r in results) == 200
        assert max(batches) > 1  # several ingests rode on one commit
        assert await store.queue_depth() == 200
    finally:
        await store.close()


async def test_leases_of_a_dead_process_are_released_on_open(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    await store.ingest(Notification.from_json(notification_doc(alert_doc("a"), alert_doc("b"))))
    claimed = await store.claim_events("dead-worker", 10, lease_seconds=3600)
    assert len(claimed) == 2
    assert await store.claim_events("other", 10, lease_seconds=3600) == []  # leased
    await store.close()  # the process "dies" holding the leases
    store = await SqliteStore.open(tmp_path / "s.db")
    try:
        again = await store.claim_events("new-worker", 10, lease_seconds=60)
        assert [e.id for e in again] == [e.id for e in claimed]
        assert all(e.attempts == 2 for e in again)
    finally:
        await store.close()


async def test_a_secondary_store_leaves_the_primarys_leases_and_checkpoints(
    tmp_path: Path,
) -> None:
    primary = await SqliteStore.open(tmp_path / "s.db")
    await primary.ingest(Notification.from_json(notification_doc(alert_doc("a"))))
    assert len(await primary.claim_events("live-worker", 10, lease_seconds=3600)) == 1
    # the notification delivery process opens the same file while the receiver runs
    secondary = await open_store(f"sqlite:///{tmp_path / 's.db'}", secondary=True)
    try:
        assert isinstance(secondary, SqliteStore) and secondary._checkpointer is None
        assert await primary.claim_events("other", 10, lease_seconds=3600) == []  # still leased
        assert await secondary.claim_events("other", 10, lease_seconds=3600) == []
    finally:
        await secondary.close()
        await primary.close()


async def test_open_store_urls(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'u.db'}?synchronous=NORMAL")
    await store.ping()
    await store.close()
    for bad in ("sqlite://x.db", "mysql://h/db", f"sqlite:///{tmp_path}/v.db?nope=1"):
        with pytest.raises(StoreError):
            await open_store(bad)


def _n(*alerts: dict[str, Any]) -> Notification:
    return Notification.from_json(notification_doc(*alerts))


async def test_duplicates_across_requests_of_one_batch_are_credited_to_the_first(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    try:
        old = alert_doc("old", fingerprint="00000000000000aa")
        assert (await store.ingest(_n(old))).accepted == 1
        a, b = alert_doc("a", fingerprint="a" * 16), alert_doc("b", fingerprint="b" * 16)
        c = alert_doc("c", fingerprint="c" * 16)
        # one gather: all reach the batcher before its first flush, so they share a batch
        results = await asyncio.gather(
            store.ingest(_n(a, b)),  # new
            store.ingest(_n(a, b)),  # an HA peer's copy in the same batch
            store.ingest(_n(old, c)),  # stored before, plus one new
            store.ingest(_n(c, c)),  # c again, twice in itself
        )
        assert [(r.accepted, r.duplicates) for r in results] == [(2, 0), (0, 2), (1, 1), (0, 2)]
        assert await store.event_counts() == {"pending": 4, "processed": 0}
        assert await store.queue_depth() == 4
        resolved = alert_doc("a", fingerprint="a" * 16, status="resolved")
        assert (await store.ingest(_n(resolved))).accepted == 1  # status is part of the key
    finally:
        await store.close()


async def test_a_failing_batch_fails_every_request_in_it_and_keeps_what_was_committed(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    store = await SqliteStore.open(db, busy_timeout_ms=50)
    try:
        await store.ingest(_n(alert_doc("kept", fingerprint="1" * 16)))
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: commits fail
        docs = [alert_doc(f"p{i}", fingerprint=f"{i:016x}") for i in range(5)]
        results = await asyncio.gather(*(store.ingest(_n(d)) for d in docs), return_exceptions=True)
        assert all(isinstance(r, StoreUnavailable) for r in results), results
        blocker.execute("ROLLBACK")
        blocker.close()
        assert await store.event_counts() == {"pending": 1, "processed": 0}
        assert await store.queue_depth() == 1
        # the retry (Alertmanager retries on 503) stores them, once
        again = await asyncio.gather(*(store.ingest(_n(d)) for d in docs))
        assert [r.accepted for r in again] == [1] * 5
        assert await store.event_counts() == {"pending": 6, "processed": 0}
    finally:
        await store.close()


async def test_large_batches_are_all_stored(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    try:
        notes = [
            _n(*(alert_doc(f"p{i}", fingerprint=f"{i:08x}{j:08x}") for j in range(20)))
            for i in range(37)
        ]  # 740 rows, one batch
        results = await asyncio.gather(*(store.ingest(n) for n in notes))
        assert [r.accepted for r in results] == [20] * 37
        claimed = await store.claim_events("w", 1000, lease_seconds=60)
        assert len(claimed) == 740
        assert {e.alert.fingerprint for e in claimed} == {
            a.fingerprint for n in notes for a in n.alerts
        }
    finally:
        await store.close()


async def test_batcher_hands_a_flush_failure_to_every_item_and_goes_on() -> None:
    calls: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        calls.append(items)
        await asyncio.sleep(0)
        if 13 in items:
            raise StoreUnavailable("disk on fire")
        return [i * 2 for i in items]

    batcher: Batcher[int, int] = Batcher(flush, max_batch=3)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(1, 8)))
    assert results == [2, 4, 6, 8, 10, 12, 14]
    assert calls == [[1, 2, 3], [4, 5, 6], [7]]
    failed = await asyncio.gather(*(batcher.submit(i) for i in (12, 13)), return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in failed)
    assert await batcher.submit(5) == 10
    await batcher.close()


def test_credit_goes_to_the_first_sender_of_each_key() -> None:
    assert credit([["a", "b"], ["a", "c"], ["c"], []], {"a", "c"}) == [1, 1, 0, 0]


def test_fast_alert_times_match_parse_time() -> None:
    samples = [
        "2026-01-01T12:00:00Z",
        "2026-01-01T12:00:00.5Z",
        "2026-01-01T12:00:00.123456789Z",
        "2026-01-01t12:00:00.1z",
        "2026-01-01T00:30:00-01:30",
        "0001-01-01T00:00:00Z",
        "",
    ]
    for text in samples:
        try:
            expected: Any = parse_time(text)
        except ValueError:
            expected = ValueError
        try:
            got: Any = fast_time(text)
        except ValueError:
            got = ValueError
        assert got == expected, text
        if isinstance(got, datetime):
            assert got.tzinfo is UTC and starts_key_of(got) == format_time(got)
    # nanoseconds with a non-UTC offset: the offset's digits are not fraction digits
    nanos_with_offset = "2026-01-01T12:00:00.999999999+02:00"
    expected_time = datetime(2026, 1, 1, 10, 0, 0, 999999, tzinfo=UTC)
    assert fast_time(nanos_with_offset) == expected_time
    assert parse_time(nanos_with_offset) == expected_time


async def test_stored_rows_are_the_codec_document_and_its_key_columns(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = await SqliteStore.open(db)
    try:
        odd = {"team": 'é "q" \\ \n \t \u2028 \U0001f600', "pipeline": "etl_é"}
        doc = alert_doc("etl_é", fingerprint="f\u00e9", labels=odd)
        note = _n(doc, alert_doc("p2", status="resolved", ends=datetime(2026, 1, 2, tzinfo=UTC)))
        assert (await store.ingest(note)).accepted == 2
    finally:
        await store.close()
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT fingerprint, starts_at, status, pipeline, alert, group_key, receiver FROM events"
        " ORDER BY id"
    ).fetchall()
    conn.close()
    for row, alert in zip(rows, note.alerts, strict=True):
        key = (alert.fingerprint, starts_key_of(alert.starts_at), alert.status, alert.pipeline)
        assert row[:4] == key
        assert json.loads(row[4]) == json.loads(codec.dumps(codec.alert_to_doc(alert)))
        assert row[5:] == (note.group_key, note.receiver)


async def test_items_of_one_loop_iteration_reach_the_writer_together_and_stop_keeps_them(
    tmp_path: Path,
) -> None:
    batches: list[int] = []
    store = await SqliteStore.open(tmp_path / "s.db", on_commit=lambda _s, n: batches.append(n))
    docs = [notification_doc(alert_doc(f"p{i}", fingerprint=f"{i:016x}")) for i in range(50)]
    batches.clear()  # what opening committed
    tasks = [asyncio.ensure_future(store.ingest(Notification.from_json(d))) for d in docs]
    await asyncio.sleep(0)  # every ingest has submitted, none handed over yet
    await store.close()  # hands the pending items over before the writer stops
    results = await asyncio.gather(*tasks)
    assert sum(r.accepted for r in results) == 50
    assert batches == [50]  # one hand-over, one merged statement, one commit
    reopened = await SqliteStore.open(tmp_path / "s.db")
    try:
        assert await reopened.queue_depth() == 50
    finally:
        await reopened.close()
