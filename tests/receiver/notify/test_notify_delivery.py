"""The outbox end to end: a receiver escalates, chat and email receive, once, even through outages.

Real parts on loopback: the receiver app (SQLite or PostgreSQL), apprise sending
to a local Mattermost-style hook (``ChatSink``) and a real SMTP server (aiosmtpd).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from core_helpers import T0, FakeDiagnose, FakeRecover, alert_doc, config, notification_doc, stages
from notify_helpers import HOSTILE, spec_with, wait_for

from pipemedic.sinks import ChatSink, MailSink
from receiver.app import create_app
from receiver.incidents.lifecycle import Lifecycle
from receiver.keys import NOTIFY, STORE
from receiver.models import Incident, OutboxMessage
from receiver.notify.delivery import DeliveryWorker, backoff
from receiver.notify.metrics import NotifyMetrics
from receiver.notify.mobilize import Mobilizer
from receiver.notify.process import DeliveryProcess
from receiver.notify.send import AppriseSender
from receiver.store import open_store
from receiver.store.base import Store


def _destinations(chat: ChatSink, mail: MailSink) -> str:
    return (
        f'      - {{url: "mmost://{chat.address}/hook1", min_sev: SEV3}}\n'
        f'      - {{url: "mailto://{mail.address}?from=pm@example.com&mode=insecure",'
        " events: [escalated], to: [commander]}"
    )


async def _escalating_app(
    tmp_path: Path,
    chat: ChatSink,
    mail: MailSink,
    labels: dict[str, str] | None = None,
    isolation: str = "process",
) -> TestClient[Any, Any]:
    spec = spec_with(_destinations(chat, mail))
    app = create_app(
        config(tmp_path, external_url="https://pm.example.com", notify={"isolation": isolation}),
        spec=spec,
        **stages(diagnose=FakeDiagnose("logic_error"), recover=FakeRecover("escalated")),
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    doc = alert_doc("etl_orders", labels={"team": "data-platform", "sev": "SEV2", **(labels or {})})
    response = await client.post("/alerts", json=notification_doc(doc))
    assert response.status == 200
    return client


async def _incident(client: TestClient[Any, Any]) -> Incident:
    found = await client.app[STORE].list_incidents()
    return found[0] if found else Incident(0, "", "none", "SEV5", T0)


@pytest.mark.parametrize("isolation", ["process", "task"])
async def test_an_escalation_reaches_chat_and_the_commanders_email_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, isolation: str
) -> None:
    caplog.set_level(logging.INFO, logger="receiver")
    with ChatSink() as chat, MailSink() as mail:
        client = await _escalating_app(tmp_path, chat, mail, isolation=isolation)
        assert isinstance(client.app[NOTIFY], DeliveryProcess) == (isolation == "process")
        try:
            line = 'pipemedic_notifications_total{destination_kind="mmost",event="escalated"'

            async def delivered() -> bool:
                inc = await _incident(client)
                # the delivery process reports its metrics shortly after it records
                metrics = await (await client.get("/metrics")).text()
                sent = [t.event for t in inc.timeline].count("notification_sent")
                lines = metrics.splitlines()
                return (
                    sent == 3
                    and f'{line},outcome="sent"}} 1.0' in lines
                    and "pipemedic_notification_outbox_depth 0.0" in lines
                )

            await wait_for(delivered)
            inc = await _incident(client)
            metrics = (await (await client.get("/metrics")).text()).splitlines()
        finally:
            await client.close()
    assert inc.state == "escalated"
    transitions = [
        (r.levelno, r.incident, r.state)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "receiver.incidents.lifecycle" and hasattr(r, "state")
    ]
    assert (logging.INFO, inc.id, "open") in transitions
    assert (logging.INFO, inc.id, "diagnosing") in transitions
    assert (logging.WARNING, inc.id, "escalated") in transitions
    texts = [p["text"] for p in chat.posts]
    assert len(texts) == 2  # opened, escalated: each once
    assert "incident opened" in texts[0] and "escalated, needs a person" in texts[1]
    assert "(https://pm.example.com/incidents/" in texts[1]
    assert "commander Ada Lovelace (@ada)" in texts[1]
    assert len(mail.messages) == 1 and mail.recipients == [["ada@example.com"]]
    assert "escalated" in str(mail.messages[0]["Subject"])
    sent = [t.detail for t in inc.timeline if t.event == "notification_sent"]
    assert {(d["notification"], d["kind"]) for d in sent} == {
        ("opened", "mmost"),
        ("escalated", "mmost"),
        ("escalated", "mailto"),
    }
    line = (
        'pipemedic_notifications_total{destination_kind="mmost",event="escalated",outcome="sent"}'
    )
    assert f"{line} 1.0" in metrics
    assert "pipemedic_notification_outbox_depth 0.0" in metrics


async def test_hostile_labels_reach_no_chat_mention_and_no_mail_header(tmp_path: Path) -> None:
    with ChatSink() as chat, MailSink() as mail:
        client = await _escalating_app(tmp_path, chat, mail, labels={"pipeline": HOSTILE})
        try:

            async def delivered() -> bool:
                return len(chat.posts) == 2 and len(mail.messages) == 1

            await wait_for(delivered)
        finally:
            await client.close()
    for post in chat.posts:
        for bad in ("@channel", "<!everyone>", "http://evil"):
            assert bad not in post["text"]
    headers = mail.raw[0].replace(b"\r\n", b"\n").split(b"\n\n")[0]
    assert b"\nBcc:" not in headers and mail.recipients == [["ada@example.com"]]


async def _seed(store: Store, n: int, destination: str) -> list[int]:
    ids = []
    for i in range(n):
        inc = Incident(
            id=0,
            pipeline=f"p{i}",
            state="escalated",
            sev="SEV1",
            opened_at=OutboxMessage("x", "y", "z").created_at,
            team="data-platform",
        )
        inc.outbox.append(OutboxMessage("escalated", destination, "mmost", {"reason": f"r{i}"}))
        ids.append((await store.create_incident(inc)).id)
    return ids


async def test_a_destination_down_then_up_gets_each_message_once(tmp_path: Path) -> None:
    with ChatSink() as chat:
        spec = spec_with(f'      - {{url: "mmost://{chat.address}/hook1"}}')
        store = await open_store(f"sqlite:///{tmp_path / 'r.db'}")
        sender = AppriseSender.prepare(spec)
        metrics = NotifyMetrics()
        worker = DeliveryWorker(
            store,
            {"*": sender},
            spec,
            metrics=metrics,
            backoff_base=0.05,
            backoff_cap=0.2,
            rng=lambda: 0.0,
        )
        try:
            await _seed(store, 3, "teams.data-platform.notify[0]")
            chat.down = True
            assert await worker.run_once() == 3  # all failed: due again after a backoff
            assert chat.posts == [] and (await store.outbox_stats())[0] == 3
            chat.down = False

            async def drained() -> bool:
                await worker.run_once()
                return (await store.outbox_stats())[0] == 0

            await wait_for(drained)
            incidents = await store.list_incidents()
        finally:
            await worker.stop()
            await store.close()
    reasons = sorted(p["text"].split("**Why:** ")[1].split("\n")[0] for p in chat.posts)
    assert reasons == ["r0", "r1", "r2"]  # each exactly once
    for inc in incidents:
        events = [t.event for t in inc.timeline]
        assert events.count("notification_failed") >= 1 and events.count("notification_sent") == 1
    sample = metrics.registry.get_sample_value(
        "pipemedic_notifications_total",
        {"destination_kind": "mmost", "event": "escalated", "outcome": "failed"},
    )
    assert sample is not None and sample >= 3


async def test_a_message_older_than_max_age_is_given_up_with_a_timeline_entry(
    tmp_path: Path,
) -> None:
    with ChatSink() as chat:
        spec = spec_with(f'      - {{url: "mmost://{chat.address}/hook1"}}')
        store = await open_store(f"sqlite:///{tmp_path / 'r.db'}")
        worker = DeliveryWorker(
            store, {"*": AppriseSender.prepare(spec)}, spec, max_age_seconds=0.001
        )
        try:
            (iid,) = await _seed(store, 1, "teams.data-platform.notify[0]")
            chat.down = True
            await asyncio.sleep(0.01)
            assert await worker.run_once() == 1
            inc = await store.get_incident(iid)
        finally:
            await worker.stop()
            await store.close()
    assert inc is not None
    (given_up,) = [t for t in inc.timeline if t.event == "notification_given_up"]
    assert given_up.detail["destination"] == "teams.data-platform.notify[0]"
    assert "older than" in given_up.detail["why"]


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    assert backoff(1, base=2, rng=lambda: 0.5) == 2.0
    assert backoff(3, base=2, rng=lambda: 0.5) == 8.0
    assert backoff(30, base=2, cap=300, rng=lambda: 0.5) == 300.0
    assert backoff(1, base=2, rng=lambda: 0.0) == 1.0 and backoff(1, base=2, rng=lambda: 1.0) == 3.0


@pytest.mark.slow
async def test_two_replicas_on_postgresql_deliver_each_message_once(
    postgres_server: Callable[[], str],
) -> None:
    dsn = postgres_server()
    with ChatSink() as chat:
        spec = spec_with(f'      - {{url: "json://{chat.address}/hook"}}')
        stores = [await open_store(dsn), await open_store(dsn)]
        workers = [
            DeliveryWorker(
                s,
                {"*": AppriseSender.prepare(spec)},
                spec,
                worker_id=f"r{i}",
                concurrency=4,
                poll_interval=0.05,
            )
            for i, s in enumerate(stores)
        ]
        try:
            await _seed(stores[0], 40, "teams.data-platform.notify[0]")
            for w in workers:
                await w.start()

            async def drained() -> bool:
                return (await stores[0].outbox_stats())[0] == 0

            await wait_for(drained, deadline=60)
            incidents = await stores[1].list_incidents(limit=100)
        finally:
            for w in workers:
                await w.stop()
            for s in stores:
                await s.close()
    reasons = sorted(p["message"].split("**Why:** ")[1].split("\n")[0] for p in chat.posts)
    assert reasons == sorted(f"r{i}" for i in range(40))
    by_worker = {
        t.detail.get("attempt")
        for i in incidents
        for t in i.timeline
        if t.event == "notification_sent"
    }
    assert by_worker == {1}  # nobody claimed a message twice


async def test_peoples_events_reach_their_destinations_in_order_and_inert(tmp_path: Path) -> None:
    """status_update, handoff and approval_needed entries (written by people's actions and the
    approval gate through ``Lifecycle.note``) are sent, filtered by ``events``, in order."""
    with ChatSink() as chat:
        spec = spec_with(
            f'      - {{url: "mmost://{chat.address}/all"}}\n'
            f'      - {{url: "mmost://{chat.address}/updates", events: [status_update]}}'
        )
        store = await open_store(f"sqlite:///{tmp_path / 'r.db'}")
        lifecycle = Lifecycle(store, spec, mobilize=Mobilizer(spec).messages_for)
        worker = DeliveryWorker(store, {"*": AppriseSender.prepare(spec)}, spec)
        try:
            inc = await store.create_incident(
                Incident(
                    0,
                    "etl_orders",
                    "escalated",
                    "SEV2",
                    T0,
                    team="data-platform",
                    roles={"commander": "Ada Lovelace"},
                )
            )
            lifecycle.note(
                inc, "approval_needed", {"strategy": "rollback_to_checkpoint", "action": "http"}
            )
            lifecycle.note(inc, "handoff", {"role": "commander", "to": "Ken", "note": HOSTILE})
            lifecycle.note(inc, "status_update", {"text": HOSTILE}, by="@here")  # a person
            lifecycle.note(inc, "diagnosing", {})  # not an event anyone is told about
            await store.save_incident(inc)

            async def drained() -> bool:
                await worker.run_once()
                return (await store.outbox_stats())[0] == 0

            await wait_for(drained)
        finally:
            await worker.stop()
            await store.close()
    by_path: dict[str, list[str]] = {}
    for path, post in zip(chat.paths, chat.posts, strict=True):
        by_path.setdefault(path, []).append(post["text"].split("\n", 1)[0])
    assert by_path["/hooks/all"] == [
        "**\\[SEV2\\] etl_orders: a recovery step waits for approval**",
        "**\\[SEV2\\] etl_orders: role handed off**",
        "**\\[SEV2\\] etl_orders: status update**",
    ]
    assert by_path["/hooks/updates"] == ["**\\[SEV2\\] etl_orders: status update**"]
    for post in chat.posts:
        for bad in ("@channel", "@here", "<!everyone>", "http://evil"):
            assert bad not in post["text"]
    update = next(p["text"] for p in chat.posts if "status update" in p["text"].split("\n")[0])
    assert "**Update:** @\u200bchannel" in update and "**By:** @\u200bhere" in update
