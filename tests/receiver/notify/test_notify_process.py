"""The delivery process (``notify.isolation: process``): lowest CPU priority, started again.

Real parts: the receiver app on SQLite, its delivery child (spawned), apprise
sending to a local chat sink.
"""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from core_helpers import FakeDiagnose, FakeRecover, alert_doc, config, notification_doc, stages
from notify_helpers import spec_with, wait_for

from pipemedic.sinks import ChatSink
from receiver.app import create_app
from receiver.keys import NOTIFY, STORE
from receiver.models import Incident, OutboxMessage
from receiver.notify.process import (
    CAUGHT_UP_SECONDS,
    NICE,
    STARVED_SECONDS,
    DeliveryProcess,
    run_idle,
)


async def test_a_killed_delivery_process_is_started_again_and_delivers_what_comes_next(
    tmp_path: Path,
) -> None:
    with ChatSink() as chat:
        spec = spec_with(f'      - {{url: "mmost://{chat.address}/hook", events: [escalated]}}')
        app = create_app(
            config(tmp_path),
            spec=spec,
            **stages(diagnose=FakeDiagnose("logic_error"), recover=FakeRecover("escalated")),
        )
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            delivery = client.app[NOTIFY]
            assert isinstance(delivery, DeliveryProcess)

            async def escalate(pipeline: str, posts: int) -> None:
                labels = {"team": "data-platform", "sev": "SEV2"}
                doc = notification_doc(alert_doc(pipeline, labels=labels))
                assert (await client.post("/alerts", json=doc)).status == 200

                async def told() -> bool:
                    return len(chat.posts) >= posts

                await wait_for(told)

            await escalate("etl_first", 1)
            first = delivery.pid
            assert first is not None and first != os.getpid()
            # it yields every core to the receiver (SCHED_IDLE), at nice +10 when starved
            assert os.sched_getscheduler(first) == os.SCHED_IDLE
            ours = os.getpriority(os.PRIO_PROCESS, 0)
            assert os.getpriority(os.PRIO_PROCESS, first) == min(ours + NICE, 19)
            os.kill(first, signal.SIGKILL)

            async def restarted() -> bool:
                return delivery.starts == 2 and delivery.pid not in (None, first)

            await wait_for(restarted)
            await escalate("etl_second", 2)
        finally:
            await client.close()
    titles = sorted(p["text"].split("\n", 1)[0] for p in chat.posts)
    assert titles == [
        "**\\[SEV2\\] etl_first: escalated, needs a person**",
        "**\\[SEV2\\] etl_second: escalated, needs a person**",
    ], titles


def test_a_starved_idle_child_takes_its_share_until_caught_up() -> None:
    assert run_idle(True, 0.0) and run_idle(True, STARVED_SECONDS)
    assert not run_idle(True, STARVED_SECONDS + 0.1)  # starved: normal scheduling
    assert not run_idle(False, CAUGHT_UP_SECONDS)  # still behind: keep it
    assert run_idle(False, CAUGHT_UP_SECONDS - 0.1)  # caught up: idle again


async def test_a_child_whose_oldest_message_waits_too_long_leaves_sched_idle_until_caught_up(
    tmp_path: Path,
) -> None:
    with ChatSink() as chat:
        spec = spec_with(f'      - {{url: "mmost://{chat.address}/hook"}}')
        app = create_app(config(tmp_path), spec=spec, **stages())
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            delivery = client.app[NOTIFY]
            assert isinstance(delivery, DeliveryProcess)

            async def up() -> bool:
                return delivery.reports > 0  # its first report comes once it delivers

            await wait_for(up)
            assert delivery.pid is not None
            assert os.sched_getscheduler(delivery.pid) == os.SCHED_IDLE
            chat.down = True
            # a message that has waited a minute already (its destination was down)
            waited = datetime.now(UTC) - timedelta(seconds=60)
            inc = Incident(0, "etl_late", "escalated", "SEV2", waited, team="data-platform")
            inc.outbox.append(
                OutboxMessage("escalated", "teams.data-platform.notify[0]", "mmost", {}, waited)
            )
            await client.app[STORE].create_incident(inc)
            delivery.wake()

            async def scheduled(policy: int) -> bool:
                pid = delivery.pid
                return pid is not None and os.sched_getscheduler(pid) == policy

            await wait_for(lambda: scheduled(os.SCHED_OTHER))  # starved: takes its share
            chat.down = False
            await wait_for(lambda: scheduled(os.SCHED_IDLE))  # delivered: idle again
        finally:
            await client.close()
    assert [p["text"].split("\n", 1)[0] for p in chat.posts] == [
        "**\\[SEV2\\] etl_late: escalated, needs a person**"
    ]
