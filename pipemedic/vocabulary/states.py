"""The incident states and action outcomes every part of the receiver names.

``StrEnum`` members are ``str``: stored, compared and serialised as their
value, so the store, the JSON API and the pages keep the same words.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["IncidentState", "Outcome"]


class IncidentState(StrEnum):
    """Where an incident is in its lifecycle (``receiver.incidents`` moves it)."""

    OPEN = "open"
    DIAGNOSING = "diagnosing"
    RECOVERING = "recovering"
    RECOVERED = "recovered"  # verified; waiting for the alerts to resolve
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    CLOSED = "closed"


class Outcome(StrEnum):
    """How one recovery attempt ended (``running`` until it does)."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    DRY_RUN = "dry_run"
    BLOCKED = "blocked"
