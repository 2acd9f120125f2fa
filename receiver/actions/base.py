"""The action interface: what recovery hands an action, and what it gets back.

An action is configured per pipeline and strategy in the spec
(``pipelines.<name>.actions.<strategy>``). It runs once per call and reports
an :class:`ActionOutcome` with a ``retryable`` flag; it never retries, sleeps
or counts attempts itself (the guard stage in ``receiver.recovery`` does).
Alert labels in :class:`ActionContext` are untrusted: an action may put
allow-listed ones into a JSON body or an environment variable, never into a
shell string, a URL or a path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiohttp

from receiver.errors import ActionConfigError
from rules.durations import parse_duration

__all__ = [
    "Action",
    "ActionConfigError",
    "ActionContext",
    "ActionOutcome",
    "config_timeout",
    "truncate",
]

MAX_DETAIL_CHARS = 4096


@dataclass(frozen=True)
class ActionContext:
    """Everything an action may use about the incident it works for."""

    incident_id: int
    pipeline: str
    alertname: str
    cause: str
    strategy: str
    attempt: int
    session: aiohttp.ClientSession
    labels: Mapping[str, str] = field(default_factory=dict)  # untrusted
    params: Mapping[str, str] = field(default_factory=dict)  # from the strategy


@dataclass(frozen=True)
class ActionOutcome:
    """How one run of an action went; ``retryable`` says whether trying again may help."""

    outcome: Literal["success", "failure", "timeout"]
    retryable: bool
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "success"


class Action(Protocol):
    """One configured action. ``target`` keys its circuit breaker; ``summary`` is for people."""

    target: str
    summary: str

    async def run(self, ctx: ActionContext) -> ActionOutcome:
        """Carry the action out once and report how it went; never raise."""
        ...


def config_timeout(config: Mapping[str, Any], where: str, default: float) -> float:
    """Return ``config["timeout"]`` in seconds (a Prometheus duration), or ``default``."""
    raw = config.get("timeout")
    if raw is None:
        return default
    try:
        seconds = parse_duration(str(raw))
    except ValueError as exc:
        raise ActionConfigError(f"{where}.timeout: {exc}") from None
    if seconds <= 0:
        raise ActionConfigError(f"{where}.timeout: must be positive, got {raw!r}")
    return seconds


def truncate(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """Return ``text`` cut to ``limit`` characters, saying how much was dropped."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters truncated]"
