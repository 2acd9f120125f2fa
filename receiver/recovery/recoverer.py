"""Carry a diagnosis through the guarded recovery steps and report every decision.

The stages, in order: count the diagnosis; pick the strategy from the
cause (``PipelineSpec.strategy_for``; none means escalate); build the
pipeline's action for it; dry-run (global, per pipeline or per action)
records what would have run and stops (``dryrun``); otherwise, optionally
silence the pipeline in Alertmanager (``silencing``), then per attempt:
guard stage -> exactly-once ledger claim -> action -> verification through
Prometheus (``steps``) -> backoff; finally expire the silence. This module
holds the chain and the attempt loop; ``run`` holds one call's state and
the ways it ends. Every decision is a timeline entry on the result
(``run.note``) and a metric; the recoverer never writes the incident.

Timeline events (the diagnosis itself is the lifecycle's ``diagnosed``):
``strategy``, ``guardrail_blocked``,
``action_started``, ``action_finished``, ``verification``, ``backoff``,
``dry_run``, ``silence_created``, ``silence_expired``, ``silence_failed``,
``skipped``, and ``action_taken_over`` when a
step left ``running`` by a dead worker is claimed again after its lease (the
same step, not a new attempt).

One recovery per fault: a request made after a recovery of the incident
was verified (``RecoveryRequest.after_recovery``) starts nothing while its
symptom is already clear, and otherwise passes the same guard, whose
cooldown counts the incident's earlier rounds too.

A step of the incident still ``running`` under its lease ends the call as
``skipped`` with ``busy_until`` set: a caller that holds the pipeline's lock
knows that step's worker is not working on it, waits until then and calls
again to take the step over (``receiver.worker`` does).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

import aiohttp
from prometheus_client import CollectorRegistry

from pipemedic.vocabulary import cause
from receiver.actions import ACTION_KINDS, Action, ActionConfigError, ActionFactory, build_action
from receiver.diagnosis.prometheus import PrometheusQuery
from receiver.models import ActionRecord, Incident, utcnow
from receiver.recovery.config import RecoveryConfig
from receiver.recovery.dryrun import record_dry_run
from receiver.recovery.guard import Guard, incident_attempts
from receiver.recovery.metrics import RecoveryMetrics
from receiver.recovery.run import MANUAL, RecoveryResult, Run, step_number
from receiver.recovery.silences import Silences
from receiver.recovery.silencing import silenced
from receiver.recovery.steps import StepRunner
from receiver.recovery.strategies import STRATEGIES, StepPlan, Strategy
from receiver.recovery.verify import Verifier
from receiver.store.base import ActionLedger
from receiver.worker.stages import RecoveryRequest

__all__ = ["MANUAL", "Recoverer", "RecoveryResult"]


class Recoverer:
    """Run guarded recovery for diagnosed incidents.

    Example::

        recoverer = Recoverer(RecoveryConfig(), store, prom, session)
        result = await recoverer.recover(RecoveryRequest(incident, alert, diagnosis, spec, firing))
        result.outcome      # "recovered"; result.entries: what it did
    """

    def __init__(
        self,
        config: RecoveryConfig,
        ledger: ActionLedger,
        prom: PrometheusQuery,
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
        self.steps = StepRunner(
            config,
            ledger,
            self.guard,
            self.verifier,
            self.metrics,
            session,
            clock=clock,
            sleep=sleep,
            worker_id=worker_id,
        )
        self.silences = (
            Silences(config.alertmanager_url, session)
            if config.silence_during_recovery and config.alertmanager_url
            else None
        )

    async def recover(self, request: RecoveryRequest) -> RecoveryResult:
        """Try to fix what the request's diagnosis found; escalate when automation cannot."""
        run = Run(
            request.incident,
            request.alert,
            request.diagnosis,
            request.spec,
            request.still_firing,
            self.clock,
            request.diagnosis_number,
        )
        result = await self._recover(run, request.after_recovery)
        # the run's entries as they stand now: the silence is expired after the result is built
        result = dataclasses.replace(result, entries=tuple(run.entries))
        self.metrics.results.labels(
            strategy=result.strategy or "none", outcome=result.outcome
        ).inc()
        return result

    # stages ------------------------------------------------------------------

    async def _recover(self, run: Run, after_recovery: bool) -> RecoveryResult:
        d, spec = run.diagnosis, run.spec
        self.metrics.diagnoses.labels(cause=d.cause).inc()
        if run.alert.status != "firing":
            return run.skip("the alert is resolved; resolved alerts start no action")
        cleared = after_recovery and await self.verifier.cleared_now(
            d.cause, spec.name, spec.diagnosis
        )
        if cleared is True:
            return run.skip(
                f"the symptoms of {d.cause} are already clear after this incident's "
                "verified recovery; one recovery per fault"
            )
        run.strategy = spec.strategy_for(d.cause)
        if run.strategy is None:
            row = cause(d.cause)
            why = f": {row.escalation}" if row is not None and row.escalation else ""
            return run.escalate(f"no recovery strategy for cause {d.cause!r}{why}")
        strategy = self.strategies.get(run.strategy)
        if strategy is None:
            return run.escalate(f"unknown recovery strategy {run.strategy!r}")
        where = f"pipelines.{spec.name}.actions.{run.strategy}"
        run.note("strategy", {"cause": d.cause, "strategy": run.strategy})
        action_config = spec.actions.get(run.strategy)
        if action_config is None:
            return run.escalate(f"{run.strategy} has no action configured ({where} is not set)")
        try:
            action, action_dry_run = build_action(action_config, where, self.action_kinds)
        except ActionConfigError as exc:
            return run.escalate(f"action configuration unusable: {exc}")
        plan = strategy.plan(d, spec)
        if spec.needs_approval(run.strategy) and not _approved(run.incident, run.strategy):
            return self._ask_approval(run, action)
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
            return await record_dry_run(
                run,
                action,
                plan,
                ", ".join(dry),
                ledger=self.ledger,
                metrics=self.metrics,
                clock=self.clock,
                worker_id=self.worker_id,
                lease_seconds=self.config.lease_seconds,
            )
        async with silenced(
            run, self.silences, clock=self.clock, max_seconds=self.config.silence_max_seconds
        ):
            return await self._attempts(run, action, plan)

    def _ask_approval(self, run: Run, action: Action) -> RecoveryResult:
        """End the call with the step a person must approve (the worker records the request)."""
        assert run.strategy is not None
        now = self.clock()
        timeout = now + timedelta(seconds=self.config.approval_timeout_seconds)
        request = {
            "step": run.strategy,
            "strategy": run.strategy,
            "cause": run.diagnosis.cause,
            "action": action.summary,
            "requested_at": now.isoformat(),
            "timeout_at": timeout.isoformat(),
        }
        why = f"{run.strategy} waits for a person's approval (until {timeout.isoformat()})"
        return RecoveryResult(
            "approval_needed", run.strategy, run.actions, why, tuple(run.entries), approval=request
        )

    async def _attempts(self, run: Run, action: Action, plan: StepPlan) -> RecoveryResult:
        """Run attempts until one clears the condition, a guardrail stops, or the alert ends."""
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
                    return run.skip(why, busy_until=lease_end)
                # its first lease is over: take the same step over if the ledger agrees
                # (it refuses while the step's worker lives and renews the lease)
                dead = step
                attempt = step_number(step.step)
                done = attempt - 1
            blocked = self.guard.attempts_left(done, plan.max_attempts)
            if blocked is not None:
                await self.steps.blocked(run, blocked)
                return run.escalate(blocked.reason)
            if not await run.still_firing():
                return run.skip("the alert resolved; no further attempt")
            admitted = await self.steps.admit(run, action, attempt, dead)
            if isinstance(admitted, RecoveryResult):
                return admitted
            if dead is not None:
                run.note(
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
            outcome, verification = await self.steps.execute(run, action, plan, admitted)
            if verification is not None and verification.cleared:
                return run.recovered(attempt)
            if not outcome.ok and not outcome.retryable:
                return run.escalate(
                    f"{action.target} failed and retrying will not help: {outcome.detail}"
                )
            if attempt >= plan.max_attempts:
                what = verification.detail if verification else outcome.detail
                return run.escalate(
                    f"{attempt} attempt(s) of {run.strategy} did not clear "
                    f"{run.diagnosis.cause}: {what}"
                )
            if not await run.still_firing():
                return run.skip("the alert resolved during the action; not retried")
            delay = self.guard.backoff(attempt) if plan.backoff else 0.0
            run.note("backoff", {"seconds": round(delay, 3), "next_attempt": attempt + 1})
            await self.sleep(delay)

    async def _history(self, incident: Incident) -> list[ActionRecord]:
        records = await self.ledger.actions_since(
            incident.opened_at - timedelta(seconds=1), pipeline=incident.pipeline
        )
        return incident_attempts(records, incident.id)


def _approved(incident: Incident, strategy: str) -> bool:
    """Whether a person approved ``strategy``'s step on this incident (and it is not used up)."""
    pending = incident.pending_approval or {}
    decision = pending.get("decision") or {}
    return pending.get("strategy") == strategy and decision.get("decision") == "approved"
