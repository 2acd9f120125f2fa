"""Local receivers of notifications: an SMTP server (aiosmtpd) and a chat webhook sink.

``pipemedic demo`` starts both so its incidents really email and chat
somewhere; the tests use them to read what apprise delivered. Both listen on
127.0.0.1 on a free port and keep what they received in memory. The chat
sink takes any POST (apprise's Mattermost ``mmost://`` and ``json://``
plugins) and can be switched ``down`` (503) to play a failing destination.

Example::

    with MailSink() as mail, ChatSink() as chat:
        url = f"mailto://{mail.address}?from=pm@example.com&to=ada@example.com"
        hook = f"mmost://{chat.address}/token"   # or json://{chat.address}/path
        ...
        mail.messages[0]["Subject"], chat.posts[0]["text"]
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from pipemedic.stack import LOOPBACK, free_port

__all__ = ["ChatSink", "MailSink"]


class _Collect:
    """aiosmtpd handler: parse and keep every message, with its envelope recipients."""

    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.sink.lock:
            self.sink.messages.append(parsed)
            self.sink.recipients.append(list(envelope.rcpt_tos))
            self.sink.raw.append(data)
        return "250 OK"


class MailSink:
    """A real SMTP server on loopback (aiosmtpd) keeping the messages it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.raw: list[bytes] = []
        self.lock = threading.Lock()
        self._controller = Controller(_Collect(self), hostname=LOOPBACK, port=self.port)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


class _Hook(BaseHTTPRequestHandler):
    server: _ChatServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        sink = self.server.sink
        if sink.down:
            self.send_response(503)
            self.end_headers()
            return
        try:
            doc: Any = json.loads(body or b"null")
        except ValueError:
            doc = {"raw": body.decode("utf-8", "replace")}
        with sink.lock:
            sink.posts.append(doc if isinstance(doc, dict) else {"body": doc})
            sink.paths.append(self.path)
            sink.received_at.append(time.time())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        return


class _ChatServer(ThreadingHTTPServer):
    sink: ChatSink
    request_queue_size = 128  # the default 5 drops SYNs of a burst (1 s retransmits)


class ChatSink:
    """A local chat webhook: keeps every JSON post; ``down = True`` answers 503."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.received_at: list[float] = []  # unix time of each post (benchmarks)
        self.down = False
        self.lock = threading.Lock()
        self._server = _ChatServer((LOOPBACK, 0), _Hook)
        self._server.sink = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
