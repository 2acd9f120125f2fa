"""One recovery step: admitted by the guard, claimed once in the ledger, run, verified.

``StepRunner.admit`` passes the guard stage and claims ``(incident, step)``
in the shared ledger (waiting out short, transient blocks such as the rate
limit); ``StepRunner.execute`` runs the claimed step's action, verifies
through Prometheus that the condition cleared, and stores the outcome.
The attempt loop around them is the recoverer's.

While a step runs, its ledger lease is renewed every third of
``recovery.lease_seconds`` (``ActionLedger.renew_action``), so an action plus
its verification may take longer than one lease: only a worker that stopped
renewing (it died) loses the step to another replica. A renewal that finds
the step no longer its own is logged, and written to the timeline as
``action_lease_lost`` once the action has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import aiohttp

from receiver.actions import Action, ActionContext, ActionOutcome
from receiver.actions.base import truncate
from receiver.models import ActionRecord
from receiver.recovery.config import RecoveryConfig
from receiver.recovery.guard import Blocked, Guard
from receiver.recovery.metrics import RecoveryMetrics
from receiver.recovery.run import RecoveryResult, Run, action_kind, step_number
from receiver.recovery.strategies import StepPlan
from receiver.recovery.verify import Verification, Verifier
from receiver.store.base import ActionLedger

__all__ = ["StepRunner"]

log = logging.getLogger(__name__)

# After losing the claim of a step whose lease looked over (the store's clock may
# lag the worker's, or its worker is alive and renewing), ask again this much later.
_RECLAIM_SECONDS = 1.0


@dataclass
class _Lease:
    """What the renewal loop found out about a running step's claim."""

    lost: bool = False


class StepRunner:
    """Admit, claim, run and verify single recovery steps (see the module docstring)."""

    def __init__(
        self,
        config: RecoveryConfig,
        ledger: ActionLedger,
        guard: Guard,
        verifier: Verifier,
        metrics: RecoveryMetrics,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        worker_id: str = "local",
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.guard = guard
        self.verifier = verifier
        self.metrics = metrics
        self.session = session
        self.clock = clock
        self.sleep = sleep
        self.worker_id = worker_id
        # real time on purpose: leases run on the store's clock, not the injected one
        self.renew_every = config.lease_seconds / 3

    async def blocked(self, run: Run, blocked: Blocked) -> None:
        """Count and record that a guardrail said no."""
        self.metrics.guard_blocks.labels(guard=blocked.guard).inc()
        self.metrics.actions.labels(strategy=run.strategy or "none", outcome="blocked").inc()
        run.note("guardrail_blocked", {"guard": blocked.guard, "reason": blocked.reason})

    async def admit(
        self, run: Run, action: Action, attempt: int, dead: ActionRecord | None = None
    ) -> ActionRecord | RecoveryResult:
        """Pass the guard stage and claim the step in the ledger, waiting out short blocks.

        ``dead``: the running step of a dead worker to take over (same step name).
        """
        assert run.strategy is not None
        waited = 0.0
        while True:
            async with self.guard.admission:
                blocked = await self.guard.check(
                    run.incident, action.target, run.spec.cooldown_seconds, run.started_at
                )
                if blocked is None:
                    record = ActionRecord(
                        incident_id=run.incident.id,
                        step=dead.step if dead else f"{run.strategy}#{attempt}",
                        pipeline=run.incident.pipeline,
                        strategy=run.strategy,
                        action=action_kind(action),
                        target=action.target,
                        started_at=self.clock(),
                        worker=self.worker_id,
                        diagnosis=run.diagnosis_number,
                    )
                    claimed = await self.ledger.begin_action(record, self.config.lease_seconds)
            if blocked is None:
                break
            await self.blocked(run, blocked)
            if not blocked.transient or waited >= self.config.admission_wait_seconds:
                return run.escalate(blocked.reason)
            delay = max(self.config.backoff_base_seconds, 0.01)
            await self.sleep(delay)
            waited += delay
            if not await run.still_firing():
                return run.skip("the alert resolved while waiting for a guardrail")
        if not claimed:
            self.metrics.actions.labels(strategy=run.strategy, outcome="skipped").inc()
            why = f"step {record.step} is already claimed by another worker; not run twice"
            if dead is not None:  # the store's lease has not run out yet by its own clock
                retry = self.clock() + timedelta(seconds=_RECLAIM_SECONDS)
                return run.skip(why, busy_until=retry)
            return run.skip(why)
        return record

    async def execute(
        self, run: Run, action: Action, plan: StepPlan, record: ActionRecord
    ) -> tuple[ActionOutcome, Verification | None]:
        """Run one claimed step, verify it, and store its outcome in the ledger."""
        assert run.strategy is not None
        attempt = step_number(record.step)
        run.note(
            "action_started",
            {
                "step": record.step,
                "action": record.action,
                "target": action.target,
                "summary": action.summary,
                "attempt": attempt,
            },
        )
        ctx = ActionContext(
            incident_id=run.incident.id,
            pipeline=run.incident.pipeline,
            alertname=run.alert.name,
            cause=run.diagnosis.cause,
            strategy=run.strategy,
            attempt=attempt,
            session=self.session,
            labels=run.alert.labels,
            params=plan.params,
        )
        async with self._leased(record) as lease:
            started = time.perf_counter()
            try:
                outcome = await action.run(ctx)
            except Exception as exc:  # an action must not leave its step "running"
                log.exception("action %s raised", action.target)
                why = f"action raised {type(exc).__name__}: {exc}"
                outcome = ActionOutcome("failure", False, why)
            duration = time.perf_counter() - started
            self.metrics.action_duration.labels(
                strategy=run.strategy, action=record.action
            ).observe(duration)
            self.metrics.actions.labels(strategy=run.strategy, outcome=outcome.outcome).inc()
            run.note(
                "action_finished",
                {
                    "step": record.step,
                    "outcome": outcome.outcome,
                    "retryable": outcome.retryable,
                    "detail": truncate(outcome.detail, 1000),
                    "duration_seconds": round(duration, 3),
                },
            )
            verification = None
            if outcome.ok:
                cause, pipeline = run.diagnosis.cause, run.incident.pipeline
                verification = await self.verifier.verify(cause, pipeline, run.spec.diagnosis)
                result = "cleared" if verification.cleared else "not_cleared"
                self.metrics.verifications.labels(result=result).inc()
                run.note(
                    "verification",
                    {
                        "step": record.step,
                        "cleared": verification.cleared,
                        "detail": verification.detail,
                    },
                )
        if lease.lost:  # recorded here, not by the renewal task: one writer per incident
            run.note("action_lease_lost", {"step": record.step, "worker": record.worker})
        final = replace(
            record,
            ended_at=self.clock(),
            outcome=outcome.outcome,
            retryable=outcome.retryable,
            verified=verification.cleared if verification else None,
            detail=truncate(outcome.detail),
        )
        await self.ledger.end_action(final)
        run.actions = (*run.actions, final)
        return outcome, verification

    @contextlib.asynccontextmanager
    async def _leased(self, record: ActionRecord) -> AsyncIterator[_Lease]:
        """Renew ``record``'s ledger lease in the background while the block runs."""
        lease = _Lease()
        task = asyncio.create_task(self._renew(record, lease), name=f"lease-{record.step}")
        try:
            yield lease
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _renew(self, record: ActionRecord, lease: _Lease) -> None:
        while True:
            await asyncio.sleep(self.renew_every)
            try:
                held = await self.ledger.renew_action(record, self.config.lease_seconds)
            except Exception as exc:  # store down: the next renewal tries again, say so
                log.warning("cannot renew the lease of step %s: %s", record.step, exc)
                continue
            if not held:
                log.warning(
                    "lost the claim of step %s of incident %d while running it; "
                    "another worker may have taken it over",
                    record.step,
                    record.incident_id,
                )
                lease.lost = True
                return
