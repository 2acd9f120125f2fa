"""Guarded recovery: strategies chosen from the cause, actions behind one guard stage.

Public surface: :class:`RecoveryConfig`, :class:`Recoverer`,
:class:`RecoveryResult`, :class:`RecoveryMetrics`, and the strategy table
:data:`STRATEGIES`. See ``recoverer.py`` for the stages and timeline
events, ``steps.py`` for one step (guard, ledger claim, action, verification).
"""

from __future__ import annotations

from receiver.recovery.config import RecoveryConfig
from receiver.recovery.guard import Blocked, Guard
from receiver.recovery.metrics import RecoveryMetrics
from receiver.recovery.recoverer import Recoverer
from receiver.recovery.run import MANUAL, RecoveryResult
from receiver.recovery.strategies import STRATEGIES, StepPlan, Strategy
from receiver.recovery.verify import Verification, Verifier, symptoms

__all__ = [
    "MANUAL",
    "STRATEGIES",
    "Blocked",
    "Guard",
    "Recoverer",
    "RecoveryConfig",
    "RecoveryMetrics",
    "RecoveryResult",
    "StepPlan",
    "Strategy",
    "Verification",
    "Verifier",
    "symptoms",
]
