"""Two ``pipemedic receiver`` processes on one PostgreSQL: each message reaches people once.

Real parts on loopback: two receiver processes started as a user starts them
(``python -m pipemedic receiver --config``), the session's PostgreSQL, an
empty Prometheus, a chat sink (apprise's Mattermost plugin), an SMTP server
(aiosmtpd) and Alertmanager with the repository's routing for pages. Both
replicas receive every alert, as they do behind two Alertmanager peers; both
run a delivery worker and a page renewer.
"""

from __future__ import annotations

import json
import re
import textwrap
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from core_helpers import ReceiverProcess, alert_doc, notification_doc, until

from pipemedic.sinks import ChatSink, MailSink
from pipemedic.stack import AlertmanagerServer, PrometheusServer
from receiver.models import Incident
from receiver.store.postgres.store import PostgresStore

pytestmark = pytest.mark.slow

PIPELINES = [f"etl_replicas_{n}" for n in range(6)]
_INCIDENT = re.compile(r"#(\d+) ")


@pytest.fixture
def receivers() -> Iterator[list[ReceiverProcess]]:
    started: list[ReceiverProcess] = []
    yield started
    for receiver in started:
        receiver.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _pages(am: AlertmanagerServer) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{am.url}/api/v2/alerts?active=true", timeout=10) as r:
        found = json.loads(r.read())
    return [a for a in found if a["labels"]["alertname"] == "PipelineIncident"]


def _sent(incidents: list[Incident]) -> list[tuple[int, str, str]]:
    """(incident, event, destination) of every ``notification_sent`` timeline entry."""
    return [
        (i.id, str(e.detail["notification"]), str(e.detail["destination"]))
        for i in incidents
        for e in i.timeline
        if e.event == "notification_sent" and isinstance(e.detail, dict)
    ]


async def test_two_receiver_processes_on_postgresql_deliver_each_message_once(
    tmp_path: Path,
    repo_root: Path,
    postgres_server: Callable[[], str],
    prometheus_server: Callable[..., PrometheusServer],
    alertmanager_server: Callable[..., AlertmanagerServer],
    receivers: list[ReceiverProcess],
    session: aiohttp.ClientSession,
) -> None:
    dsn = postgres_server()
    prometheus = prometheus_server()
    with ChatSink() as chat, MailSink() as mail, ChatSink() as pager, ChatSink() as trap:
        am_config = (repo_root / "alertmanager.yml").read_text()
        am_config = am_config.replace(
            "http://127.0.0.1:9099/alerts", f"http://{trap.address}/alerts"
        ).replace(
            "  - name: paging\n",
            f"  - name: paging\n    webhook_configs: [{{url: 'http://{pager.address}/page'}}]\n",
        )
        am = alertmanager_server(am_config)
        spec = tmp_path / "pipelines.yml"
        spec.write_text(
            textwrap.dedent(
                f"""
                teams:
                  data-platform:
                    commander: {{name: Ada Lovelace, email: ada@example.com}}
                    page_sev: SEV2
                    notify:
                      - url: "mmost://{chat.address}/hook"
                      - url: "mailto://{mail.address}?from=pm@example.com&mode=insecure"
                        events: [opened]
                        to: [commander]
                """
            )
        )
        config = textwrap.dedent(
            f"""
            store: "{dsn}"
            spec: "{spec}"
            prometheus_url: "{prometheus.url}"
            workers: {{poll_interval_seconds: 0.1}}
            notify:
              lease_seconds: 30
              paging: {{alertmanager_url: "{am.url}", resend_interval: 1s}}
            """
        )
        for name in ("replica-a", "replica-b"):
            receiver = ReceiverProcess(name, tmp_path, config)
            receivers.append(receiver)
            receiver.start()

        labels = {"team": "data-platform", "sev": "SEV2"}
        doc = notification_doc(*(alert_doc(p, labels=labels) for p in PIPELINES))
        for receiver in receivers:  # as two Alertmanager peers deliver the same group
            async with session.post(f"{receiver.url}/alerts", json=doc) as resp:
                assert resp.status == 200, await resp.text()

        store = await PostgresStore.open(dsn)
        try:

            async def settled() -> list[Incident] | None:
                # no actions in the spec: each incident opens, escalates, and stays escalated
                incidents = await store.list_incidents(limit=100)
                depth, _oldest = await store.outbox_stats()
                escalated = len(incidents) == len(PIPELINES) and all(
                    i.state == "escalated" for i in incidents
                )
                told = len(chat.posts) >= 2 * len(PIPELINES) and len(mail.messages) >= len(
                    PIPELINES
                )
                return incidents if escalated and depth == 0 and told else None

            incidents = await until(settled, "every incident told and the outbox empty")
            await until(lambda: len(_pages(am)) >= len(PIPELINES), "every incident paged")
            first_end = max(datetime.fromisoformat(a["endsAt"]) for a in _pages(am))
            # both replicas keep re-posting: the pages outlive their first endsAt, once each
            await until(lambda: datetime.now(UTC) > first_end, "the first pages' endsAt passed")
            incidents = await store.list_incidents(limit=100)
        finally:
            await store.close()

        for receiver in receivers:
            assert receiver.proc is not None and receiver.proc.poll() is None, receiver.log_tail()
        # one incident per pipeline although both replicas got every alert
        assert sorted(i.pipeline for i in incidents) == sorted(PIPELINES)
        sent = _sent(incidents)
        assert sent and len(sent) == len(set(sent)), Counter(sent).most_common(3)
        by_destination = Counter(destination for _, _, destination in sent)
        # chat: one post per message the outbox delivered, each once
        keys = [
            (m.group(1), p["text"].split("\n", 1)[0])
            for p in chat.posts
            if (m := _INCIDENT.search(p["text"]))
        ]
        assert len(keys) == len(chat.posts) == by_destination["teams.data-platform.notify[0]"]
        assert len(chat.posts) == 2 * len(PIPELINES)  # opened and escalated
        assert len(set(keys)) == len(keys), Counter(keys).most_common(3)
        # email: the commander got one "opened" per incident
        assert (
            len(mail.messages) == len(PIPELINES) == by_destination["teams.data-platform.notify[1]"]
        )
        assert sorted(str(m["Subject"]) for m in mail.messages) == sorted(
            f"[SEV2] {p}: incident opened" for p in PIPELINES
        )
        # pages: one live Alertmanager alert per incident, still firing after re-posts
        pages = _pages(am)
        assert sorted(a["labels"]["incident"] for a in pages) == sorted(
            str(i.id) for i in incidents
        )
        assert {a["labels"]["state"] for a in pages} == {"escalated"}
        assert all(datetime.fromisoformat(a["endsAt"]) > first_end for a in pages)
        assert trap.posts == []
