"""The delivery process (``notify.isolation: process``): a child that dies is started again.

Real parts: the receiver app on SQLite, its delivery child (spawned), apprise
sending to a local chat sink.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from core_helpers import FakeDiagnose, FakeRecover, alert_doc, config, notification_doc, stages
from notify_helpers import spec_with, wait_for

from pipemedic.sinks import ChatSink
from receiver.app import create_app
from receiver.keys import NOTIFY
from receiver.notify.process import DeliveryProcess


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
