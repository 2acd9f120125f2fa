"""``POST /alerts``: authenticate -> read -> validate -> persist -> ack, one stage each.

Each stage returns what the next one needs or raises an ``IntakeError``
carrying the HTTP status (401, 400, 413, 503). Only the stages that wait
(reading the body, the commit) are coroutines, and ``handle`` calls them
directly: at ~10k requests/s a generic loop of awaited stages and a state
object per request were a measurable share of the event loop's time. 200 is sent
only after the store committed the notification; a store that cannot commit
or a full queue answers 503, the only answer (besides network errors) on
which Alertmanager retries.

Example::

    intake = Intake(store, Authenticator(config.auth), metrics, body_limit=1 << 20)
    app.router.add_post("/alerts", intake.handle)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec
from aiohttp import web

from receiver.errors import IntakeError, PayloadError, PayloadTooLarge, Unavailable
from receiver.intake.auth import Authenticator
from receiver.intake.webhook import parse_body
from receiver.metrics import ReceiverMetrics
from receiver.models import IngestResult, Notification
from receiver.store.base import Store, StoreUnavailable

__all__ = ["Intake"]

log = logging.getLogger(__name__)

_JSON_TYPES = ("application/json",)
_encode = msgspec.json.Encoder().encode  # the 200 body, one encoder built once


class Intake:
    """The webhook handler: runs ``stages`` in order, answers from the last one."""

    def __init__(
        self,
        store: Store,
        auth: Authenticator,
        metrics: ReceiverMetrics,
        *,
        body_limit: int = 1024 * 1024,
        max_alerts: int = 1000,
        queue_max_depth: int = 100_000,
        on_commit: Callable[[], None] | None = None,
        depth_refresh_seconds: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.auth = auth
        self.metrics = metrics
        self.body_limit = body_limit
        self.max_alerts = max_alerts
        self.queue_max_depth = queue_max_depth
        self.on_commit = on_commit
        # The depth a backend reports can cost a query (PostgreSQL counts rows), so it
        # is asked at most every ``depth_refresh_seconds``; in between, what this
        # intake accepted is added to the last answer (never below the truth here).
        self._depth_refresh = depth_refresh_seconds
        self._clock = clock
        self._depth = 0
        self._depth_at = -float("inf")
        # label children looked up once, not per request
        self._count = {r: metrics.notifications.labels(result=r) for r in ("accepted", "duplicate")}
        self._firing = metrics.alerts.labels(status="firing")
        self._resolved = metrics.alerts.labels(status="resolved")

    async def handle(self, request: web.Request) -> web.Response:
        """Run every stage; map a refusal to its status and a JSON body."""
        started = time.perf_counter()
        try:
            self.authenticate(request)
            notification = self.validate(await self.read(request))
            result = await self.persist(notification)
        except IntakeError as exc:
            self.metrics.notifications.labels(result=exc.reason).inc()
            log.info(
                "refused notification: %s",
                exc,
                extra={"status": exc.status, "remote": request.remote},
            )
            self.metrics.intake_seconds.observe(time.perf_counter() - started)
            return web.json_response(exc.body(), status=exc.status)
        response = self.ack(notification, result)
        self.metrics.intake_seconds.observe(time.perf_counter() - started)
        return response

    # stages ----------------------------------------------------------------
    def authenticate(self, request: web.Request) -> None:
        """Refuse before reading the body when credentials are missing or wrong."""
        self.auth.check(request.headers)

    async def read(self, request: web.Request) -> bytes:
        """Check the content type and read the body up to the limit."""
        if request.content_type not in _JSON_TYPES:
            raise PayloadError(
                f"Content-Type must be application/json, got {request.content_type!r}",
                "header:Content-Type",
            )
        length = request.content_length
        if length is not None and length > self.body_limit:
            raise PayloadTooLarge(f"body of {length} bytes is over the limit of {self.body_limit}")
        if length is not None:  # the parser stops at Content-Length: read it at once
            return await request.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.body_limit:
                raise PayloadTooLarge(f"body is over the limit of {self.body_limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def validate(self, body: bytes) -> Notification:
        """Decode strict UTF-8 JSON, check it against the webhook schema and the alert limit.

        One notification may hold at most ``max_alerts`` alerts (413 over it):
        a single huge group would otherwise fill the queue on its own.
        Alertmanager's ``max_alerts`` in the webhook config keeps it under.
        """
        notification = parse_body(body)
        if len(notification.alerts) > self.max_alerts:
            raise PayloadTooLarge(
                f"{len(notification.alerts)} alerts in one notification; the limit is "
                f"{self.max_alerts} (set max_alerts in Alertmanager's webhook_config)"
            )
        return notification

    async def persist(self, notification: Notification) -> IngestResult:
        """Commit the alerts (idempotently); 503 if the queue is full or the store down."""
        now = self._clock()
        if now - self._depth_at >= self._depth_refresh:
            self._depth = await self.store.queue_depth()
            self._depth_at = now
        if self._depth >= self.queue_max_depth:
            raise Unavailable(f"queue full ({self._depth} events waiting); retry later")
        try:
            result = await self.store.ingest(notification)
        except StoreUnavailable as exc:
            raise Unavailable(f"store unavailable: {exc}") from None
        if result.accepted:
            self._depth += result.accepted
            if self.on_commit is not None:
                self.on_commit()
        return result

    def ack(self, notification: Notification, result: IngestResult) -> web.Response:
        """Answer 200 (the commit happened) and count what came in."""
        m = self.metrics
        alerts = notification.alerts
        self._count["accepted" if result.accepted or not alerts else "duplicate"].inc()
        firing = sum(1 for a in alerts if a.status == "firing")
        if firing:
            self._firing.inc(firing)
        if len(alerts) > firing:
            self._resolved.inc(len(alerts) - firing)
        if result.duplicates:
            m.duplicates.inc(result.duplicates)
        if notification.truncated_alerts:
            m.truncated.inc(notification.truncated_alerts)
        m.queue_depth.inc(result.accepted)
        body = {"status": "ok", "accepted": result.accepted, "duplicates": result.duplicates}
        return web.Response(body=_encode(body), content_type="application/json")
