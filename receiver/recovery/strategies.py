"""The runbook's recovery strategies: how many tries, whether to wait, what to pass on.

Which strategy a cause gets is the spec's business
(``PipelineSpec.strategy_for``); what carries it out is the pipeline's
configured action (``actions.<strategy>``). A strategy only shapes the
attempts: a retry may be tried up to the pipeline's ``max_attempts`` with
backoff, a rollback at most twice (a rollback that does not clear the
condition needs people), and it hands the action parameters it found in
the diagnosis' evidence (e.g. the checkpoint's age).

Adding one is a class with ``plan`` and one line in :data:`STRATEGIES`.
Third-party strategies are entry points in the group
``pipemedic.recovery_strategies``; ``receiver.plugins`` merges them into a
copy of this table that the app hands the ``Recoverer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from receiver.models import Diagnosis
from rules.spec import PipelineSpec

__all__ = ["STRATEGIES", "StepPlan", "Strategy"]


@dataclass(frozen=True)
class StepPlan:
    """How a strategy wants its action run."""

    max_attempts: int
    backoff: bool = True
    params: Mapping[str, str] = field(default_factory=dict)


class Strategy(Protocol):
    """Plan the attempts of one recovery strategy for a diagnosis."""

    def plan(self, diagnosis: Diagnosis, spec: PipelineSpec) -> StepPlan: ...


def _evidence_value(diagnosis: Diagnosis, metric: str) -> str | None:
    """Return the first value of the evidence query that mentions ``metric``."""
    for item in diagnosis.evidence:
        if metric in item.query and isinstance(item.result, list) and item.result:
            first = item.result[0]
            if isinstance(first, dict) and first.get("value") is not None:
                return str(first["value"])
    return None


class RetryWithBackoff:
    """Transient failures (timeouts, rate limits, a dependency down): try again, waiting longer."""

    def plan(self, diagnosis: Diagnosis, spec: PipelineSpec) -> StepPlan:
        return StepPlan(max_attempts=spec.max_attempts, backoff=True)


class ScaleResources:
    """Memory, CPU, disk or volume over capacity: ask for more, then check again."""

    def plan(self, diagnosis: Diagnosis, spec: PipelineSpec) -> StepPlan:
        resource = {
            "memory_limit": "memory",
            "cpu_saturation": "cpu",
            "disk_full": "disk",
            "volume_exceeded": "volume",
            "resource_contention": "host",
        }.get(diagnosis.cause, "unknown")
        return StepPlan(max_attempts=spec.max_attempts, backoff=True, params={"resource": resource})


class RollbackToCheckpoint:
    """Corrupt data or a schema change: return to the last good checkpoint."""

    def plan(self, diagnosis: Diagnosis, spec: PipelineSpec) -> StepPlan:
        params = {}
        age = _evidence_value(diagnosis, "pipeline_checkpoint_timestamp_seconds")
        if age is not None:
            params["checkpoint_age_seconds"] = age
        return StepPlan(max_attempts=min(spec.max_attempts, 2), backoff=True, params=params)


class RefreshCredentials:
    """Expired credentials: renew them once, maybe twice; more tries will not help."""

    def plan(self, diagnosis: Diagnosis, spec: PipelineSpec) -> StepPlan:
        return StepPlan(max_attempts=min(spec.max_attempts, 2), backoff=True)


# strategy name (as in the spec's recovery table) -> strategy
STRATEGIES: Final[dict[str, Strategy]] = {
    "retry_with_backoff": RetryWithBackoff(),
    "scale_resources": ScaleResources(),
    "rollback_to_checkpoint": RollbackToCheckpoint(),
    "refresh_credentials": RefreshCredentials(),
}
