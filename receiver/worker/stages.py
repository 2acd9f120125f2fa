"""The worker's injected stages: one-method Protocols for diagnose, recover and check.

``receiver.worker.pool`` runs correlate -> diagnose -> recover -> verify -> record
and knows nothing of Prometheus queries or actions: these seams are filled
by ``receiver.diagnosis``, ``receiver.recovery.Recoverer.recover`` and a
Prometheus firing check (``receiver.app`` wires them), or by plain test
stand-ins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from receiver.models import ActionRecord, Alert, Diagnosis, Incident
from rules.spec import PipelineSpec

__all__ = ["Diagnose", "FiringCheck", "Recover", "RecoveryOutcome"]


class Diagnose(Protocol):
    """Find the cause of an alert; never raises (an unknown cause is a diagnosis)."""

    async def __call__(self, alert: Alert, spec: PipelineSpec) -> Diagnosis: ...


class RecoveryOutcome(Protocol):
    """What a recovery did (``receiver.recovery.RecoveryResult`` has this shape)."""

    @property
    def outcome(self) -> str: ...  # recovered | escalated | dry_run | skipped

    @property
    def strategy(self) -> str | None: ...

    @property
    def actions(self) -> Sequence[ActionRecord]: ...

    @property
    def reason(self) -> str: ...


class Recover(Protocol):
    """Run the guarded recovery for a diagnosed incident (``Recoverer.recover``)."""

    async def __call__(
        self,
        incident: Incident,
        alert: Alert,
        diagnosis: Diagnosis,
        spec: PipelineSpec,
        record: Callable[[str, Any], Awaitable[None]],
        still_firing: Callable[[], Awaitable[bool]],
    ) -> RecoveryOutcome: ...


class FiringCheck(Protocol):
    """Say whether an alert still fires now (``None``: cannot tell)."""

    async def __call__(self, alert: Alert) -> bool | None: ...
