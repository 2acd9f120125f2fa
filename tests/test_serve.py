"""SIGTERM: the receiver stops accepting and answers every request already sent.

A real ``pipemedic receiver`` process takes 600 notifications on fresh
connections; SIGTERM comes as soon as the first is answered. Every request
the receiver took must get an HTTP answer (200, or 503 if the store refused
it): none may be dropped after it was sent (``aiohttp.web.run_app`` dropped
~100 of them). Connections made after the signal are refused.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
from core_helpers import alert_doc, notification_doc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_sigterm_answers_every_request_already_sent(tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "receiver.yml"
    config.write_text(
        f"store: sqlite:///{tmp_path / 'receiver.db'}\nprometheus_url: http://127.0.0.1:9\n"
    )
    log = (tmp_path / "receiver.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipemedic",
            "receiver",
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{port}",
            "--drain-seconds",
            "5",
        ],
        # a file, not an unread pipe: once a pipe's 64 KiB fill up, the receiver's
        # log lines block its event loop and it can never finish shutting down
        stderr=log,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        for _ in range(300):
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the receiver did not start")
        writer.close()
        outcomes: collections.Counter[str] = collections.Counter()
        answered = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=200, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post(i: int) -> None:
                body = notification_doc(*(alert_doc(f"p{i}_{k}") for k in range(20)))
                try:
                    async with session.post(f"http://127.0.0.1:{port}/alerts", json=body) as r:
                        await r.read()
                        outcomes[str(r.status)] += 1
                        answered.set()
                except aiohttp.ServerDisconnectedError:  # sent, then dropped unanswered
                    outcomes["dropped"] += 1
                except aiohttp.ClientConnectorError:  # refused: never sent
                    outcomes["refused"] += 1
                except aiohttp.ClientOSError:  # reset in the listen backlog: never read
                    outcomes["reset"] += 1

            load = [asyncio.create_task(post(i)) for i in range(600)]
            await answered.wait()
            proc.send_signal(signal.SIGTERM)
            await asyncio.gather(*load)
        assert outcomes["dropped"] == 0, outcomes
        assert set(outcomes) <= {"200", "503", "refused", "reset"}, outcomes
        assert outcomes["refused"] > 0, f"SIGTERM came after the load: {outcomes}"
        # a hang guard: drain is 5 s
        assert proc.wait(timeout=180) == 0, (tmp_path / "receiver.log").read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
