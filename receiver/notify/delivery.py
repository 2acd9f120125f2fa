"""Deliver the outbox: claim due messages, render, send, record — on its own task.

Nothing here runs inside diagnosis or recovery: the lifecycle only adds
rows to ``incident.outbox`` and the store writes them with the timeline
entry causing them. This worker claims rows under a lease (one replica
delivers each), renders the message from the incident as stored now, sends
it (``Sender``: apprise, or Alertmanager for pages) and records the attempt
and its timeline entry in one transaction:

* ``notification_sent``: delivered;
* ``notification_failed``: the destination failed; due again after
  exponential backoff with jitter (``backoff``);
* ``notification_given_up``: not retryable, or older than ``max_age_seconds``.

Delivery is at least once: a crash after the send and before the record
leaves the lease to run out, and the message is sent again.

Example::

    worker = DeliveryWorker(store, senders, spec, metrics=NotifyMetrics(registry))
    await worker.start(); lifecycle_saved_something(); worker.wake(); await worker.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from receiver.config import ReceiverConfig
from receiver.models import OutboxMessage, TimelineEntry, utcnow
from receiver.notify.messages import render
from receiver.notify.metrics import NotifyMetrics
from receiver.notify.mobilize import PAGE_DESTINATION
from receiver.notify.paging import AlertmanagerPager
from receiver.notify.send import AppriseSender, Delivery, Sender
from receiver.store.base import Store
from rules.spec import Spec

__all__ = ["DeliveryRunner", "DeliveryWorker", "backoff", "build_senders", "pager_for"]

log = logging.getLogger(__name__)


class DeliveryRunner(Protocol):
    """What the receiver holds: this worker, or ``receiver.notify.process.DeliveryProcess``."""

    async def start(self) -> None: ...

    def wake(self) -> None: ...

    async def stop(self) -> None: ...


def pager_for(config: ReceiverConfig) -> AlertmanagerPager | None:
    """Return the Alertmanager pager ``notify.paging`` configures (None: paging off)."""
    if config.notify.alertmanager_url is None:
        return None
    return AlertmanagerPager(
        config.notify.alertmanager_url,
        external_url=config.external_url,
        resend_seconds=config.notify.page_resend_seconds,
    )


def build_senders(spec: Spec, config: ReceiverConfig) -> dict[str, Sender]:
    """Return the senders by destination key: apprise (``"*"``) and, with paging, the pager.

    ``NotifyConfigError`` names a destination whose ``${VAR}`` is unset or
    whose URL apprise refuses.
    """
    senders: dict[str, Sender] = {
        "*": AppriseSender.prepare(spec, threads=max(config.notify.concurrency, 1))
    }
    pager = pager_for(config)
    if pager is not None:
        senders[PAGE_DESTINATION] = pager
    return senders


def backoff(
    attempts: int,
    *,
    base: float = 2.0,
    cap: float = 300.0,
    rng: Callable[[], float] = random.random,
) -> float:
    """Return seconds to wait after ``attempts`` failures: doubling, capped, 50-150% jitter."""
    return float(min(cap, base * 2.0 ** max(attempts - 1, 0)) * (0.5 + rng()))


class DeliveryWorker:
    """Deliver outbox messages with at most ``concurrency`` sends at once.

    ``senders`` maps a destination key to its sender; ``"*"`` is the default
    (apprise), ``"alertmanager"`` the pager.
    """

    def __init__(
        self,
        store: Store,
        senders: Mapping[str, Sender],
        spec: Spec,
        *,
        metrics: NotifyMetrics | None = None,
        external_url: str | None = None,
        worker_id: str | None = None,
        concurrency: int = 4,
        lease_seconds: float = 60.0,
        poll_interval: float = 1.0,
        max_age_seconds: float = 86400.0,
        backoff_base: float = 2.0,
        backoff_cap: float = 300.0,
        clock: Callable[[], datetime] = utcnow,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.senders = dict(senders)
        self.spec = spec
        self.metrics = metrics
        self.external_url = external_url
        self.worker_id = worker_id or f"{os.uname().nodename}:{os.getpid()}:notify"
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.max_age = timedelta(seconds=max_age_seconds)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.clock = clock
        self.rng = rng
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="pipemedic-notify")

    def wake(self) -> None:
        """Say rows were (or are about to be) committed: poll now and shortly after."""
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sender in {id(s): s for s in self.senders.values()}.values():
            await sender.close()

    async def _loop(self) -> None:
        # Claim into free slots as soon as there are some (no batch waits for its
        # slowest send). After a wake, poll again at 5 ms doubling up to
        # poll_interval: a wake may come just before the commit it announces.
        delay = self.poll_interval
        inflight: set[asyncio.Task[None]] = set()
        last_gauges = 0.0

        def done(task: asyncio.Task[None]) -> None:
            inflight.discard(task)
            self._wake.set()

        while not self._stopping:
            free = self.concurrency - len(inflight)
            claimed: list[OutboxMessage] = []
            if free > 0:
                try:
                    claimed = await self.store.claim_outbox(
                        self.worker_id, free, self.lease_seconds
                    )
                except Exception as exc:  # store down: keep trying, say so
                    log.warning("cannot claim notifications: %s", exc)
            for message in claimed:
                task = asyncio.create_task(self._deliver(message), name=f"notify-{message.id}")
                inflight.add(task)
                task.add_done_callback(done)
            now = time.monotonic()
            if now - last_gauges >= 1.0:
                last_gauges = now
                with contextlib.suppress(Exception):
                    await self.refresh_gauges()
            if claimed and len(claimed) == free:
                delay = 0.005  # full: the next free slot (a done task) wakes us
            woke = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(delay, 0.005))
                woke = True
            self._wake.clear()
            delay = 0.005 if woke or claimed else min(max(delay, 0.005) * 2, self.poll_interval)
        if inflight:
            await asyncio.wait(inflight)

    async def run_once(self) -> int:
        """Claim one batch and deliver it; return how many messages were handled (tests)."""
        batch = await self.store.claim_outbox(
            self.worker_id, self.concurrency * 2, self.lease_seconds
        )
        if batch:
            limit = asyncio.Semaphore(self.concurrency)

            async def one(message: OutboxMessage) -> None:
                async with limit:
                    await self._deliver(message)

            await asyncio.gather(*(one(m) for m in batch))
        await self.refresh_gauges()
        return len(batch)

    async def refresh_gauges(self) -> None:
        if self.metrics is None:
            return
        depth, oldest = await self.store.outbox_stats()
        self.metrics.outbox_depth.set(depth)
        age = (self.clock() - oldest).total_seconds() if oldest is not None else 0.0
        self.metrics.outbox_oldest_age.set(max(age, 0.0))

    async def _deliver(self, message: OutboxMessage) -> None:
        result = await self._send(message)
        now = self.clock()
        detail: dict[str, object] = {
            "notification": message.event,
            "destination": message.destination,
            "kind": message.kind,
            "attempt": message.attempts,
        }
        retry_at: datetime | None = None
        if result.outcome == "sent":
            outcome = "sent"
        elif result.retryable and now - message.created_at < self.max_age:
            outcome = "failed"
            wait = backoff(
                message.attempts, base=self.backoff_base, cap=self.backoff_cap, rng=self.rng
            )
            retry_at = now + timedelta(seconds=wait)
            detail |= {"error": result.error, "retry_in_seconds": round(wait, 3)}
        else:
            outcome = "given_up"
            why = "not retryable" if not result.retryable else f"older than {self.max_age}"
            detail |= {"error": result.error, "why": why}
        entry = TimelineEntry(at=now, event=f"notification_{outcome}", detail=detail)
        recorded = await self.store.finish_outbox(
            message, self.worker_id, outcome, entry, retry_at=retry_at
        )
        if not recorded:
            log.warning(
                "notification %d: lease lost before recording %s (it may be sent again)",
                message.id,
                outcome,
            )
            return
        if self.metrics is not None:
            self.metrics.notifications.labels(
                destination_kind=message.kind, event=message.event, outcome=outcome
            ).inc()
            if outcome == "sent":
                took = (now - message.created_at).total_seconds()
                self.metrics.delivery_seconds.observe(max(took, 0.0))
        level = logging.INFO if outcome == "sent" else logging.WARNING
        log.log(
            level,
            "notification %s of incident %d to %s: %s",
            message.event,
            message.incident_id,
            message.destination,
            outcome,
            extra={"incident": message.incident_id, "destination": message.destination},
        )

    async def _send(self, message: OutboxMessage) -> Delivery:
        incident = await self.store.get_incident(message.incident_id)
        if incident is None:
            return Delivery("failed", retryable=False, error="incident not found")
        sender = self.senders.get(message.destination) or self.senders.get("*")
        if sender is None:
            return Delivery("failed", retryable=False, error="destination not configured")
        rendered = render(
            message.event,
            incident,
            self.spec.team(incident.team),
            message.detail,
            external_url=self.external_url,
        )
        try:
            return await sender.send(message.destination, rendered, incident)
        except Exception as exc:  # a sender must not raise; if it does, retry later
            log.exception("sender for %s raised", message.destination)
            return Delivery("failed", error=type(exc).__name__)
