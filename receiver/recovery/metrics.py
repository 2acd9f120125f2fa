"""The receiver's recovery metrics, registered on a registry the caller owns.

No module-level registry: the receiver app passes its own
``CollectorRegistry`` (and each test a fresh one).

Example::

    metrics = RecoveryMetrics(registry)
    metrics.actions.labels(strategy="retry_with_backoff", outcome="success").inc()
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["RecoveryMetrics"]

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class RecoveryMetrics:
    """Counters of every recovery decision and a histogram of action durations."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.actions = Counter(
            "pipemedic_recovery_actions_total",
            "Recovery action attempts by strategy and outcome "
            "(success, failure, timeout, dry_run, blocked, skipped).",
            ["strategy", "outcome"],
            registry=registry,
        )
        self.action_duration = Histogram(
            "pipemedic_recovery_action_duration_seconds",
            "How long recovery actions ran, by strategy and action kind.",
            ["strategy", "action"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.results = Counter(
            "pipemedic_recovery_results_total",
            "Recoveries by chosen strategy (none: escalated without one) and result "
            "(recovered, escalated, dry_run, skipped).",
            ["strategy", "outcome"],
            registry=registry,
        )
        self.guard_blocks = Counter(
            "pipemedic_recovery_guardrail_blocks_total",
            "Recovery steps a guardrail held back, by guardrail.",
            ["guard"],
            registry=registry,
        )
        self.diagnoses = Counter(
            "pipemedic_diagnoses_total",
            "Diagnoses that reached recovery, by cause.",
            ["cause"],
            registry=registry,
        )
        self.verifications = Counter(
            "pipemedic_recovery_verifications_total",
            "Checks through Prometheus after an action, by result (cleared, not_cleared).",
            ["result"],
            registry=registry,
        )
