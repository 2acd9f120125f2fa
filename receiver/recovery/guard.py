"""The one guard stage: every limit on automatic recovery, in one place.

Actions never retry or wait on their own; the recoverer asks this stage
before each attempt and for each wait. It owns:

* the attempts cap per incident (the pipeline's ``max_attempts``, capped by
  the strategy);
* exponential backoff with jitter between attempts;
* the cooldown per pipeline and per incident: an action of another incident
  on the same pipeline, or of an earlier round of this incident (an alert
  joining with another cause after a verified fix), within ``cooldown``
  means the last fix did not hold: people, not a loop;
* a global rate limit (actions started per minute) and a cap on actions
  running at once, both read from the shared action ledger so replicas
  count together;
* a circuit breaker per action target (the last N finished attempts all
  failed within the reset window: the target is broken, stop calling it).

The ledger is the state, so a restarted receiver keeps its limits.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from receiver.models import ActionRecord, Incident
from receiver.recovery.config import RecoveryConfig
from receiver.store.base import ActionLedger

__all__ = ["Blocked", "Guard", "incident_attempts"]

_FINISHED = ("success", "failure", "timeout")
_FAILED = ("failure", "timeout")


@dataclass(frozen=True)
class Blocked:
    """A guardrail said no. ``transient``: waiting a little may change its mind."""

    guard: str  # attempts | cooldown | rate_limit | concurrency | circuit_open
    reason: str
    transient: bool = False


def incident_attempts(records: Sequence[ActionRecord], incident_id: int) -> list[ActionRecord]:
    """Return the incident's real attempts (not dry runs), oldest first."""
    return [r for r in records if r.incident_id == incident_id and r.outcome != "dry_run"]


class Guard:
    """Decide whether a recovery step may start now, and how long to wait between tries."""

    def __init__(
        self,
        config: RecoveryConfig,
        ledger: ActionLedger,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.clock = clock
        self.rng = rng or random.Random()
        # checks and the ledger claim happen under this lock, so two incidents of
        # this process cannot both squeeze through the last free slot
        self.admission = asyncio.Lock()

    def backoff(self, attempt: int) -> float:
        """Return the wait after ``attempt`` failed: base * 2^(attempt-1), capped, jittered."""
        c = self.config
        delay = min(c.backoff_max_seconds, c.backoff_base_seconds * 2.0 ** max(0, attempt - 1))
        return delay * (1.0 - c.backoff_jitter * self.rng.random())

    def attempts_left(self, done: int, max_attempts: int) -> Blocked | None:
        """Block once an incident has used its attempts."""
        if done >= max_attempts:
            return Blocked(
                "attempts",
                f"attempts cap reached: {done} of {max_attempts} attempts used for this incident",
            )
        return None

    async def check(
        self,
        incident: Incident,
        target: str,
        cooldown_seconds: float,
        round_started: datetime | None = None,
    ) -> Blocked | None:
        """Return why a step of ``incident`` against ``target`` may not start now, or None.

        ``round_started``: when this recovery round began; the incident's own
        actions from before then count against the cooldown (retries within
        the round do not).
        """
        now = self.clock()
        return (
            await self._cooldown(incident, now, cooldown_seconds, round_started)
            or await self._circuit(target, now)
            or await self._rate_limit(now)
            or await self._concurrency(now)
        )

    async def _cooldown(
        self,
        incident: Incident,
        now: datetime,
        cooldown_seconds: float,
        round_started: datetime | None,
    ) -> Blocked | None:
        if cooldown_seconds <= 0:
            return None
        since = now - timedelta(seconds=cooldown_seconds)
        rows = await self.ledger.actions_since(since, pipeline=incident.pipeline)
        # Stored action times keep milliseconds: a first attempt started in the same
        # millisecond as its round reads back as earlier than the round's exact start.
        cutoff = (
            round_started.replace(microsecond=round_started.microsecond // 1000 * 1000)
            if round_started is not None
            else None
        )
        earlier_round = [
            r
            for r in rows
            if r.incident_id == incident.id
            and r.outcome in _FINISHED
            and cutoff is not None
            and r.started_at < cutoff
        ]
        if earlier_round:
            last = earlier_round[-1]
            return Blocked(
                "cooldown",
                f"cooldown: this incident already ran {last.step} at "
                f"{last.started_at.isoformat()}, less than {cooldown_seconds:g}s ago; "
                "one recovery per fault, people decide on another",
            )
        recent = [
            r for r in rows if r.incident_id != incident.id and r.outcome in (*_FINISHED, "running")
        ]
        if not recent:
            return None
        last = recent[-1]
        return Blocked(
            "cooldown",
            f"cooldown: incident #{last.incident_id} ran {last.strategy} on this pipeline at "
            f"{last.started_at.isoformat()}, less than {cooldown_seconds:g}s ago; "
            "the last fix did not hold",
        )

    async def _circuit(self, target: str, now: datetime) -> Blocked | None:
        c = self.config
        since = now - timedelta(seconds=c.circuit_reset_seconds)
        finished = [
            r
            for r in await self.ledger.actions_since(since, target=target)
            if r.outcome in _FINISHED
        ]
        last = finished[-c.circuit_failure_threshold :]
        if len(last) < c.circuit_failure_threshold or any(r.outcome not in _FAILED for r in last):
            return None
        reopen = last[0].started_at + timedelta(seconds=c.circuit_reset_seconds)
        return Blocked(
            "circuit_open",
            f"circuit open for {target}: its last {len(last)} attempts failed; "
            f"closed again after {reopen.isoformat()}",
        )

    async def _rate_limit(self, now: datetime) -> Blocked | None:
        limit = self.config.rate_limit_per_minute
        started = [
            r
            for r in await self.ledger.actions_since(now - timedelta(seconds=60))
            if r.outcome != "dry_run"
        ]
        if len(started) < limit:
            return None
        return Blocked(
            "rate_limit",
            f"rate limit: {len(started)} actions started in the last minute (limit {limit})",
            transient=True,
        )

    async def _concurrency(self, now: datetime) -> Blocked | None:
        cap = self.config.max_concurrent_actions
        since = now - timedelta(seconds=self.config.lease_seconds)
        running = [r for r in await self.ledger.actions_since(since) if r.outcome == "running"]
        if len(running) < cap:
            return None
        return Blocked(
            "concurrency",
            f"concurrency cap: {len(running)} actions running (cap {cap})",
            transient=True,
        )
