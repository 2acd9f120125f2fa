"""The real servers start, serve, and talk to each other."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from pipemedic.stack import AlertmanagerServer, PrometheusServer, PushgatewayServer


async def test_alertmanager_posts_a_real_webhook_notification(
    aiohttp_server: Callable[..., Any],
    alertmanager_server: Callable[..., AlertmanagerServer],
) -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await received.put(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/alerts", hook)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    am = alertmanager_server(
        f"""
route:
  receiver: hook
  group_by: [pipeline, alertname]
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:{server.port}/alerts
        send_resolved: true
"""
    )
    alert = {
        "labels": {"alertname": "PipelineDown", "pipeline": "etl_orders", "severity": "critical"},
        "annotations": {"summary": "etl_orders is down"},
        "startsAt": datetime.now(UTC).isoformat(),
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{am.url}/api/v2/alerts", json=[alert]) as resp,
    ):
        assert resp.status == 200, await resp.text()
    payload = await asyncio.wait_for(received.get(), timeout=60)
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["receiver"] == "hook"
    assert payload["groupLabels"] == {"alertname": "PipelineDown", "pipeline": "etl_orders"}
    (got,) = payload["alerts"]
    assert got["labels"]["pipeline"] == "etl_orders"
    assert got["fingerprint"]
    assert got["endsAt"].startswith("0001-01-01")


def test_prometheus_scrapes_itself_and_answers_queries(
    prometheus_server: Callable[..., PrometheusServer],
) -> None:
    import time
    import urllib.parse
    import urllib.request

    prom = prometheus_server("global: {scrape_interval: 1s}\nscrape_configs: []\n")
    prom.reload(
        f"""
global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: self
    static_configs: [{{targets: ["{prom.address}"]}}]
"""
    )
    query = urllib.parse.urlencode({"query": 'up{job="self"}'})
    deadline = time.monotonic() + 60
    result: list[Any] = []
    while time.monotonic() < deadline and not result:
        with urllib.request.urlopen(f"{prom.url}/api/v1/query?{query}") as resp:
            result = json.load(resp)["data"]["result"]
        time.sleep(0.2)
    assert result and result[0]["value"][1] == "1"


def test_pushgateway_starts(pushgateway_server: Callable[[], PushgatewayServer]) -> None:
    import urllib.request

    pgw = pushgateway_server()
    with urllib.request.urlopen(f"{pgw.url}/metrics") as resp:
        assert b"pushgateway_build_info" in resp.read()
