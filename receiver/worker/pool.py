"""Work on acknowledged alerts: a bounded, fair pool taking leased events from the store.

Each event goes through one list of stages under its pipeline's lock::

    correlate -> diagnose -> recover -> verify

Each stage takes a ``StageContext`` and returns a ``StageResult``
(``receiver.stages``); the lifecycle applies it and saves the incident once
per stage, drafting the post-mortem (the report) in the save that ends
automation. ``correlate`` finds, joins, reopens or opens the incident;
resolved alerts stop there, they never start a recovery.
Diagnosis, recovery and the firing check are injected (``Diagnose``,
``Recover``, ``FiringCheck``: one-method Protocols in ``receiver.stages``) so
this module knows nothing of Prometheus queries or actions. An event is finished in the store
only after its stages ran; a crash leaves it leased, and the lease (or, for
SQLite, the next start) hands it to a worker again. While events are in
flight a heartbeat renews their leases (every third of ``lease_seconds``), so
work that outlives one lease is never claimed and run again elsewhere.

Claimed events queue per pipeline (``FairQueue``): a slot runs events of
distinct pipelines, and an event waiting for its pipeline holds no slot, so a
backlog on one pipeline never holds up the others. Diagnosis and recovery
have separate bounded slots: ``concurrency`` diagnosis slots correlate and
diagnose, and an event that reaches its recovery gives its place up for one of
``action_concurrency`` action slots, so actions that hang never delay another
pipeline's diagnosis (nor its action, while action slots are free). While no claimed event
could start, the pool claims further ahead (up to ``max_claimed`` events
held), to find other pipelines' events behind a backlog. On stop, events
claimed but not started are handed back (their leases end at once) and the
running ones drain.

In a storm a free slot starts a *batch*: every ready event, up to
``batch_size``, each of another pipeline, all in the same moment. Each runs
the same stages as an event alone (a batch of one is the quiet case), and
because they run in step, what they ask together is asked once: the
diagnosis' Prometheus questions (``receiver.diagnosis.batching``) and their
saves (the store's group commit). A slot is free again when its whole batch
has left diagnosis. While a backlog is worked off, the post-mortem draft of an
escalated or resolved incident is put off (``Lifecycle.put_off_drafts``) and
written by this pool as soon as it is idle; readers render a missing draft
on demand meanwhile.

A recovery skipped because a step is still leased to another worker
(``busy_until``) is waited out and tried again: this worker holds the
pipeline's lock, so that step's worker is not working on it (it died, or
lost the store), and the recoverer then takes the step over.

One recovery per fault: an alert joining an incident whose recovery was
verified (``recovered``) is diagnosed, and with the same cause starts nothing.

Downstream pipelines (lineage) of a ``recovered`` incident are verified every
``downstream_poll_seconds`` (``DownstreamCheck``, off the event path, like the
approval waits): each is recorded verified or, past its deadline, still
failing, which escalates the incident.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from receiver.incidents.lifecycle import WORK_STATES, Lifecycle
from receiver.metrics import ReceiverMetrics
from receiver.models import Alert, AlertEvent, Incident, TimelineEntry, parse_time, utcnow
from receiver.store.base import Store
from receiver.worker.fairqueue import FairQueue
from receiver.worker.stages import (
    Diagnose,
    DownstreamCheck,
    FiringCheck,
    Recover,
    RecoveryOutcome,
    RecoveryRequest,
    Stage,
    StageContext,
    StageResult,
    Transition,
)

__all__ = [
    "Diagnose",
    "FiringCheck",
    "Recover",
    "RecoveryOutcome",
    "WorkerPool",
    "default_worker_id",
]

log = logging.getLogger(__name__)

# How often a recovery may wait out another worker's step lease and try again
# (a wait, then at most a few short retries while the store's clock catches up).
_TAKEOVER_ROUNDS = 20
# While waiting for a lease to end, how often to check the alert still fires.
_LEASE_WAIT_POLL_SECONDS = 5.0


def default_worker_id() -> str:
    """Name this process among replicas: ``host:pid``."""
    return f"{os.uname().nodename}:{os.getpid()}"


class WorkerPool:
    """Claim events and run their stages with at most ``concurrency`` at once.

    ``max_claimed`` bounds the events held at once (running, plus claimed and
    queued behind their pipeline's running event). ``recover=None``: automatic
    recovery is not configured, every diagnosed incident is escalated.
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
        batch_size: int = 32,
        action_concurrency: int = 16,
        sweep_seconds: float = 30.0,
        approval_poll_seconds: float = 2.0,
        downstream: DownstreamCheck | None = None,
        downstream_poll_seconds: float = 5.0,
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
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.heartbeat_seconds = heartbeat_seconds or lease_seconds / 3
        self.max_claimed = max(max_claimed, concurrency)
        # a store that holds pipeline locks on connections of a bounded pool gets no more
        # events holding them at once than it can serve (with an incident lock each)
        locks = store.max_pipeline_locks
        if locks is not None:
            batch_size = min(batch_size, locks // max(concurrency, 1))
        self.batch_size = max(batch_size, 1)
        self._wake = asyncio.Event()
        self._queue = FairQueue()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        # events in their correlate/diagnose part, by the batch they started in: at most
        # ``concurrency`` batches; an event in its recover part holds one of
        # ``action_concurrency`` action slots instead
        self._batch_of: dict[int, set[int]] = {}
        self._batches = 0
        self._drafting: asyncio.Task[None] | None = None
        self.action_concurrency = action_concurrency
        self._action_slots = asyncio.Semaphore(max(action_concurrency, 1))
        self.sweep_seconds = sweep_seconds
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._last_sweep = 0.0
        # approval waits: how often to look for decided or timed-out ones, and those running
        self.approval_poll_seconds = approval_poll_seconds
        self._last_approval_check = 0.0
        self._approvals: dict[int, asyncio.Task[None]] = {}
        # downstream verification of recovered incidents (lineage): one round at a time
        self.downstream = downstream
        self.downstream_poll_seconds = downstream_poll_seconds
        self._last_downstream_check = 0.0
        self._downstream_task: asyncio.Task[None] | None = None
        # the stages every event goes through, in order
        self.stages: tuple[Stage, ...] = (
            self.lifecycle.correlate,
            self.diagnose_stage,
            self.recover_stage,
            self.verify_stage,
        )

    # running ---------------------------------------------------------------
    async def start(self) -> None:
        """Start the dispatcher; events waiting from before a crash are taken first."""
        await self.lifecycle.refresh_open_metrics()
        self._last_sweep = time.monotonic()  # just recounted
        self.lifecycle.put_off_drafts = self._busy
        self._loop_task = asyncio.create_task(self._dispatch(), name="pipemedic-worker")
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="pipemedic-heartbeat")

    def wake(self) -> None:
        """Tell the dispatcher new events were committed (no need to wait a poll)."""
        self._wake.set()

    def wake_approvals(self) -> None:
        """Look for decided approval waits at once (a person just approved on this replica)."""
        self._last_approval_check = 0.0
        self._wake.set()

    async def stop(self, drain_seconds: float = 30.0) -> None:
        """Stop claiming, hand back unstarted events, let running ones finish (drain).

        Drafts put off are written within what is left of ``drain_seconds``;
        any left after that are rendered by readers on demand.
        """
        deadline = time.monotonic() + drain_seconds
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
        if self._drafting is not None:
            await asyncio.wait([self._drafting])
        self.lifecycle.put_off_drafts = None
        try:
            while time.monotonic() < deadline and await self.lifecycle.write_due_draft():
                pass
        except Exception:
            log.exception("post-mortem drafts at stop failed; readers render them")
        approvals = list(self._approvals.values())
        if approvals:  # an approved step running now: drain it like an event
            _done, still = await asyncio.wait(approvals, timeout=drain_seconds)
            for task in still:  # the wait stays stored: taken up again after restart
                task.cancel()
            if still:
                await asyncio.wait(still)
        if self._downstream_task is not None:  # checks only: judged again after restart
            self._downstream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._downstream_task
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task

    async def run_until_idle(self, deadline_seconds: float = 30.0) -> None:
        """Wait until the queue is empty, nothing is in flight and no draft is put off."""
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            drafts = self.lifecycle.drafts_due or self._drafting is not None
            if not len(self._queue) and not drafts and await self.store.queue_depth() == 0:
                return
            self.wake()
            await asyncio.sleep(0.02)
        raise TimeoutError(f"queue not drained after {deadline_seconds}s")

    async def _dispatch(self) -> None:
        while not self._stopping:
            self._wake.clear()
            # Claim only while nothing claimed could start: a free slot then finds
            # work, and a busy pool looks past backlogs for other pipelines' events.
            limit = min(self.max_claimed - len(self._queue), self.concurrency * self.batch_size)
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
            self._draft_when_idle()
            await self._sweep()
            await self._check_approvals()
            self._check_downstream()
            if claimed and len(claimed) == limit and not self._queue.has_ready:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    def _start_ready(self) -> None:
        """Fill free slots, each with a batch of ready events of distinct pipelines, in turn."""
        while not self._stopping and self._batches < self.concurrency and self._queue.has_ready:
            batch: set[int] = set()
            while len(batch) < self.batch_size and (event := self._queue.start_next()):
                task = asyncio.create_task(self._process(event), name=f"event-{event.id}")
                self._in_flight[event.id] = task
                batch.add(event.id)
                self._batch_of[event.id] = batch
                task.add_done_callback(functools.partial(self._done, event))
            self._batches += 1

    def _left_diagnosis(self, event_id: int) -> None:
        """The event is past its diagnosis; its slot is free once its whole batch is."""
        batch = self._batch_of.pop(event_id, None)
        if batch is None:
            return
        batch.discard(event_id)
        if not batch:
            self._batches -= 1

    def _done(self, event: AlertEvent, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(event.id, None)
        self._left_diagnosis(event.id)
        self._queue.finish(event)
        self._start_ready()
        self._wake.set()

    def _busy(self) -> bool:
        """Whether a backlog is being worked off (drafts are then put off): events wait
        to start, or more run than there are slots (batches)."""
        return self._queue.has_ready or len(self._in_flight) > self.concurrency

    def _draft_when_idle(self) -> None:
        """Write the post-mortem drafts put off during a burst, while no event is in flight."""
        if self._drafting is not None or not self.lifecycle.drafts_due or self._stopping:
            return
        if self._in_flight or self._queue.has_ready:
            return

        async def draft() -> None:
            try:
                while not (self._in_flight or self._queue.has_ready or self._stopping):
                    if not await self.lifecycle.write_due_draft():
                        break
            except Exception:  # tried again at the next idle moment; readers render it meanwhile
                log.exception("post-mortem draft failed")
            finally:
                self._drafting = None

        self._drafting = asyncio.create_task(draft(), name="pipemedic-drafts")

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
        if now - self._last_sweep < self.sweep_seconds:
            return
        self._last_sweep = now
        try:
            await self.lifecycle.close_expired()
            await self.lifecycle.refresh_open_metrics()
        except Exception:
            log.exception("incident sweep failed")

    # approval waits ----------------------------------------------------------
    async def _check_approvals(self) -> None:
        """Start the work of approval waits that were decided or timed out (any replica's)."""
        now = time.monotonic()
        if now - self._last_approval_check < self.approval_poll_seconds or self._stopping:
            return
        self._last_approval_check = now
        try:
            waiting = await self.store.approvals_waiting()
        except Exception as exc:  # store down: the next round tries again, say so
            log.warning("cannot look for decided approvals: %s", exc)
            return
        for incident_id, pipeline, pending in waiting:
            if incident_id in self._approvals:
                continue
            if pending.get("decision") is None and not _timed_out(pending, self.clock()):
                continue
            task = asyncio.create_task(self._after_approval(incident_id, pipeline))
            self._approvals[incident_id] = task
            task.add_done_callback(functools.partial(self._approval_done, incident_id))

    def _approval_done(self, incident_id: int, _task: asyncio.Task[None]) -> None:
        self._approvals.pop(incident_id, None)

    async def _after_approval(self, incident_id: int, pipeline: str) -> None:
        """Run an approved step, or escalate a wait that timed out; once, across replicas.

        Under the pipeline's lock the incident is read again: another replica
        that got here first has cleared the wait, and the ledger claims the
        step exactly once should a crash leave the wait in place.
        """
        try:
            async with self.store.pipeline_lock(pipeline):
                incident = await self.store.get_incident(incident_id)
                pending = incident.pending_approval if incident is not None else None
                if incident is None or pending is None or incident.state != "recovering":
                    return
                decision = (pending.get("decision") or {}).get("decision")
                if decision == "approved" and incident.diagnosis is not None:
                    await self._run_approved(incident, Alert.from_json(pending["alert"]))
                elif _timed_out(pending, self.clock()):
                    incident.pending_approval = None
                    step, until = pending.get("step"), pending.get("timeout_at")
                    entry = TimelineEntry(
                        self.clock(), "approval_timed_out", {"step": step, "at": until}
                    )
                    why = f"requires manual intervention: nobody approved {step} before {until}"
                    strategy = {"strategy": pending.get("strategy")}
                    moved = self.lifecycle.escalation(incident, why, strategy)
                    result = StageResult(entries=(entry,), transitions=(moved,))
                    await self.lifecycle.apply(incident, result)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("approval of incident %d: work failed; tried again later", incident_id)

    async def _run_approved(self, incident: Incident, alert: Alert) -> None:
        """The recover and verify stages for an approved step (its diagnosis is the incident's)."""
        event = AlertEvent(id=0, alert=alert, received_at=self.clock())
        ctx = StageContext(event, self.lifecycle.spec.pipeline(incident.pipeline), incident)
        ctx.work, ctx.diagnosis = True, incident.diagnosis
        ctx.diagnosis_number = len(incident.diagnoses) or None
        for stage in (self.recover_stage, self.verify_stage):
            result = await stage(ctx)
            await self.lifecycle.apply(incident, result)
            if result.recovery is not None:
                ctx.recovery = result.recovery
            if result.stop:
                break

    # downstream verification (lineage) -----------------------------------------
    def _check_downstream(self) -> None:
        """Start a round of downstream verification when one is due and none runs."""
        now = time.monotonic()
        if (
            self.downstream is None
            or self._stopping
            or now - self._last_downstream_check < self.downstream_poll_seconds
            or (self._downstream_task is not None and not self._downstream_task.done())
        ):
            return
        self._last_downstream_check = now
        self._downstream_task = asyncio.create_task(
            self.verify_downstream(), name="pipemedic-downstream"
        )

    async def verify_downstream(self) -> None:
        """Verify the downstream pipelines of recovered incidents; once, across replicas.

        Under the incident's pipeline lock the incident is read again, so a
        pipeline judged by another replica meanwhile is not judged twice (the
        check looks only at pipelines without a verdict since the recovery).
        """
        assert self.downstream is not None
        try:
            found = await self.store.list_incidents(state="recovered", limit=1000)
            for listed in found:
                if not listed.blast_radius():
                    continue
                async with self.store.pipeline_lock(listed.pipeline):
                    incident = await self.store.get_incident(listed.id)
                    if incident is None or incident.state != "recovered":
                        continue
                    verdict = await self.downstream(incident)
                    moves: tuple[Transition, ...] = ()
                    if verdict.still_failing:
                        names = ", ".join(verdict.still_failing)
                        why = (
                            f"requires manual intervention: {incident.pipeline} recovered but "
                            f"downstream {names} still failing"
                        )
                        moves = (self.lifecycle.escalation(incident, why),)
                    result = StageResult(entries=verdict.entries, transitions=moves)
                    await self.lifecycle.apply(incident, result)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("downstream verification failed; tried again next round")

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
                    entry = TimelineEntry(self.clock(), "event_abandoned", detail)
                    await self.lifecycle.apply(incident, StageResult(entries=(entry,)))
        except Exception:  # the log line above already says it was given up
            log.exception("cannot note abandoned event %d on its incident", event.id)

    async def handle(self, event: AlertEvent) -> None:
        """Run the stages for one event (the caller holds the pipeline lock).

        Each stage's result is applied (and saved, once) by the lifecycle
        before the next stage runs; a stage that has nothing to do returns an
        empty result, one that ends the event's work says ``stop``.
        """
        ctx = StageContext(event, self.lifecycle.spec.pipeline(event.alert.pipeline))
        for stage in self.stages:
            result = await stage(ctx)
            if result.incident is not None:  # correlate: it saved the incident itself
                ctx.incident, ctx.change, ctx.work = result.incident, result.change, result.work
            elif ctx.incident is not None:
                await self.lifecycle.apply(ctx.incident, result)
            if result.diagnosis is not None and ctx.incident is not None:
                ctx.diagnosis = result.diagnosis
                ctx.diagnosis_number = len(ctx.incident.diagnoses)
            if result.recovery is not None:
                ctx.recovery = result.recovery
            if result.stop or ctx.incident is None:
                break

    # stages ------------------------------------------------------------------
    async def diagnose_stage(self, ctx: StageContext) -> StageResult:
        """Diagnose a firing alert that brings work; a recovered incident keeps its state."""
        incident = ctx.incident
        if incident is None or not ctx.work or incident.state not in WORK_STATES:
            return StageResult(stop=True)
        started = self.clock()
        diagnosis = await self.diagnose(ctx.alert, ctx.spec)
        if incident.state == "recovered":
            return StageResult(diagnosis=diagnosis)
        moved = Transition("diagnosing", {"alert": ctx.alert.name}, at=started)
        return StageResult(transitions=(moved,), diagnosis=diagnosis)

    async def recover_stage(self, ctx: StageContext) -> StageResult:
        """Run the guarded recovery for this round's diagnosis: one recovery per fault.

        After a verified recovery (state ``recovered``) a diagnosis of the same
        cause starts nothing; another cause goes to the recoverer, which acts
        only while its symptom persists and through the same guard.
        """
        incident, diagnosis = ctx.incident, ctx.diagnosis
        assert incident is not None and diagnosis is not None
        after = incident.state == "recovered"
        number = ctx.diagnosis_number
        if after and incident.diagnosis is not None and incident.diagnosis.cause == diagnosis.cause:
            why = f"{diagnosis.cause} was recovered and verified already; one recovery per fault"
            entry = TimelineEntry(
                self.clock(),
                "recovery_not_repeated",
                {
                    "alert": ctx.alert.name,
                    "cause": diagnosis.cause,
                    "diagnosis": number,
                    "reason": why,
                },
            )
            return StageResult(entries=(entry,), stop=True)
        if self.recover is None:
            why = "requires manual intervention: automatic recovery is not configured"
            return StageResult(transitions=(self.lifecycle.escalation(incident, why),), stop=True)
        started = self.clock()
        firing = _StillFiring(self.firing, ctx.alert, self.store, incident.id)
        request = RecoveryRequest(
            incident, ctx.alert, diagnosis, ctx.spec, firing, number, after_recovery=after
        )
        async with self._acting(ctx.event):
            result = await self.recover(request)
            entries = list(result.entries)
            for _ in range(_TAKEOVER_ROUNDS):
                if result.busy_until is None:
                    break
                waited = await self._wait_for_lease(result.busy_until, result.reason, firing)
                entries.append(waited[0])
                if not waited[1]:
                    break
                result = await self.recover(request)
                entries += result.entries
        moves: list[Transition] = []
        if result.outcome == "approval_needed" and result.approval is not None:
            # the step waits for a person: the request is written with this result
            self.lifecycle.request_approval(
                incident, {**result.approval, "alert": ctx.alert.to_json()}
            )
            cause = {"cause": diagnosis.cause, "strategy": result.strategy, "diagnosis": number}
            moves.append(Transition("recovering", cause, at=started))
            return StageResult(entries=tuple(entries), transitions=tuple(moves), stop=True)
        if (incident.pending_approval or {}).get("decision"):
            incident.pending_approval = None  # the approved step ran (or was overtaken)
        detail = {"outcome": result.outcome, "strategy": result.strategy, "reason": result.reason}
        entries.append(TimelineEntry(self.clock(), "recovery_finished", detail))
        if not (after and result.outcome == "skipped"):  # a skipped round leaves it recovered
            cause = {"cause": diagnosis.cause, "strategy": result.strategy, "diagnosis": number}
            moves.append(Transition("recovering", cause, at=started))
        if result.outcome == "escalated":
            strategy = {"strategy": result.strategy}
            moves.append(self.lifecycle.escalation(incident, result.reason, strategy))
        return StageResult(
            entries=tuple(entries),
            transitions=tuple(moves),
            recovery=result,
            stop=result.outcome != "recovered",
        )

    async def verify_stage(self, ctx: StageContext) -> StageResult:
        """A recovery whose verification saw the condition clear: the incident is ``recovered``.

        Whether it cleared is the recoverer's verification (symptom queries),
        asked once; this stage records the verdict, names the deciding
        diagnosis and measures time to recover.
        """
        recovery = ctx.recovery
        if recovery is None or recovery.outcome != "recovered":
            return StageResult()
        detail = {"strategy": recovery.strategy, "attempts": recovery.attempts}
        return StageResult(
            transitions=(Transition("recovered", detail),),
            deciding=ctx.diagnosis_number,
            recovered_at=self.clock(),
        )

    @contextlib.asynccontextmanager
    async def _acting(self, event: AlertEvent) -> AsyncIterator[None]:
        """Move the event from its diagnosis slot to an action slot while it recovers.

        The freed slot starts another pipeline's event at once, so an action
        that hangs holds only an action slot: other pipelines' diagnoses go on,
        and their actions too while action slots are free. The pipeline's lock
        and its place in the fair queue stay with this event.
        """
        if event.id in self._batch_of:
            self._left_diagnosis(event.id)
            self._start_ready()
        async with self._action_slots:
            yield

    async def _wait_for_lease(
        self, until: datetime, why: str, still_firing: Callable[[], Awaitable[bool]]
    ) -> tuple[TimelineEntry, bool]:
        """Wait until another worker's step lease ends; False if the alert stopped firing.

        The caller holds the pipeline's lock, so that worker is not working on the
        step here; the heartbeat keeps this event leased meanwhile.
        """
        detail = {"until": until.isoformat(), "why": why, "worker": self.worker_id}
        entry = TimelineEntry(self.clock(), "waiting_for_lease", detail)
        while (left := (until - self.clock()).total_seconds()) > 0:
            # (on SIGTERM the drain deadline cancels this: the event stays unfinished)
            await asyncio.sleep(min(left, _LEASE_WAIT_POLL_SECONDS))
            if not await still_firing():
                return entry, False
        return entry, True


class _StillFiring:
    """Whether the alert still fires (unknown counts as firing: keep trying).

    A person who resolved (or closed) the incident meanwhile stops further steps.
    """

    def __init__(self, firing: FiringCheck, alert: Alert, store: Store, incident_id: int) -> None:
        self.firing = firing
        self.alert = alert
        self.store = store
        self.incident_id = incident_id

    async def __call__(self) -> bool:
        stored = await self.store.get_incident(self.incident_id)
        if stored is not None and stored.state in ("resolved", "closed"):
            return False
        return await self.firing(self.alert) is not False


def _timed_out(pending: Mapping[str, Any], now: datetime) -> bool:
    """Whether an approval wait without a decision is past its ``timeout_at``."""
    if pending.get("decision") is not None:
        return False
    until = parse_time(str(pending.get("timeout_at") or ""))
    return until is not None and until <= now
