"""POST /alerts: status codes, validation of real and hostile payloads, idempotency."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from core_helpers import alert_doc, config, notification_doc, real_world_notification, stages

from receiver.app import create_app
from receiver.keys import STORE, WORKER


async def _client(aiohttp_client: Any, tmp_path: Path, **raw: Any) -> TestClient:  # type: ignore[type-arg]
    app = create_app(config(tmp_path, **raw), **stages())
    client: TestClient = await aiohttp_client(app)  # type: ignore[type-arg]
    return client


async def test_accepts_a_notification_and_replay_is_idempotent(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await _client(aiohttp_client, tmp_path)
    doc = notification_doc(alert_doc("a"), alert_doc("b"))
    first = await client.post("/alerts", json=doc)
    assert first.status == 200
    assert await first.json() == {"status": "ok", "accepted": 2, "duplicates": 0}
    again = await client.post("/alerts", json=doc)
    assert await again.json() == {"status": "ok", "accepted": 0, "duplicates": 2}
    store = client.app[STORE]
    await client.app[WORKER].run_until_idle()
    assert len(await store.list_incidents()) == 2
    metrics = await (await client.get("/metrics")).text()
    assert "pipemedic_receiver_duplicate_alerts_total 2.0" in metrics
    assert 'pipemedic_receiver_notifications_total{result="duplicate"} 1.0' in metrics


async def test_accepts_what_real_alertmanagers_send(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await _client(aiohttp_client, tmp_path)
    alert = alert_doc("données", labels={"note": "ünïcødé ✓ 日本"})
    alert["generatorURL"] = ""
    alert["endsAt"] = "0001-01-01T00:00:00Z"
    alert["startsAt"] = "2026-01-01T12:00:00.123456789+02:00"
    alert["someFutureField"] = {"x": [1]}
    doc = real_world_notification(alert)
    resp = await client.post("/alerts", json=doc)
    assert resp.status == 200, await resp.text()
    metrics = await (await client.get("/metrics")).text()
    assert "pipemedic_receiver_truncated_alerts_total 3.0" in metrics


async def _refused(
    client: TestClient,  # type: ignore[type-arg]
    body: bytes,
    status: int,
    content_type: str = "application/json",
) -> dict[str, Any]:
    resp = await client.post("/alerts", data=body, headers={"Content-Type": content_type})
    assert resp.status == status, await resp.text()
    doc: dict[str, Any] = await resp.json()
    assert doc["error"]
    return doc


async def test_hostile_bodies_get_4xx_and_the_receiver_keeps_serving(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await _client(aiohttp_client, tmp_path)
    good = notification_doc(alert_doc("ok"))
    wrong_type = notification_doc(alert_doc("x"))
    wrong_type["alerts"][0]["labels"]["pipeline"] = 42
    many = {"version": "4", "status": "firing", "alerts": [{}] * 50_000}
    huge = notification_doc(alert_doc("x", labels={"blob": "x" * 200_000}))
    lone = notification_doc(alert_doc("x", labels={"team": "a\ud800b"}))  # sent as \ud800
    cases: list[tuple[bytes, int, str, str | None]] = [
        (b"{not json", 400, "application/json", "$"),
        (json.dumps(wrong_type).encode(), 400, "application/json", "alerts[0].labels.pipeline"),
        (json.dumps(many).encode(), 400, "application/json", "alerts[0]"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "application/json", "$"),
        (json.dumps(huge).encode(), 400, "application/json", "alerts[0].labels.blob"),
        (b'{"version": "4", "status": "\xff\xfe"}', 400, "application/json", "$"),
        (json.dumps(good).encode(), 400, "text/plain", "header:Content-Type"),
        (b"[]", 400, "application/json", "$"),
        (json.dumps({**good, "version": "3"}).encode(), 400, "application/json", "version"),
        (
            json.dumps(
                notification_doc(alert_doc("x", labels={}) | {"startsAt": "2026-13-45T99:00:00Z"})
            ).encode(),
            400,
            "application/json",
            "alerts[0].startsAt",
        ),
        (b" " * (1024 * 1024 + 1), 413, "application/json", None),
        (json.dumps(lone).encode(), 400, "application/json", "$"),
    ]
    for body, status, ctype, path in cases:
        doc = await _refused(client, body, status, ctype)
        if path is not None:
            assert doc["path"] == path, (body[:60], doc)
        ok = await client.post("/alerts", json=good)
        assert ok.status == 200
    metrics = await (await client.get("/metrics")).text()
    assert 'pipemedic_receiver_notifications_total{result="invalid"} 11.0' in metrics
    assert 'pipemedic_receiver_notifications_total{result="too_large"} 1.0' in metrics
    # a surrogate pair (json.dumps writes \ud83d\ude00) is one character: accepted
    pair = json.dumps(notification_doc(alert_doc("pair", labels={"team": "\U0001f600"})))
    assert "\\ud83d" in pair
    ok = await client.post("/alerts", data=pair, headers={"Content-Type": "application/json"})
    assert ok.status == 200


async def test_body_limit_is_configurable(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await _client(aiohttp_client, tmp_path, body_limit_bytes=2048)
    big = notification_doc(*[alert_doc(f"p{i}") for i in range(20)])
    await _refused(client, json.dumps(big).encode(), 413)
    assert (await client.post("/alerts", json=notification_doc(alert_doc("p")))).status == 200


async def test_alerts_per_notification_are_limited(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await _client(aiohttp_client, tmp_path, max_alerts=5)
    six = notification_doc(*[alert_doc(f"p{i}") for i in range(6)])
    doc = await _refused(client, json.dumps(six).encode(), 413)
    assert "the limit is 5" in doc["error"]
    assert "max_alerts" in doc["error"]
    five = notification_doc(*[alert_doc(f"p{i}") for i in range(5)])
    assert (await client.post("/alerts", json=five)).status == 200
    assert await client.app[STORE].queue_depth() == 5  # nothing of the refused one was kept


async def test_the_default_alert_limit_refuses_a_100k_alert_notification(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await _client(aiohttp_client, tmp_path, body_limit_bytes=64 << 20)
    huge = notification_doc(*[alert_doc(f"p{i}") for i in range(100_000)])
    doc = await _refused(client, json.dumps(huge).encode(), 413)
    assert "100000 alerts" in doc["error"]
    assert await client.app[STORE].queue_depth() == 0


async def test_bearer_and_basic_auth(aiohttp_client: Any, tmp_path: Path, monkeypatch: Any) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    monkeypatch.setenv("RECEIVER_TEST_PASSWORD", "pa:ss wörd")
    client = await _client(
        aiohttp_client,
        tmp_path,
        auth={
            "bearer": {"token_file": str(token)},
            "basic": {"username": "alertmanager", "password_env": "RECEIVER_TEST_PASSWORD"},
        },
    )
    doc = notification_doc(alert_doc("p"))
    basic = base64.b64encode("alertmanager:pa:ss wörd".encode()).decode()
    wrong_basic = base64.b64encode(b"alertmanager:nope").decode()
    for header, status in [
        (None, 401),
        ("Bearer wrong", 401),
        ("Bearer s3cret-token-and-more", 401),
        (f"Basic {wrong_basic}", 401),
        ("Basic !!!", 401),
        ("Digest abc", 401),
        ("Bearer s3cret-token", 200),
        (f"Basic {basic}", 200),
    ]:
        headers = {"Authorization": header} if header else {}
        resp = await client.post("/alerts", json=doc, headers=headers)
        assert resp.status == status, header
        if status == 401:
            assert (await resp.json())["reason"] == "unauthorized"


async def test_full_queue_answers_503(aiohttp_client: Any, tmp_path: Path) -> None:
    app = create_app(config(tmp_path, queue={"max_depth": 2}), **stages())
    app.cleanup_ctx.pop()  # no workers: the queue only fills
    client: TestClient = await aiohttp_client(app)  # type: ignore[type-arg]
    assert (
        await client.post("/alerts", json=notification_doc(alert_doc("a"), alert_doc("b")))
    ).status == 200
    resp = await client.post("/alerts", json=notification_doc(alert_doc("c")))
    assert resp.status == 503
    assert (await resp.json())["reason"] == "unavailable"


async def test_store_that_cannot_commit_answers_503_and_not_ready(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    db = tmp_path / "receiver.db"
    client = await _client(aiohttp_client, tmp_path, store=f"sqlite:///{db}?busy_timeout_ms=50")
    assert (await client.get("/-/ready")).status == 200
    await client.app[WORKER].stop(0)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        resp = await client.post("/alerts", json=notification_doc(alert_doc("a")))
        assert resp.status == 503
        assert (await client.get("/-/ready")).status == 503
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    resp = await client.post("/alerts", json=notification_doc(alert_doc("a")))
    assert resp.status == 200
    assert (await client.get("/-/healthy")).status == 200
