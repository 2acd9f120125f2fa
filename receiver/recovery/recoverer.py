"""Carry a diagnosis through the guarded recovery steps and report every decision.

The stages, in order: count the diagnosis; pick the strategy from the cause
(``PipelineSpec.strategy_for``; none means escalate); build the pipeline's
action for it; dry-run (global, per pipeline or per action) records what
would have run and stops; otherwise, optionally silence the pipeline in
Alertmanager, then per attempt: guard stage -> exactly-once ledger claim ->
action -> verification through Prometheus -> backoff; finally expire the
silence. Every decision is a ``record(event, detail)`` call (the incident's
timeline) and a metric.

Timeline events (the diagnosis itself is the lifecycle's ``diagnosed``):
``strategy``, ``guardrail_blocked``,
``action_started``, ``action_finished``, ``verification``, ``backoff``,
``dry_run``, ``silence_created``, ``silence_expired``, ``silence_failed``,
``recovered``, ``skipped``, ``escalated``, and ``action_taken_over`` when a
step left ``running`` by a dead worker is claimed again after its lease (the
same step, not a new attempt).

A step of the incident still ``running`` under its lease ends the call as
``skipped`` with ``busy_until`` set: a caller that holds the pipeline's lock
knows that step's worker is not working on it, waits until then and calls
again to take the step over (``receiver.worker`` does).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from receiver.actions import (
    ACTION_KINDS,
    Action,
    ActionConfigError,
    ActionContext,
    ActionFactory,
    ActionOutcome,
    build_action,
)
from receiver.actions.base import truncate
from receiver.models import ActionRecord, Alert, Diagnosis, Incident, utcnow
from receiver.prometheus import PrometheusAPI
from receiver.recovery.config import RecoveryConfig
from receiver.recovery.guard import Blocked, Guard, incident_attempts
from receiver.recovery.metrics import RecoveryMetrics
from receiver.recovery.strategies import STRATEGIES, StepPlan, Strategy
from receiver.recovery.verify import Verification, Verifier
from receiver.silences import SilenceError, Silences
from receiver.store.base import ActionLedger
from rules.spec import PipelineSpec

__all__ = ["MANUAL", "Record", "Recoverer", "RecoveryResult"]

log = logging.getLogger(__name__)

Record = Callable[[str, Any], Awaitable[None]]
MANUAL = "requires manual intervention"


@dataclass(frozen=True)
class RecoveryResult:
    """How a recovery ended: ``recovered``, ``escalated``, ``dry_run`` or ``skipped``."""

    outcome: str
    strategy: str | None
    actions: tuple[ActionRecord, ...]
    reason: str
    # skipped because a step is leased to another worker until then (see the docstring)
    busy_until: datetime | None = None


# After losing the claim of a step whose lease looked over (the store's clock may
# lag the worker's), ask again this much later.
_RECLAIM_SECONDS = 1.0


@dataclass
class _Run:
    """The state of one ``recover`` call."""

    incident: Incident
    alert: Alert
    diagnosis: Diagnosis
    spec: PipelineSpec
    record: Record
    still_firing: Callable[[], Awaitable[bool]]
    strategy: str | None = None
    actions: tuple[ActionRecord, ...] = ()


class Recoverer:
    """Run guarded recovery for diagnosed incidents.

    Example::

        recoverer = Recoverer(RecoveryConfig(), store, prom, session)
        result = await recoverer.recover(incident, alert, diagnosis, spec, record, still_firing)
        result.outcome      # "recovered"
    """

    def __init__(
        self,
        config: RecoveryConfig,
        ledger: ActionLedger,
        prom: PrometheusAPI,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        worker_id: str = "local",
        metrics: RecoveryMetrics | None = None,
        rng: random.Random | None = None,
        strategies: Mapping[str, Strategy] = STRATEGIES,
        action_kinds: Mapping[str, ActionFactory] = ACTION_KINDS,
    ) -> None:
        self.config = config
        self.strategies = strategies  # name -> strategy (built-ins plus plugins)
        self.action_kinds = action_kinds
        self.ledger = ledger
        self.session = session
        self.clock = clock
        self.sleep = sleep
        self.worker_id = worker_id
        self.metrics = metrics or RecoveryMetrics(CollectorRegistry())
        self.guard = Guard(config, ledger, clock, rng)
        self.verifier = Verifier(
            prom,
            deadline_seconds=config.verify_deadline_seconds,
            interval_seconds=config.verify_interval_seconds,
            window_seconds=config.verify_window_seconds,
            clock=clock,
            sleep=sleep,
        )
        self.silences = (
            Silences(config.alertmanager_url, session)
            if config.silence_during_recovery and config.alertmanager_url
            else None
        )

    async def recover(
        self,
        incident: Incident,
        alert: Alert,
        diagnosis: Diagnosis,
        spec: PipelineSpec,
        record: Record,
        still_firing: Callable[[], Awaitable[bool]],
    ) -> RecoveryResult:
        """Try to fix what ``diagnosis`` found; escalate when automation cannot."""
        run = _Run(incident, alert, diagnosis, spec, record, still_firing)
        result = await self._recover(run)
        self.metrics.results.labels(
            strategy=result.strategy or "none", outcome=result.outcome
        ).inc()
        return result

    # stages ------------------------------------------------------------------

    async def _recover(self, run: _Run) -> RecoveryResult:
        d, spec = run.diagnosis, run.spec
        self.metrics.diagnoses.labels(cause=d.cause).inc()
        if run.alert.status != "firing":
            return await self._skip(run, "the alert is resolved; resolved alerts start no action")
        run.strategy = spec.strategy_for(d.cause)
        if run.strategy is None:
            return await self._escalate(run, f"no recovery strategy for cause {d.cause!r}")
        strategy = self.strategies.get(run.strategy)
        if strategy is None:
            return await self._escalate(run, f"unknown recovery strategy {run.strategy!r}")
        where = f"pipelines.{spec.name}.actions.{run.strategy}"
        await run.record("strategy", {"cause": d.cause, "strategy": run.strategy})
        action_config = spec.actions.get(run.strategy)
        if action_config is None:
            return await self._escalate(
                run, f"{run.strategy} has no action configured ({where} is not set)"
            )
        try:
            action, action_dry_run = build_action(action_config, where, self.action_kinds)
        except ActionConfigError as exc:
            return await self._escalate(run, f"action configuration unusable: {exc}")
        plan = strategy.plan(d, spec)
        dry = [
            why
            for why, on in (
                ("receiver config recovery.dry_run", self.config.dry_run),
                (f"pipelines.{spec.name}.dry_run", spec.dry_run),
                (f"{where}.dry_run", action_dry_run),
            )
            if on
        ]
        if dry:
            return await self._dry_run(run, action, plan, ", ".join(dry))
        silence = await self._silence(run)
        try:
            return await self._attempts(run, action, plan)
        finally:
            if silence is not None:
                await self._unsilence(run, silence)

    async def _attempts(self, run: _Run, action: Action, plan: StepPlan) -> RecoveryResult:
        assert run.strategy is not None
        while True:
            history = await self._history(run.incident)
            done, attempt = len(history), len(history) + 1
            running = [r for r in history if r.outcome == "running"]
            dead: ActionRecord | None = None
            if running:
                step = running[-1]
                lease_end = step.started_at + timedelta(seconds=self.config.lease_seconds)
                if lease_end > self.clock():
                    why = f"step {step.step} is in progress on worker {step.worker!r}"
                    return await self._skip(run, why, busy_until=lease_end)
                # its worker died: take the same step over (the ledger allows it)
                dead = step
                attempt = _step_number(step.step)
                done = attempt - 1
            blocked = self.guard.attempts_left(done, plan.max_attempts)
            if blocked is not None:
                await self._blocked(run, blocked)
                return await self._escalate(run, blocked.reason)
            if not await run.still_firing():
                return await self._skip(run, "the alert resolved; no further attempt")
            admitted = await self._admit(run, action, attempt, dead)
            if isinstance(admitted, RecoveryResult):
                return admitted
            if dead is not None:
                await run.record(
                    "action_taken_over",
                    {
                        "step": admitted.step,
                        "action": admitted.action,
                        "target": admitted.target,
                        "from_worker": dead.worker,
                        "to_worker": admitted.worker,
                        "started_by_dead_worker_at": dead.started_at.isoformat(),
                    },
                )
            outcome, verification = await self._execute(run, action, plan, admitted)
            if verification is not None and verification.cleared:
                await run.record("recovered", {"strategy": run.strategy, "attempts": attempt})
                return RecoveryResult(
                    "recovered",
                    run.strategy,
                    run.actions,
                    f"{run.strategy} cleared {run.diagnosis.cause} (attempt {attempt})",
                )
            if not outcome.ok and not outcome.retryable:
                return await self._escalate(
                    run, f"{action.target} failed and retrying will not help: {outcome.detail}"
                )
            if attempt >= plan.max_attempts:
                what = verification.detail if verification else outcome.detail
                return await self._escalate(
                    run,
                    f"{attempt} attempt(s) of {run.strategy} did not clear "
                    f"{run.diagnosis.cause}: {what}",
                )
            if not await run.still_firing():
                return await self._skip(run, "the alert resolved during the action; not retried")
            delay = self.guard.backoff(attempt) if plan.backoff else 0.0
            await run.record("backoff", {"seconds": round(delay, 3), "next_attempt": attempt + 1})
            await self.sleep(delay)

    async def _admit(
        self, run: _Run, action: Action, attempt: int, dead: ActionRecord | None = None
    ) -> ActionRecord | RecoveryResult:
        """Pass the guard stage and claim the step in the ledger, waiting out short blocks.

        ``dead``: the running step of a dead worker to take over (same step name).
        """
        assert run.strategy is not None
        waited = 0.0
        while True:
            async with self.guard.admission:
                blocked = await self.guard.check(
                    run.incident, action.target, run.spec.cooldown_seconds
                )
                if blocked is None:
                    record = ActionRecord(
                        incident_id=run.incident.id,
                        step=dead.step if dead else f"{run.strategy}#{attempt}",
                        pipeline=run.incident.pipeline,
                        strategy=run.strategy,
                        action=_kind(action),
                        target=action.target,
                        started_at=self.clock(),
                        worker=self.worker_id,
                    )
                    claimed = await self.ledger.begin_action(record, self.config.lease_seconds)
            if blocked is None:
                break
            await self._blocked(run, blocked)
            if not blocked.transient or waited >= self.config.admission_wait_seconds:
                return await self._escalate(run, blocked.reason)
            delay = max(self.config.backoff_base_seconds, 0.01)
            await self.sleep(delay)
            waited += delay
            if not await run.still_firing():
                return await self._skip(run, "the alert resolved while waiting for a guardrail")
        if not claimed:
            self.metrics.actions.labels(strategy=run.strategy, outcome="skipped").inc()
            why = f"step {record.step} is already claimed by another worker; not run twice"
            if dead is not None:  # the store's lease has not run out yet by its own clock
                retry = self.clock() + timedelta(seconds=_RECLAIM_SECONDS)
                return await self._skip(run, why, busy_until=retry)
            return await self._skip(run, why)
        return record

    async def _execute(
        self, run: _Run, action: Action, plan: StepPlan, record: ActionRecord
    ) -> tuple[ActionOutcome, Verification | None]:
        """Run one claimed step, verify it, and store its outcome in the ledger."""
        assert run.strategy is not None
        attempt = _step_number(record.step)
        await run.record(
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
        started = time.perf_counter()
        try:
            outcome = await action.run(ctx)
        except Exception as exc:  # an action must not leave its step "running"
            log.exception("action %s raised", action.target)
            outcome = ActionOutcome("failure", False, f"action raised {type(exc).__name__}: {exc}")
        duration = time.perf_counter() - started
        self.metrics.action_duration.labels(strategy=run.strategy, action=record.action).observe(
            duration
        )
        self.metrics.actions.labels(strategy=run.strategy, outcome=outcome.outcome).inc()
        await run.record(
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
            verification = await self.verifier.verify(run.diagnosis.cause, run.incident.pipeline)
            result = "cleared" if verification.cleared else "not_cleared"
            self.metrics.verifications.labels(result=result).inc()
            await run.record(
                "verification",
                {
                    "step": record.step,
                    "cleared": verification.cleared,
                    "detail": verification.detail,
                },
            )
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

    async def _dry_run(self, run: _Run, action: Action, plan: StepPlan, why: str) -> RecoveryResult:
        assert run.strategy is not None
        since = run.incident.opened_at
        earlier = [
            r
            for r in await self.ledger.actions_since(since, pipeline=run.incident.pipeline)
            if r.incident_id == run.incident.id and r.outcome == "dry_run"
        ]
        now = self.clock()
        would = f"would run {action.summary} (target {action.target}, params {dict(plan.params)})"
        record = ActionRecord(
            incident_id=run.incident.id,
            step=f"dry_run:{run.strategy}#{len(earlier) + 1}",
            pipeline=run.incident.pipeline,
            strategy=run.strategy,
            action=_kind(action),
            target=action.target,
            started_at=now,
            ended_at=now,
            outcome="dry_run",
            detail=would,
            worker=self.worker_id,
        )
        if not await self.ledger.begin_action(record, self.config.lease_seconds):
            return await self._skip(run, f"step {record.step} is already claimed by another worker")
        await self.ledger.end_action(record)
        run.actions = (record,)
        self.metrics.actions.labels(strategy=run.strategy, outcome="dry_run").inc()
        await run.record("dry_run", {"step": record.step, "why": why, "would": would})
        return RecoveryResult("dry_run", run.strategy, run.actions, f"dry run ({why}): {would}")

    # helpers -------------------------------------------------------------------

    async def _history(self, incident: Incident) -> list[ActionRecord]:
        records = await self.ledger.actions_since(
            incident.opened_at - timedelta(seconds=1), pipeline=incident.pipeline
        )
        return incident_attempts(records, incident.id)

    async def _blocked(self, run: _Run, blocked: Blocked) -> None:
        self.metrics.guard_blocks.labels(guard=blocked.guard).inc()
        self.metrics.actions.labels(strategy=run.strategy or "none", outcome="blocked").inc()
        await run.record("guardrail_blocked", {"guard": blocked.guard, "reason": blocked.reason})

    async def _escalate(self, run: _Run, why: str) -> RecoveryResult:
        reason = f"{MANUAL}: {why}"
        await run.record("escalated", {"reason": reason, "strategy": run.strategy})
        return RecoveryResult("escalated", run.strategy, run.actions, reason)

    async def _skip(
        self, run: _Run, why: str, busy_until: datetime | None = None
    ) -> RecoveryResult:
        detail: dict[str, Any] = {"reason": why, "strategy": run.strategy}
        if busy_until is not None:
            detail["busy_until"] = busy_until.isoformat()
        await run.record("skipped", detail)
        return RecoveryResult("skipped", run.strategy, run.actions, why, busy_until)

    async def _silence(self, run: _Run) -> str | None:
        if self.silences is None:
            return None
        labels = {"pipeline": run.incident.pipeline}
        try:
            sid = await self.silences.create(
                labels,
                starts=self.clock(),
                until=self.clock() + timedelta(seconds=self.config.silence_max_seconds),
                comment=f"pipemedic incident #{run.incident.id}: {run.strategy} in progress",
            )
        except (SilenceError, ValueError) as exc:
            await run.record("silence_failed", {"error": str(exc)})
            return None
        await run.record("silence_created", {"id": sid, "matchers": labels})
        return sid

    async def _unsilence(self, run: _Run, sid: str) -> None:
        assert self.silences is not None
        try:
            await self.silences.expire(sid)
        except (SilenceError, ValueError) as exc:
            await run.record("silence_failed", {"id": sid, "error": str(exc)})
            return
        await run.record("silence_expired", {"id": sid})


def _kind(action: Action) -> str:
    return action.target.split(" ", 1)[0]


def _step_number(step: str) -> int:
    return int(step.rsplit("#", 1)[1])
