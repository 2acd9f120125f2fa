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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from core_helpers import ALERTMANAGER_TO_RECEIVER, until

from pipemedic.stack import AlertmanagerServer, PrometheusServer
from receiver.app import create_app
from receiver.config import parse_config
from receiver.models import Diagnosis
from rules.spec import parse_spec

SPEC = """
defaults: {team: data-platform}
pipelines:
  etl_orders: {impact: many}
teams:
  data-platform: {commander: ana, scribe: ben, liaison: cy, sme: [dev, eve]}
"""


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
        alertmanager_server, ALERTMANAGER_TO_RECEIVER.format(url=receiver.make_url("/alerts"))
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
        escalated = await until(lambda: incident_in("escalated"), "the incident to escalate")
        assert escalated["sev"] == "SEV2" and escalated["diagnosis"]["cause"] == "unknown"

        ends = datetime.now(UTC)
        await post_to_alertmanager({**alert, "endsAt": _iso(ends)})
        resolved = await until(lambda: incident_in("resolved"), "the resolved notification")
        assert resolved["has_postmortem"]

        incident_id = resolved["id"]
        async with http.get(receiver.make_url(f"/incidents/{incident_id}/postmortem")) as r:
            assert r.status == 200 and r.content_type == "text/markdown"
            text = await r.text()

    titles = [line for line in text.splitlines() if line.startswith("## ")]
    assert titles == [
        "## Facts",
        "## People",
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
    for expected in ("detected", "received", "diagnosed", "escalated", "resolved"):
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


async def test_postmortem_lists_recovery_attempts_made_through_the_receiver(
    tmp_path: Path,
    prometheus_server: Callable[..., PrometheusServer],
    alertmanager_server: Callable[..., AlertmanagerServer],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    calls: list[str] = []

    async def restart(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.Response(status=503 if len(calls) == 1 else 200, text="restart")

    target_app = web.Application()
    target_app.router.add_post("/restart", restart)
    target = await aiohttp_server(target_app, host="127.0.0.1")

    async def firing(alert: Any) -> bool:
        return len(calls) < 2  # the second restart fixes the pipeline

    async def timeout_diagnosis(alert: Any, spec: Any) -> Diagnosis:
        return Diagnosis("network_timeout", "check_infrastructure", "timeouts to the orders API")

    prom = await asyncio.to_thread(prometheus_server)
    config = parse_config(
        {
            "store": f"sqlite:///{tmp_path / 'receiver.db'}",
            "prometheus_url": prom.url,
            "workers": {"poll_interval_seconds": 0.2},
            "recovery": {
                "backoff_base_seconds": 0.1,
                "backoff_max_seconds": 0.2,
                "backoff_jitter": 0,
                "verify_deadline_seconds": 2,
                "verify_interval_seconds": 0.2,
            },
        }
    )
    spec = parse_spec(
        SPEC.replace(
            "etl_orders: {impact: many}",
            "etl_orders:\n    impact: many\n    actions:\n      retry_with_backoff:\n"
            f"        http: {{url: '{target.make_url('/restart')}'}}",
        )
    )
    receiver = await aiohttp_server(
        create_app(config, spec=spec, diagnose=timeout_diagnosis, firing=firing), host="127.0.0.1"
    )
    am = await asyncio.to_thread(
        alertmanager_server, ALERTMANAGER_TO_RECEIVER.format(url=receiver.make_url("/alerts"))
    )
    starts = datetime.now(UTC) - timedelta(minutes=1)
    alert: dict[str, Any] = {
        "labels": {"alertname": "PipelineDown", "pipeline": "etl_orders", "sev": "SEV2"},
        "annotations": {"summary": "etl_orders is down"},
        "startsAt": _iso(starts),
    }
    async with aiohttp.ClientSession() as http:

        async def post_to_alertmanager(doc: dict[str, Any]) -> None:
            async with http.post(f"{am.url}/api/v2/alerts", json=[doc]) as response:
                assert response.status == 200, await response.text()

        async def incident() -> dict[str, Any] | None:
            async with http.get(receiver.make_url("/incidents?pipeline=etl_orders")) as r:
                found = (await r.json())["incidents"]
            return found[0] if found else None

        seen: list[Any] = []

        async def recovered() -> dict[str, Any] | None:
            found = await incident()
            seen[:] = [found]
            done = found and any(a["outcome"] == "success" for a in found["actions"])
            return found if done else None

        await post_to_alertmanager(alert)
        try:
            await until(recovered, "a successful recovery action")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the incident: {seen}") from None
        await post_to_alertmanager({**alert, "endsAt": _iso(datetime.now(UTC))})

        async def resolved() -> dict[str, Any] | None:
            found = await incident()
            return found if found and found["state"] == "resolved" else None

        done = await until(resolved, "the resolved notification")
        async with http.get(receiver.make_url(f"/incidents/{done['id']}/postmortem")) as r:
            text = await r.text()

    assert calls == ["/restart", "/restart"]
    assert "| `retry_with_backoff#1` | `retry_with_backoff` |" in text
    assert "| `retry_with_backoff#2` | `retry_with_backoff` |" in text
    assert "**How it was resolved:** automatically, by `retry_with_backoff`" in text
    assert "after 2 attempt(s)" in text
    assert "Recovery needed 2 attempts (1 failed)" in text
    assert "Find out why" in text and "| dev, eve | sme | step `retry_with_backoff#1` |" in text
    assert "`network_timeout`: review the dependency's timeouts and retry budget." in text
    assert "| `success` — HTTP 200: restart | yes | <1s |" in text
