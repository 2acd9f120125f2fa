"""A post-mortem produced end to end: real Alertmanager -> receiver -> incident -> draft.

An alert is posted to a real Alertmanager, which notifies the receiver
(webhook v4, ``send_resolved``). The receiver opens the incident, diagnoses
it against a real (empty) Prometheus, finds no recovery for the cause and
escalates; the alert is then resolved in Alertmanager, whose resolved
notification resolves the incident. The stored post-mortem served at
``GET /incidents/{id}/postmortem`` must carry the runbook's sections and
the facts of exactly that incident.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from pipemedic.stack import AlertmanagerServer, PrometheusServer
from receiver.app import create_app
from receiver.config import parse_config
from rules.spec import parse_spec

SPEC = """
defaults: {team: data-platform}
pipelines:
  etl_orders: {impact: many}
teams:
  data-platform: {commander: ana, scribe: ben, liaison: cy, sme: [dev, eve]}
"""

ALERTMANAGER = """
route:
  receiver: pipemedic
  group_by: [pipeline]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: pipemedic
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _poll(
    check: Callable[[], Awaitable[Any]], what: str, deadline_seconds: float = 90.0
) -> Any:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


async def test_postmortem_of_an_incident_from_real_alertmanager_notifications(
    tmp_path: Path,
    prometheus_server: Callable[..., PrometheusServer],
    alertmanager_server: Callable[..., AlertmanagerServer],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    prom = await asyncio.to_thread(prometheus_server)
    config = parse_config(
        {
            "store": f"sqlite:///{tmp_path / 'receiver.db'}",
            "prometheus_url": prom.url,
            "workers": {"poll_interval_seconds": 0.2},
        }
    )
    app = create_app(config, spec=parse_spec(SPEC))
    receiver = await aiohttp_server(app, host="127.0.0.1")
    am = await asyncio.to_thread(
        alertmanager_server, ALERTMANAGER.format(url=receiver.make_url("/alerts"))
    )

    starts = (datetime.now(UTC) - timedelta(minutes=3)).replace(microsecond=0)
    alert: dict[str, Any] = {
        "labels": {
            "alertname": "PipelineDown",
            "pipeline": "etl_orders",
            "severity": "critical",
            "sev": "SEV2",
            "category": "connectivity",
            "team": "data-platform",
        },
        "annotations": {"summary": "etl_orders is down", "runbook_url": "https://example.test"},
        "startsAt": _iso(starts),
    }

    async with aiohttp.ClientSession() as http:

        async def post_to_alertmanager(doc: dict[str, Any]) -> None:
            async with http.post(f"{am.url}/api/v2/alerts", json=[doc]) as response:
                assert response.status == 200, await response.text()

        async def incident_in(state: str) -> dict[str, Any] | None:
            async with http.get(receiver.make_url("/incidents?pipeline=etl_orders")) as r:
                assert r.status == 200
                found = (await r.json())["incidents"]
            return found[0] if found and found[0]["state"] == state else None

        await post_to_alertmanager(alert)
        escalated = await _poll(lambda: incident_in("escalated"), "the incident to escalate")
        assert escalated["sev"] == "SEV2" and escalated["diagnosis"]["cause"] == "unknown"

        ends = datetime.now(UTC)
        await post_to_alertmanager({**alert, "endsAt": _iso(ends)})
        resolved = await _poll(lambda: incident_in("resolved"), "the resolved notification")
        assert resolved["has_postmortem"]

        incident_id = resolved["id"]
        async with http.get(receiver.make_url(f"/incidents/{incident_id}/postmortem")) as r:
            assert r.status == 200 and r.content_type == "text/markdown"
            text = await r.text()

    titles = [line for line in text.splitlines() if line.startswith("## ")]
    assert titles == [
        "## Facts",
        "## Timeline",
        "## Root cause",
        "## Impact & resolution",
        "## Lessons learned",
        "## Action items",
    ]
    assert text.startswith(f"# Post-mortem: PipelineDown on `etl_orders` (incident #{incident_id})")
    # facts: what, when it began (the alert's startsAt) and ended (its endsAt), impact
    assert "`PipelineDown`: etl_orders is down" in text
    assert f"**Began:** {_iso(starts)}" in text
    assert f"**Ended:** {_iso(ends)}" in text
    assert "**Impact:** SEV2 — significant problems, many users affected" in text
    # the timeline the receiver recorded, in order
    events = [
        line.split("|")[2].strip().strip("`")
        for line in text.splitlines()
        if line.startswith("| 20")
    ]
    for expected in ("detected", "acknowledged", "diagnosed", "escalated", "resolved"):
        assert expected in events, events
    assert events.index("detected") < events.index("diagnosed") < events.index("escalated")
    assert events.index("escalated") < events.index("resolved")
    # root cause, resolution, lessons, owned action items
    assert "**Cause:** `unknown`" in text
    assert "escalated for manual intervention" in text
    assert "Diagnosis found no cause" in text
    assert "| dev, eve | sme | escalation |" in text
    assert "| ben | scribe | post-mortem |" in text
    assert "| ana | commander | closure |" in text
    assert "| cy | liaison | SEV2 |" in text
