"""SIGTERM: the receiver stops accepting and answers every request already sent.

A real ``pipemedic receiver`` process has 50 keep-alive connections open,
each proven accepted by a health check; SIGTERM comes, then each connection
sends a ``POST /alerts``. Every one must get an HTTP answer (200, or 503 if
the store refused it): ``aiohttp.web.run_app`` closed such connections as
idle the moment the signal came, dropping what was sent on them (measured
under load: ~100 of 200 requests in flight). Connections made after the
signal are refused.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from core_helpers import alert_doc, notification_doc


def _request(method: str, path: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _status(reader: asyncio.StreamReader) -> int:
    """Read one HTTP response; return its status code (``ConnectionError`` if dropped)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed with no answer")
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


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
        # keep-alive connections the receiver has accepted and served once each
        connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
        for reader, writer in connections:
            writer.write(_request("GET", "/-/healthy"))
            await writer.drain()
            assert await _status(reader) == 200
        proc.send_signal(signal.SIGTERM)
        # sent after the signal, on connections accepted before it: run_app closed these
        # at once as idle (every request dropped); now they are read during the linger
        for i, (_reader, writer) in enumerate(connections):
            body = json.dumps(notification_doc(*(alert_doc(f"p{i}_{k}") for k in range(20))))
            writer.write(_request("POST", "/alerts", body.encode()))
            await writer.drain()
        statuses = [await asyncio.wait_for(_status(r), 120) for r, _w in connections]
        assert set(statuses) <= {200, 503}, statuses
        assert statuses.count(200) > 0
        for _reader, writer in connections:
            writer.close()
        assert proc.wait(timeout=180) == 0  # a hang guard: drain is 5 s
        try:
            await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            pass
        else:
            raise AssertionError("a stopped receiver still accepts connections")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
