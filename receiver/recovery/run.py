"""One ``recover`` call's state, and the ways it ends: recovered, escalated, skipped.

``Run`` travels through the stages (``recoverer`` -> ``steps`` / ``dryrun`` /
``silencing``); each decision is a ``run.note(event, detail)`` timeline
entry kept on the run, and every stage that ends the call returns
``run.escalate(why)`` or ``run.skip(why)``, which build the
``RecoveryResult`` carrying those entries. The recoverer never writes the
incident: the worker's lifecycle applies the result in one save.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from receiver.actions import Action
from receiver.models import ActionRecord, Alert, Diagnosis, Incident, TimelineEntry
from rules.spec import PipelineSpec

__all__ = ["MANUAL", "RecoveryResult", "Run", "action_kind", "step_number"]

MANUAL = "requires manual intervention"


@dataclass(frozen=True)
class RecoveryResult:
    """How a recovery ended: ``recovered``, ``escalated``, ``dry_run``, ``skipped``,
    or ``approval_needed`` (``approval`` says which step waits for a person).

    ``entries``: the timeline entries of what it did, in order. ``busy_until``:
    skipped because a step is leased to another worker until then (see recoverer.py).
    """

    outcome: str
    strategy: str | None
    actions: tuple[ActionRecord, ...]
    reason: str
    entries: tuple[TimelineEntry, ...] = ()
    busy_until: datetime | None = None
    attempts: int = 0  # recovered: the attempt whose verification saw the condition clear
    approval: dict[str, Any] | None = None


@dataclass
class Run:
    """The state of one ``recover`` call."""

    incident: Incident
    alert: Alert
    diagnosis: Diagnosis
    spec: PipelineSpec
    still_firing: Callable[[], Awaitable[bool]]
    clock: Callable[[], datetime]
    diagnosis_number: int | None = None
    strategy: str | None = None
    actions: tuple[ActionRecord, ...] = ()
    entries: list[TimelineEntry] = field(default_factory=list)
    started_at: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.started_at = self.clock()  # the guard's per-incident cooldown counts earlier rounds

    def note(self, event: str, detail: Any) -> None:
        """Keep a timeline entry of this run (written with the result)."""
        self.entries.append(TimelineEntry(at=self.clock(), event=event, detail=detail))

    def _result(
        self, outcome: str, reason: str, busy_until: datetime | None = None, attempts: int = 0
    ) -> RecoveryResult:
        return RecoveryResult(
            outcome, self.strategy, self.actions, reason, tuple(self.entries), busy_until, attempts
        )

    def escalate(self, why: str) -> RecoveryResult:
        """End the call by handing the incident to people, saying why.

        The ``escalated`` entry is the lifecycle's (with the roles), from this reason.
        """
        return self._result("escalated", f"{MANUAL}: {why}")

    def skip(self, why: str, busy_until: datetime | None = None) -> RecoveryResult:
        """End the call without acting; ``busy_until``: another worker's step lease ends then."""
        detail: dict[str, Any] = {"reason": why, "strategy": self.strategy}
        if busy_until is not None:
            detail["busy_until"] = busy_until.isoformat()
        self.note("skipped", detail)
        return self._result("skipped", why, busy_until)

    def recovered(self, attempt: int) -> RecoveryResult:
        """Build the result of an attempt whose verification saw the condition clear.

        The ``recovered`` entry is the lifecycle's: the incident's state changes with it.
        """
        assert self.strategy is not None
        why = f"{self.strategy} cleared {self.diagnosis.cause} (attempt {attempt})"
        return self._result("recovered", why, attempts=attempt)

    def dry_run(self, why: str) -> RecoveryResult:
        """Build the result of a step recorded as a dry run."""
        return self._result("dry_run", why)


def action_kind(action: Action) -> str:
    """Return the action's kind (``http``, ``command``, ``python``) from its target."""
    return action.target.split(" ", 1)[0]


def step_number(step: str) -> int:
    """Return the attempt number of a step name such as ``retry_with_backoff#2``."""
    return int(step.rsplit("#", 1)[1])
