"""Silences through Alertmanager's API v2, against a real Alertmanager."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from ledger_fake import InMemoryLedger

from pipemedic.stack import AlertmanagerServer, PrometheusServer, free_port
from receiver.diagnosis.prometheus import PrometheusAPI
from receiver.models import Alert, Diagnosis, Incident
from receiver.recovery import Recoverer, RecoveryConfig
from receiver.recovery.silences import Silences
from receiver.worker.stages import RecoveryRequest
from rules.spec import parse_spec

AM_CONFIG = "route: {receiver: blackhole}\nreceivers: [{name: blackhole}]\n"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with PrometheusServer("global: {}\n", workdir=tmp_path_factory.mktemp("sil-prom")) as p:
        yield p


async def alert_state(session: aiohttp.ClientSession, am: AlertmanagerServer, pipeline: str) -> str:
    async with session.get(f"{am.url}/api/v2/alerts") as resp:
        alerts = await resp.json()
    (found,) = [a for a in alerts if a["labels"].get("pipeline") == pipeline]
    return str(found["status"]["state"])


async def push_alert(session: aiohttp.ClientSession, am: AlertmanagerServer, pipeline: str) -> None:
    body = [{"labels": {"alertname": "PipelineDown", "pipeline": pipeline}}]
    async with session.post(f"{am.url}/api/v2/alerts", json=body) as resp:
        assert resp.status == 200, await resp.text()


async def test_a_silence_matches_the_pipeline_literally_and_expires(
    alertmanager_server: Callable[..., AlertmanagerServer], session: aiohttp.ClientSession
) -> None:
    am = alertmanager_server(AM_CONFIG)
    silences = Silences(am.url, session)
    hostile = 'etl.*|"; rm -rf /'
    await push_alert(session, am, "etl_orders")
    sid = await silences.create(
        {"pipeline": hostile},
        until=datetime.now(UTC) + timedelta(minutes=10),
        comment="test",
    )
    doc = await silences.get(sid)
    assert doc["status"]["state"] == "active"
    assert doc["matchers"] == [
        {"name": "pipeline", "value": hostile, "isRegex": False, "isEqual": True}
    ]
    assert await alert_state(session, am, "etl_orders") == "active"  # not widened by the regex
    await silences.expire(sid)
    assert (await silences.get(sid))["status"]["state"] == "expired"
    with pytest.raises(ValueError, match="not a silence id"):
        await silences.expire("../../api/v2/status")


async def test_recovery_silences_the_pipeline_while_it_acts_then_expires_it(
    alertmanager_server: Callable[..., AlertmanagerServer],
    prometheus: PrometheusServer,
    session: aiohttp.ClientSession,
    aiohttp_server: Callable[..., Any],
) -> None:
    am = alertmanager_server(AM_CONFIG)
    await push_alert(session, am, "s_pipe")
    await push_alert(session, am, "s_other")
    seen: list[tuple[str, str]] = []

    async def act(request: web.Request) -> web.Response:
        seen.append(
            (await alert_state(session, am, "s_pipe"), await alert_state(session, am, "s_other"))
        )
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/act", act)
    server = await aiohttp_server(app, host="127.0.0.1")
    spec = parse_spec(
        f"pipelines:\n  s_pipe:\n    actions:\n      retry_with_backoff:\n"
        f'        http: {{url: "http://127.0.0.1:{server.port}/act"}}\n'
    )

    async def firing() -> bool:
        return True

    config = RecoveryConfig(
        silence_during_recovery=True, alertmanager_url=am.url, verify_deadline_seconds=0
    )
    recoverer = Recoverer(config, InMemoryLedger(), PrometheusAPI(prometheus.url, session), session)
    now = datetime.now(UTC)
    result = await recoverer.recover(
        RecoveryRequest(
            Incident(1, "s_pipe", "recovering", "SEV2", now),
            Alert(
                "firing", {"alertname": "PipelineDown", "pipeline": "s_pipe"}, {}, now, None, "f"
            ),
            Diagnosis("network_timeout", "check_infrastructure", "test"),
            spec.pipeline("s_pipe"),
            firing,
        )
    )
    assert result.outcome == "recovered"
    events = [(e.event, e.detail) for e in result.entries]
    assert seen == [("suppressed", "active")]
    names = [e for e, _ in events]
    assert names.index("silence_created") < names.index("action_started")
    assert names[-1] == "silence_expired"
    sid = dict(events)["silence_created"]["id"]
    assert (await Silences(am.url, session).get(sid))["status"]["state"] == "expired"
    assert await alert_state(session, am, "s_pipe") == "active"


async def test_an_unreachable_alertmanager_does_not_stop_recovery(
    prometheus: PrometheusServer,
    session: aiohttp.ClientSession,
    aiohttp_server: Callable[..., Any],
) -> None:
    calls: list[int] = []

    async def act(request: web.Request) -> web.Response:
        calls.append(1)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/act", act)
    server = await aiohttp_server(app, host="127.0.0.1")
    spec = parse_spec(
        f"pipelines:\n  s_x:\n    actions:\n      retry_with_backoff:\n"
        f'        http: {{url: "http://127.0.0.1:{server.port}/act"}}\n'
    )

    async def firing() -> bool:
        return True

    config = RecoveryConfig(
        silence_during_recovery=True,
        alertmanager_url=f"http://127.0.0.1:{free_port()}",
        verify_deadline_seconds=0,
    )
    recoverer = Recoverer(config, InMemoryLedger(), PrometheusAPI(prometheus.url, session), session)
    now = datetime.now(UTC)
    result = await recoverer.recover(
        RecoveryRequest(
            Incident(1, "s_x", "recovering", "SEV2", now),
            Alert("firing", {"alertname": "PipelineDown", "pipeline": "s_x"}, {}, now, None, "f"),
            Diagnosis("network_timeout", "check_infrastructure", "test"),
            spec.pipeline("s_x"),
            firing,
        )
    )
    events = [e.event for e in result.entries]
    assert result.outcome == "recovered" and calls == [1]
    assert "silence_failed" in events and "silence_expired" not in events
