"""Work on acknowledged alerts: a bounded, fair pool taking leased events from the store.

Each event goes through ordered stages under its pipeline's lock::

    correlate -> diagnose -> recover -> verify -> record

``correlate`` finds, joins, reopens or opens the incident (``Lifecycle``);
resolved alerts stop there and only verify, they never start a recovery.
Diagnosis, recovery and the firing check are injected (``Diagnose``,
``Recover``, ``FiringCheck``: one-method Protocols in ``receiver.worker.stages``) so
this module knows nothing of Prometheus queries or actions. An event is finished in the store
only after its stages ran; a crash leaves it leased, and the lease (or, for
SQLite, the next start) hands it to a worker again. While events are in
flight a heartbeat renews their leases (every third of ``lease_seconds``), so
work that outlives one lease is never claimed and run again elsewhere.

Claimed events queue per pipeline (``FairQueue``): a slot runs one event of
one pipeline, and an event waiting for its pipeline holds no slot, so a
backlog on one pipeline never holds up the others. While no claimed event
could start, the pool claims further ahead (up to ``max_claimed`` events
held), to find other pipelines' events behind a backlog. On stop, events
claimed but not started are handed back (their leases end at once) and the
running ones drain.

A recovery skipped because a step is still leased to another worker
(``busy_until``) is waited out and tried again: this worker holds the
pipeline's lock, so that step's worker is not working on it (it died, or
lost the store), and the recoverer then takes the step over.

Example::

    pool = WorkerPool(store, lifecycle, diagnose=my_diagnose, recover=recoverer.recover,
                      firing=PrometheusFiringCheck(prom), concurrency=4)
    await pool.start(); pool.wake(); ...; await pool.stop(drain_seconds=30)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from receiver.incidents.lifecycle import ACTIVE_STATES, Lifecycle
from receiver.metrics import ReceiverMetrics
from receiver.models import Alert, AlertEvent, Diagnosis, Incident, utcnow
from receiver.store.base import Store
from receiver.worker.fairqueue import FairQueue
from receiver.worker.stages import Diagnose, FiringCheck, Recover, RecoveryOutcome

__all__ = [
    "Diagnose",
    "FiringCheck",
    "Recover",
    "RecoveryOutcome",
    "WorkerPool",
]

log = logging.getLogger(__name__)

# How often a recovery may wait out another worker's step lease and try again
# (a wait, then at most a few short retries while the store's clock catches up).
_TAKEOVER_ROUNDS = 20
# While waiting for a lease to end, how often to check the alert still fires.
_LEASE_WAIT_POLL_SECONDS = 5.0


class WorkerPool:
    """Claim events and run their stages with at most ``concurrency`` at once.

    ``max_claimed`` bounds the events held at once (running, plus claimed and
    queued behind their pipeline's running event).
    """

    def __init__(
        self,
        store: Store,
        lifecycle: Lifecycle,
        *,
        diagnose: Diagnose,
        recover: Recover | None,
        firing: FiringCheck,
        concurrency: int = 4,
        lease_seconds: float = 300.0,
        poll_interval: float = 0.5,
        max_attempts: int = 5,
        metrics: ReceiverMetrics | None = None,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        heartbeat_seconds: float | None = None,
        max_claimed: int = 256,
    ) -> None:
        self.store = store
        self.lifecycle = lifecycle
        self.diagnose = diagnose
        self.recover = recover
        self.firing = firing
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.metrics = metrics
        self.worker_id = worker_id or f"{os.uname().nodename}:{os.getpid()}"
        self.clock = clock
        self.heartbeat_seconds = heartbeat_seconds or lease_seconds / 3
        self.max_claimed = max(max_claimed, concurrency)
        self._wake = asyncio.Event()
        self._queue = FairQueue()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._last_sweep = 0.0

    # running ---------------------------------------------------------------
    async def start(self) -> None:
        """Start the dispatcher; events waiting from before a crash are taken first."""
        await self.lifecycle.refresh_open_metrics()
        self._loop_task = asyncio.create_task(self._dispatch(), name="pipemedic-worker")
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="pipemedic-heartbeat")

    def wake(self) -> None:
        """Tell the dispatcher new events were committed (no need to wait a poll)."""
        self._wake.set()

    async def stop(self, drain_seconds: float = 30.0) -> None:
        """Stop claiming, hand back unstarted events, let running ones finish (drain)."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        await self._hand_back(self._queue.drop_waiting())
        pending = list(self._in_flight.values())
        if pending:
            log.info("draining %d in-flight events", len(pending))
            _done, still = await asyncio.wait(pending, timeout=drain_seconds)
            for task in still:  # left leased: taken again after restart
                task.cancel()
            if still:
                await asyncio.wait(still)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task

    async def run_until_idle(self, deadline_seconds: float = 30.0) -> None:
        """Wait until the queue is empty and nothing is in flight (tests, tools)."""
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            if not len(self._queue) and await self.store.queue_depth() == 0:
                return
            self.wake()
            await asyncio.sleep(0.02)
        raise TimeoutError(f"queue not drained after {deadline_seconds}s")

    async def _dispatch(self) -> None:
        while not self._stopping:
            self._wake.clear()
            # Claim only while nothing claimed could start: a free slot then finds
            # work, and a busy pool looks past backlogs for other pipelines' events.
            limit = min(self.max_claimed - len(self._queue), self.concurrency)
            claimed: list[AlertEvent] = []
            if limit > 0 and not self._queue.has_ready:
                try:
                    claimed = await self.store.claim_events(
                        self.worker_id, limit, self.lease_seconds
                    )
                except Exception as exc:  # store down: keep trying, say so
                    log.warning("cannot claim events: %s", exc)
            for event in claimed:
                self._queue.add(event)  # (held already: our own lease ran out mid-work)
            self._start_ready()
            await self._sweep()
            if claimed and len(claimed) == limit and not self._queue.has_ready:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    def _start_ready(self) -> None:
        """Fill free slots with ready events, one pipeline per slot, pipelines in turn."""
        while not self._stopping and len(self._in_flight) < self.concurrency:
            event = self._queue.start_next()
            if event is None:
                return
            task = asyncio.create_task(self._process(event), name=f"event-{event.id}")
            self._in_flight[event.id] = task
            task.add_done_callback(functools.partial(self._done, event))

    def _done(self, event: AlertEvent, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(event.id, None)
        self._queue.finish(event)
        self._start_ready()
        self._wake.set()

    async def _hand_back(self, events: Sequence[AlertEvent]) -> None:
        """End the leases of claimed events this pool will not run, so others take them now."""
        if not events:
            return
        ids = [e.id for e in events]
        try:
            await self.store.renew_leases(self.worker_id, ids, 0.0)
        except Exception as exc:  # they are taken again when their leases run out
            log.warning("cannot hand back %d claimed events: %s", len(ids), exc)

    async def _heartbeat(self) -> None:
        """Renew the leases of held events so no other worker claims them meanwhile."""
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            ids = self._queue.held_ids()
            if not ids:
                continue
            try:
                held = await self.store.renew_leases(self.worker_id, ids, self.lease_seconds)
            except Exception as exc:  # store down: the next beat tries again, say so
                log.warning("cannot renew event leases: %s", exc)
                continue
            lost = set(ids) - held
            for event in self._queue.drop_waiting(lost):  # not started: leave it to its owner
                log.warning("lost the lease of queued event %d; not running it", event.id)
            for event_id in sorted(lost):
                if event_id in self._in_flight:  # not finished meanwhile: really lost
                    log.warning(
                        "lost the lease of event %d while working on it; "
                        "another worker may process it too",
                        event_id,
                    )

    async def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < 30.0:
            return
        self._last_sweep = now
        try:
            await self.lifecycle.close_expired()
            await self.lifecycle.refresh_open_metrics()
        except Exception:
            log.exception("incident sweep failed")

    # one event -------------------------------------------------------------
    async def _process(self, event: AlertEvent) -> None:
        started = time.perf_counter()
        if self.metrics is not None:
            waited = (self.clock() - event.received_at).total_seconds()
            self.metrics.event_queue_seconds.observe(max(waited, 0.0))
        result = "ok"
        try:
            if event.attempts > self.max_attempts:
                log.error(
                    "giving up on event %d after %d attempts",
                    event.id,
                    event.attempts - 1,
                    extra={"fingerprint": event.alert.fingerprint},
                )
                result = "abandoned"
                await self._abandon(event)
            else:
                async with self.store.pipeline_lock(event.alert.pipeline):
                    await self.handle(event)
            await self.store.finish_event(event.id, self.worker_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            result = "error"
            log.exception("event %d failed; it will be retried after its lease", event.id)
        if self.metrics is not None:
            self.metrics.events_processed.labels(result=result).inc()
            self.metrics.event_processing_seconds.observe(time.perf_counter() - started)
            self.metrics.queue_depth.set(await self.store.queue_depth())

    async def _abandon(self, event: AlertEvent) -> None:
        """Say on the pipeline's incident, if there is one, that an event was given up."""
        detail = {
            "event_id": event.id,
            "alert": event.alert.name,
            "fingerprint": event.alert.fingerprint,
            "status": event.alert.status,
            "attempts": event.attempts - 1,
        }
        try:
            async with self.store.pipeline_lock(event.alert.pipeline):
                incident = await self.store.open_incident(event.alert.pipeline)
                if incident is not None:
                    self.lifecycle.note(incident, "event_abandoned", detail)
                    await self.store.save_incident(incident)
        except Exception:  # the log line above already says it was given up
            log.exception("cannot note abandoned event %d on its incident", event.id)

    async def handle(self, event: AlertEvent) -> None:
        """Run the stages for one event (the caller holds the pipeline lock)."""
        step = await self.lifecycle.correlate(event)
        incident = step.incident
        if incident is None:
            return
        if event.alert.status == "resolved":
            await self._verify(incident, event.alert)
        elif step.needs_work and incident.state in ACTIVE_STATES:
            diagnosis = await self._diagnose(incident, event.alert)
            outcome = await self._recover(incident, event.alert, diagnosis)
            if outcome == "recovered":
                await self._verify(incident, event.alert)
        await self.lifecycle.refresh_open_metrics()

    async def _diagnose(self, incident: Incident, alert: Alert) -> Diagnosis:
        self.lifecycle.transition(incident, "diagnosing", {"alert": alert.name})
        await self.store.save_incident(incident)
        diagnosis = await self.diagnose(alert, self.lifecycle.spec.pipeline(incident.pipeline))
        self.lifecycle.diagnosed(incident, diagnosis)
        await self.store.save_incident(incident)
        return diagnosis

    async def _recover(self, incident: Incident, alert: Alert, diagnosis: Diagnosis) -> str:
        if self.recover is None:
            await self.lifecycle.escalate(
                incident, "requires manual intervention: automatic recovery is not configured"
            )
            return "escalated"
        spec = self.lifecycle.spec.pipeline(incident.pipeline)
        strategy = spec.strategy_for(diagnosis.cause)
        self.lifecycle.transition(
            incident, "recovering", {"cause": diagnosis.cause, "strategy": strategy}
        )
        await self.store.save_incident(incident)

        escalation: dict[str, Any] = {}

        async def record(event: str, detail: Any) -> None:
            if event == "escalated" and isinstance(detail, Mapping):
                escalation.update(detail)  # one entry, written with the state change below
                return
            self.lifecycle.note(incident, event, detail)
            await self.store.save_incident(incident)

        async def still_firing() -> bool:
            return await self.firing(alert) is not False

        result = await self.recover(incident, alert, diagnosis, spec, record, still_firing)
        for _ in range(_TAKEOVER_ROUNDS):
            busy = getattr(result, "busy_until", None)
            if not isinstance(busy, datetime):
                break
            if not await self._wait_for_lease(incident, busy, result.reason, still_firing):
                break
            result = await self.recover(incident, alert, diagnosis, spec, record, still_firing)
        detail = {"outcome": result.outcome, "strategy": result.strategy, "reason": result.reason}
        self.lifecycle.note(incident, "recovery_finished", detail)
        await self.store.save_incident(incident)
        if result.outcome == "escalated":
            await self.lifecycle.escalate(incident, result.reason, escalation)
        elif escalation:  # a recovery that noted an escalation but ended otherwise
            self.lifecycle.note(incident, "escalated", escalation)
            await self.store.save_incident(incident)
        return result.outcome

    async def _wait_for_lease(
        self,
        incident: Incident,
        until: datetime,
        why: str,
        still_firing: Callable[[], Awaitable[bool]],
    ) -> bool:
        """Wait until another worker's step lease ends; False if the alert stopped firing.

        The caller holds the pipeline's lock, so that worker is not working on the
        step here; the heartbeat keeps this event leased meanwhile.
        """
        detail = {"until": until.isoformat(), "why": why, "worker": self.worker_id}
        self.lifecycle.note(incident, "waiting_for_lease", detail)
        await self.store.save_incident(incident)
        while (left := (until - self.clock()).total_seconds()) > 0:
            # (on SIGTERM the drain deadline cancels this: the event stays unfinished)
            await asyncio.sleep(min(left, _LEASE_WAIT_POLL_SECONDS))
            if not await still_firing():
                return False
        return True

    async def _verify(self, incident: Incident, alert: Alert) -> None:
        firing = await self.firing(alert)
        verdict = {True: "still firing", False: "cleared", None: "unknown"}[firing]
        self.lifecycle.note(incident, "verified", {"alert": alert.name, "condition": verdict})
        await self.store.save_incident(incident)
