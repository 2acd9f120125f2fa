"""A real Alertmanager posts to the receiver: bearer and basic auth, truncation, resolution."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core_helpers import config, stages

from receiver.app import create_app
from receiver.keys import METRICS, STORE
from receiver.store.sqlite.store import SqliteStore


def _am_config(port: int, http_config: str, max_alerts: int = 0) -> str:
    return f"""
route:
  receiver: pipemedic
  group_by: [pipeline]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: pipemedic
    webhook_configs:
      - url: http://127.0.0.1:{port}/alerts
        send_resolved: true
        max_alerts: {max_alerts}
        http_config:
{http_config}
"""


def _post_alerts(am_url: str, alerts: list[dict[str, Any]]) -> None:
    req = urllib.request.Request(
        am_url + "/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def _alerts(pipeline: str, n: int, ends: datetime | None = None) -> list[dict[str, Any]]:
    starts = datetime.now(UTC) - timedelta(minutes=1)
    out = []
    for i in range(n):
        doc: dict[str, Any] = {
            "labels": {
                "alertname": "PipelineDown",
                "pipeline": pipeline,
                "instance": f"i{i}",
                "sev": "SEV2",
                "team": "data-platform",
            },
            "annotations": {"summary": f"{pipeline} is down ✗"},
            "startsAt": starts.isoformat(),
        }
        if ends is not None:
            doc["endsAt"] = ends.isoformat()
        out.append(doc)
    return out


async def _until(check: Callable[[], Awaitable[bool]], what: str, deadline: float = 45.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _metric(app: Any, name: str) -> float:
    for family in app[METRICS].registry.collect():
        for sample in family.samples:
            if sample.name + str(sorted(sample.labels.items())) == name or (
                not sample.labels and sample.name == name
            ):
                return float(sample.value)
    return 0.0


async def test_bearer_auth_truncation_and_resolution(
    aiohttp_server: Any, alertmanager_server: Any, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("am-token-1\n")
    app = create_app(config(tmp_path, auth={"bearer": {"token_file": str(token)}}), **stages())
    server = await aiohttp_server(app)
    http_config = f"          authorization:\n            credentials_file: {token}\n"
    am = await asyncio.to_thread(alertmanager_server, _am_config(server.port, http_config, 2))
    store = app[STORE]
    assert isinstance(store, SqliteStore)

    await asyncio.to_thread(_post_alerts, am.url, _alerts("etl_orders", 5))

    async def truncated() -> bool:
        return _metric(app, "pipemedic_receiver_truncated_alerts_total") >= 3

    await _until(truncated, "a truncated notification (max_alerts: 2)")
    counts = await store.event_counts()
    # each notification carried at most max_alerts=2 alerts; a later flush may add others
    assert 2 <= counts["pending"] + counts["processed"] <= 5

    await asyncio.to_thread(_post_alerts, am.url, _alerts("etl_orders", 5, ends=datetime.now(UTC)))

    async def resolved() -> bool:
        incident = await store.last_incident("etl_orders")
        return incident is not None and incident.state == "resolved"

    await _until(resolved, "the resolved notification to resolve the incident")
    incident = await store.last_incident("etl_orders")
    assert incident is not None and incident.sev == "SEV2"
    assert incident.postmortem and "etl_orders" in incident.postmortem
    assert [t.event for t in incident.timeline].count("resolved") == 1
    assert _metric(app, "pipemedic_receiver_notifications_total[('result', 'unauthorized')]") == 0


async def test_basic_auth_and_wrong_credentials(
    aiohttp_server: Any, alertmanager_server: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("PM_TEST_PW", "b4sic-pw")
    cfg = config(
        tmp_path,
        auth={"basic": {"username": "alertmanager", "password_env": "PM_TEST_PW"}},
    )
    app = create_app(cfg, **stages())
    server = await aiohttp_server(app)
    good = tmp_path / "good"
    good.write_text("b4sic-pw")
    bad = tmp_path / "bad"
    bad.write_text("wrong")
    basic = (
        "          basic_auth:\n            username: alertmanager\n            password_file: {}\n"
    )
    am_good = await asyncio.to_thread(
        alertmanager_server, _am_config(server.port, basic.format(good))
    )
    am_bad = await asyncio.to_thread(
        alertmanager_server, _am_config(server.port, basic.format(bad))
    )
    await asyncio.to_thread(_post_alerts, am_good.url, _alerts("good_pipe", 1))
    await asyncio.to_thread(_post_alerts, am_bad.url, _alerts("bad_pipe", 1))
    store = app[STORE]
    assert isinstance(store, SqliteStore)

    async def both_seen() -> bool:
        return (
            await store.last_incident("good_pipe") is not None
            and _metric(app, "pipemedic_receiver_notifications_total[('result', 'unauthorized')]")
            >= 1
        )

    await _until(both_seen, "one accepted and one refused notification")
    assert await store.last_incident("bad_pipe") is None
