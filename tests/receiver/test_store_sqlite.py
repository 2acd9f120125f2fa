"""The SQLite store: group commit, durable queue leases, and the fast schema check."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from core_helpers import alert_doc, notification_doc

from receiver.models import Notification
from receiver.store import open_store
from receiver.store.base import StoreError
from receiver.store.sqlite import SqliteStore
from receiver.webhook import schema_validator
from receiver.webhook_fast import fast_valid


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


async def test_open_store_urls(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'u.db'}?synchronous=NORMAL")
    await store.ping()
    await store.close()
    for bad in ("sqlite://x.db", "mysql://h/db", f"sqlite:///{tmp_path}/v.db?nope=1"):
        with pytest.raises(StoreError):
            await open_store(bad)


def _samples() -> list[Any]:
    good = notification_doc(alert_doc("p"), alert_doc("q", status="resolved"))
    out: list[Any] = [good, {**good, "truncatedAlerts": 2, "extra": 1}]
    for path, value in [
        (("version",), "3"),
        (("truncatedAlerts",), True),
        (("truncatedAlerts",), -1),
        (("alerts", 0, "labels", "x"), 1),
        (("alerts", 0, "startsAt"), "yesterday"),
        (("alerts", 0, "fingerprint"), None),
        (("alerts", 0, "generatorURL"), "x" * 9000),
        (("commonLabels", ""), "v"),
        (("receiver",), 5),
    ]:
        doc = json.loads(json.dumps(good))
        target = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        out.append(doc)
    return out


@pytest.mark.parametrize("doc", _samples())
def test_fast_check_never_accepts_what_the_schema_refuses(doc: Any) -> None:
    schema_ok = schema_validator().is_valid(doc)
    assert fast_valid(doc) <= schema_ok
    if schema_ok and doc.get("truncatedAlerts") is not True:
        assert fast_valid(doc)
