"""Dry-run: record in the ledger and on the timeline what a step would have run.

A dry run is a ledger row of its own (``dry_run:<strategy>#n``, outcome
``dry_run``), claimed like a real step so two replicas record it once, and
never counted as an attempt by the guard.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from receiver.actions import Action
from receiver.models import ActionRecord
from receiver.recovery.metrics import RecoveryMetrics
from receiver.recovery.run import RecoveryResult, Run, action_kind
from receiver.recovery.strategies import StepPlan
from receiver.store.base import ActionLedger

__all__ = ["record_dry_run"]


async def record_dry_run(
    run: Run,
    action: Action,
    plan: StepPlan,
    why: str,
    *,
    ledger: ActionLedger,
    metrics: RecoveryMetrics,
    clock: Callable[[], datetime],
    worker_id: str,
    lease_seconds: float,
) -> RecoveryResult:
    """Record what ``action`` would have done (``why``: which setting asked for a dry run)."""
    assert run.strategy is not None
    earlier = [
        r
        for r in await ledger.actions_since(run.incident.opened_at, pipeline=run.incident.pipeline)
        if r.incident_id == run.incident.id and r.outcome == "dry_run"
    ]
    now = clock()
    would = f"would run {action.summary} (target {action.target}, params {dict(plan.params)})"
    record = ActionRecord(
        incident_id=run.incident.id,
        step=f"dry_run:{run.strategy}#{len(earlier) + 1}",
        pipeline=run.incident.pipeline,
        strategy=run.strategy,
        action=action_kind(action),
        target=action.target,
        started_at=now,
        ended_at=now,
        outcome="dry_run",
        detail=would,
        worker=worker_id,
        diagnosis=run.diagnosis_number,
    )
    if not await ledger.begin_action(record, lease_seconds):
        return run.skip(f"step {record.step} is already claimed by another worker")
    await ledger.end_action(record)
    run.actions = (record,)
    metrics.actions.labels(strategy=run.strategy, outcome="dry_run").inc()
    run.note("dry_run", {"step": record.step, "why": why, "would": would})
    return run.dry_run(f"dry run ({why}): {would}")
