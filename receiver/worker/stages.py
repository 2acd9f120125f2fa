"""The worker's stages and what passes between them: typed contexts and results.

``receiver.worker`` runs one list of stages per event::

    correlate -> diagnose -> recover -> verify      (report: inside the save that ends automation)

Each stage is one callable ``(StageContext) -> StageResult``. A stage never
writes the incident: it returns timeline entries and the state it wants,
and ``Lifecycle.apply`` changes the incident and saves it once. What a
stage learnt for the next ones (this round's diagnosis, the recovery's
outcome) travels in the result and lands in the context.

The seams filled from outside are one-method Protocols: ``Diagnose``
(``receiver.diagnosis``), ``Recover`` (``receiver.recovery.Recoverer.recover``)
and ``FiringCheck`` (is the alert still firing: asked only to stop trying
for an alert that ended; whether a *condition* cleared is the recoverer's
verification through symptom queries). ``receiver.app`` wires them; tests
pass plain stand-ins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from receiver.models import ActionRecord, Alert, AlertEvent, Diagnosis, Incident, TimelineEntry
from rules.spec import PipelineSpec

__all__ = [
    "Diagnose",
    "DownstreamCheck",
    "DownstreamVerdict",
    "FiringCheck",
    "Recover",
    "RecoveryOutcome",
    "RecoveryRequest",
    "Stage",
    "StageContext",
    "StageResult",
    "Transition",
]


class Diagnose(Protocol):
    """Find the cause of an alert; never raises (an unknown cause is a diagnosis)."""

    async def __call__(self, alert: Alert, spec: PipelineSpec) -> Diagnosis: ...


class FiringCheck(Protocol):
    """Say whether an alert still fires now (``None``: cannot tell)."""

    async def __call__(self, alert: Alert) -> bool | None: ...


@dataclass(frozen=True)
class RecoveryRequest:
    """What the recover stage hands the recoverer: one diagnosed alert of one incident.

    ``diagnosis_number``: the diagnosis' place in ``Incident.diagnoses`` (kept
    on every action it decides). ``after_recovery``: a recovery of this incident
    was verified already, so a new round acts only while its symptom persists.
    """

    incident: Incident
    alert: Alert
    diagnosis: Diagnosis
    spec: PipelineSpec
    still_firing: Callable[[], Awaitable[bool]]
    diagnosis_number: int | None = None
    after_recovery: bool = False


class RecoveryOutcome(Protocol):
    """What a recovery did (``receiver.recovery.RecoveryResult`` has this shape)."""

    @property
    def outcome(self) -> str: ...  # recovered | escalated | dry_run | skipped | approval_needed

    @property
    def strategy(self) -> str | None: ...

    @property
    def actions(self) -> Sequence[ActionRecord]: ...

    @property
    def reason(self) -> str: ...

    @property
    def entries(self) -> Sequence[TimelineEntry]: ...  # what it did, for the timeline

    @property
    def busy_until(self) -> datetime | None: ...  # skipped: another worker's step lease ends

    @property
    def attempts(self) -> int: ...  # recovered: the attempt that cleared the condition

    @property
    def approval(self) -> dict[str, Any] | None: ...  # approval_needed: the waiting step


@dataclass(frozen=True)
class DownstreamVerdict:
    """What verifying an incident's downstream pipelines found (``DownstreamCheck``).

    ``entries``: one per pipeline judged (verified, or still failing past the
    deadline); ``still_failing``: those pipelines, for the escalation's reason.
    """

    entries: tuple[TimelineEntry, ...] = ()
    still_failing: tuple[str, ...] = ()


class DownstreamCheck(Protocol):
    """Verify the downstream pipelines of a recovered incident
    (``receiver.recovery.downstream.DownstreamVerifier``)."""

    async def __call__(self, incident: Incident) -> DownstreamVerdict: ...


class Recover(Protocol):
    """Run the guarded recovery for a diagnosed alert (``Recoverer.recover``)."""

    async def __call__(self, request: RecoveryRequest) -> RecoveryOutcome: ...


@dataclass(frozen=True)
class Transition:
    """A state change a stage asks for; its timeline entry is ``event`` (default: the state)."""

    state: str
    detail: Any = None
    at: datetime | None = None
    event: str | None = None


@dataclass(frozen=True)
class StageResult:
    """What one stage decided, for ``Lifecycle.apply`` to write in one save.

    ``transitions`` are applied in order (e.g. recovering, then escalated);
    ``diagnosis`` is appended to the incident's diagnoses; ``deciding`` names
    (1-based) the diagnosis behind a verified recovery, which becomes the
    incident's root cause. ``recovery`` is passed on to the verify stage.
    ``stop`` ends the list for this event.
    """

    entries: tuple[TimelineEntry, ...] = ()
    transitions: tuple[Transition, ...] = ()
    diagnosis: Diagnosis | None = None
    deciding: int | None = None
    recovery: RecoveryOutcome | None = None
    recovered_at: datetime | None = None
    stop: bool = False
    # correlate only: the incident the event belongs to, what happened, whether work follows
    incident: Incident | None = None
    change: str = ""
    work: bool = False

    @property
    def empty(self) -> bool:
        """True when there is nothing to write."""
        return not (
            self.entries or self.transitions or self.diagnosis or self.deciding or self.recovered_at
        )


@dataclass
class StageContext:
    """One event on its way through the stages; the runner fills it from each result."""

    event: AlertEvent
    spec: PipelineSpec
    incident: Incident | None = None
    change: str = ""  # what correlate did: opened | joined | reopened | repeated | ...
    work: bool = False  # correlate says diagnosis and recovery follow
    diagnosis: Diagnosis | None = None  # this round's
    diagnosis_number: int | None = None
    recovery: RecoveryOutcome | None = None

    @property
    def alert(self) -> Alert:
        return self.event.alert


class Stage(Protocol):
    """One step of the worker's list: read the context, return what to write."""

    async def __call__(self, ctx: StageContext) -> StageResult: ...
