"""An in-memory ActionLedger honouring the store contract, for recovery unit tests.

Same rules as ``receiver.store.base.ActionLedger``: ``(incident_id, step)`` is
claimed once; a claim whose lease ran out (still ``running``) may be taken
again; ``renew_action`` extends a running step's lease for its own worker;
``end_action`` of a step never begun is an error; ``actions_since`` returns
oldest first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from receiver.models import ActionRecord, utcnow


class InMemoryLedger:
    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self.clock = clock
        self.rows: dict[tuple[int, str], tuple[ActionRecord, datetime | None]] = {}
        self.claims = 0

    async def begin_action(self, record: ActionRecord, lease_seconds: float) -> bool:
        key = (record.incident_id, record.step)
        now = self.clock()
        found = self.rows.get(key)
        if found is not None:
            old, lease_until = found
            if old.outcome != "running" or lease_until is None or lease_until > now:
                return False
        self.rows[key] = (record, now + timedelta(seconds=lease_seconds))
        self.claims += 1
        return True

    async def renew_action(self, record: ActionRecord, lease_seconds: float) -> bool:
        key = (record.incident_id, record.step)
        found = self.rows.get(key)
        if found is None or found[0].outcome != "running" or found[0].worker != record.worker:
            return False
        self.rows[key] = (found[0], self.clock() + timedelta(seconds=lease_seconds))
        return True

    async def end_action(self, record: ActionRecord) -> None:
        key = (record.incident_id, record.step)
        if key not in self.rows:
            raise KeyError(f"action {record.step!r} of incident {record.incident_id} never begun")
        self.rows[key] = (record, None)

    async def actions_since(
        self, since: datetime, *, pipeline: str | None = None, target: str | None = None
    ) -> Sequence[ActionRecord]:
        out = [
            r
            for r, _ in self.rows.values()
            if r.started_at >= since
            and (pipeline is None or r.pipeline == pipeline)
            and (target is None or r.target == target)
        ]
        return sorted(out, key=lambda r: r.started_at)

    def all(self) -> list[ActionRecord]:
        return sorted((r for r, _ in self.rows.values()), key=lambda r: r.started_at)
