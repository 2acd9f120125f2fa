"""One ``recover`` call's state, and the ways it ends: recovered, escalated, skipped.

``Run`` travels through the stages (``recoverer`` -> ``steps`` / ``dryrun`` /
``silencing``); every stage that ends the call returns ``run.escalate(why)``
or ``run.skip(why)``, which write the timeline entry and build the
``RecoveryResult``, so each ending is said the same way wherever it happens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from receiver.actions import Action
from receiver.models import ActionRecord, Alert, Diagnosis, Incident
from rules.spec import PipelineSpec

__all__ = ["MANUAL", "Record", "RecoveryResult", "Run", "action_kind", "step_number"]

Record = Callable[[str, Any], Awaitable[None]]
MANUAL = "requires manual intervention"


@dataclass(frozen=True)
class RecoveryResult:
    """How a recovery ended: ``recovered``, ``escalated``, ``dry_run`` or ``skipped``."""

    outcome: str
    strategy: str | None
    actions: tuple[ActionRecord, ...]
    reason: str
    # skipped because a step is leased to another worker until then (see recoverer.py)
    busy_until: datetime | None = None


@dataclass
class Run:
    """The state of one ``recover`` call."""

    incident: Incident
    alert: Alert
    diagnosis: Diagnosis
    spec: PipelineSpec
    record: Record
    still_firing: Callable[[], Awaitable[bool]]
    strategy: str | None = None
    actions: tuple[ActionRecord, ...] = ()

    async def escalate(self, why: str) -> RecoveryResult:
        """End the call by handing the incident to people, saying why."""
        reason = f"{MANUAL}: {why}"
        await self.record("escalated", {"reason": reason, "strategy": self.strategy})
        return RecoveryResult("escalated", self.strategy, self.actions, reason)

    async def skip(self, why: str, busy_until: datetime | None = None) -> RecoveryResult:
        """End the call without acting; ``busy_until``: another worker's step lease ends then."""
        detail: dict[str, Any] = {"reason": why, "strategy": self.strategy}
        if busy_until is not None:
            detail["busy_until"] = busy_until.isoformat()
        await self.record("skipped", detail)
        return RecoveryResult("skipped", self.strategy, self.actions, why, busy_until)

    def recovered(self, attempt: int) -> RecoveryResult:
        """Build the result of an attempt whose verification saw the condition clear."""
        assert self.strategy is not None
        why = f"{self.strategy} cleared {self.diagnosis.cause} (attempt {attempt})"
        return RecoveryResult("recovered", self.strategy, self.actions, why)


def action_kind(action: Action) -> str:
    """Return the action's kind (``http``, ``command``, ``python``) from its target."""
    return action.target.split(" ", 1)[0]


def step_number(step: str) -> int:
    """Return the attempt number of a step name such as ``retry_with_backoff#2``."""
    return int(step.rsplit("#", 1)[1])
