"""The demo's faults: one row per pipeline, what breaks and what pipemedic should do about it.

Each row is one of the runbook's four incident kinds. The simulator makes
the pipeline misbehave the way the row says (failed runs or failed records
with the row's error ``category`` and ``reason``, memory at its limit);
the pipeline's recovery action in ``rules/pipelines.yml`` calls the
simulator's control route ``fix``, which repairs it. ``cause``,
``strategy`` and ``state`` are what the receiver is expected to find, pick
and end in: the demo's summary and its end-to-end test compare against them.

Adding a fault is one row here, one pipeline (with its action) in
``rules/pipelines.yml``, and ``pipemedic rules generate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["FIXES", "SCENARIO", "Fault", "fault_for"]

# control route -> what it does to the simulated pipeline
FIXES: Final[dict[str, str]] = {
    "retry": "re-run now (the upstream answers again)",
    "refresh_credentials": "fetch fresh credentials",
    "rollback": "return to the last good checkpoint, skipping the corrupt batch",
    "scale": "double the memory limit",
}


@dataclass(frozen=True)
class Fault:
    """One injected fault and the response it should get."""

    name: str
    pipeline: str
    title: str
    category: str  # the runbook's incident kind
    reason: str  # the error reason the pipeline reports (pipemedic.vocabulary.causes)
    effect: Literal["failed_runs", "failed_records"]
    fix: str | None  # control route that repairs it; None: nothing automatic can
    cause: str  # expected diagnosis
    strategy: str | None  # expected recovery strategy
    state: Literal["resolved", "escalated"]  # expected final incident state
    memory_ratio: float | None = None  # memory in use / limit while the fault lasts
    failing_fix_calls: int = 0  # fix calls answered 503 before one works (shows backoff)


SCENARIO: Final[tuple[Fault, ...]] = (
    Fault(
        name="upstream_timeout",
        pipeline="demo_shop_orders",
        title="upstream API timeout",
        category="connectivity",
        reason="timeout",
        effect="failed_runs",
        fix="retry",
        cause="network_timeout",
        strategy="retry_with_backoff",
        state="resolved",
        # the first re-run still times out: the guard backs off, the second works
        failing_fix_calls=1,
    ),
    Fault(
        name="expired_credentials",
        pipeline="demo_crm_contacts",
        title="expired credentials",
        category="connectivity",
        reason="auth_expired",
        effect="failed_runs",
        fix="refresh_credentials",
        cause="credential_expired",
        strategy="refresh_credentials",
        state="resolved",
    ),
    Fault(
        name="corrupt_batch",
        pipeline="demo_clickstream",
        title="corrupt batch",
        category="data",
        reason="corrupt_record",
        effect="failed_records",
        fix="rollback",
        cause="data_corruption",
        strategy="rollback_to_checkpoint",
        state="resolved",
    ),
    Fault(
        name="memory_exhaustion",
        pipeline="demo_feature_build",
        title="memory exhaustion",
        category="resources",
        reason="out_of_memory",
        effect="failed_runs",
        fix="scale",
        cause="memory_limit",
        strategy="scale_resources",
        state="resolved",
        memory_ratio=0.97,
    ),
    Fault(
        name="logic_bug",
        pipeline="demo_revenue_report",
        title="logic bug",
        category="logic",
        reason="bug",
        effect="failed_runs",
        fix=None,
        cause="logic_error",
        strategy=None,
        state="escalated",
    ),
)


def fault_for(pipeline: str) -> Fault | None:
    """Return the scenario's fault of a pipeline, or None for a pipeline not in it."""
    return next((f for f in SCENARIO if f.pipeline == pipeline), None)
