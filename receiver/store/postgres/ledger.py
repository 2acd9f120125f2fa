"""The action ledger on PostgreSQL: exactly-once claims of recovery steps.

A step is one row keyed by (incident_id, step). The first ``begin_action``
inserts it and wins; every later one loses, unless the row is still
``running`` and its lease ran out on the database's clock (the worker died
mid-action), in which case the caller takes it over. A living worker keeps
its lease with ``renew_action`` while the step runs. The caller (the
recoverer) writes the takeover to the incident's timeline as
``action_taken_over``, the same on every store, so it is written once.

These functions take an asyncpg connection inside a transaction;
``PostgresStore`` supplies it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from receiver.models import ActionRecord
from receiver.store.base import StoreError
from receiver.store.postgres import sql

__all__ = [
    "LATE_RESULT_EVENT",
    "TAKEOVER_EVENT",
    "action_from_row",
    "action_values",
    "actions_since",
    "begin_action",
    "end_action",
    "json_text",
    "renew_action",
]

# Timeline event the recoverer writes when it takes over a step whose lease ran out.
TAKEOVER_EVENT = "action_taken_over"
# Timeline event for an outcome reported by a worker that had lost its claim.
LATE_RESULT_EVENT = "action_result_after_takeover"


def json_text(value: Any) -> str:
    """Encode a timeline detail the same way every time, so entries compare as text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def action_values(record: ActionRecord) -> tuple[Any, ...]:
    """Return the 14 parameters of the ledger INSERTs, in ``ActionRecord`` field order."""
    return (
        record.incident_id,
        record.step,
        record.pipeline,
        record.strategy,
        record.action,
        record.target,
        record.started_at,
        record.ended_at,
        record.outcome,
        record.retryable,
        record.verified,
        record.detail,
        record.worker,
        record.diagnosis,
    )


def action_from_row(row: Any) -> ActionRecord:
    return ActionRecord(
        incident_id=int(row["incident_id"]),
        step=row["step"],
        pipeline=row["pipeline"],
        strategy=row["strategy"],
        action=row["action"],
        target=row["target"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        outcome=row["outcome"],
        retryable=bool(row["retryable"]),
        verified=row["verified"],
        detail=row["detail"],
        worker=row["worker"],
        diagnosis=row["diagnosis"],
    )


async def note(conn: Any, incident_id: int, at: datetime, event: str, detail: Any) -> None:
    """Append a ledger event to the incident's timeline (if the incident exists).

    ``at`` comes from the worker's clock, like every other timeline entry.
    """
    await conn.execute(sql.NOTE_TIMELINE, incident_id, at, event, json_text(detail))


async def begin_action(conn: Any, record: ActionRecord, lease_seconds: float) -> bool:
    """Claim ``(incident_id, step)`` for ``record.worker``; see the module docstring."""
    lease = float(lease_seconds)
    if await conn.fetchval(sql.CLAIM_ACTION, *action_values(record), lease):
        return True
    held = await conn.fetchrow(sql.HELD_ACTION, record.incident_id, record.step)
    if held is None or held["outcome"] != "running" or not held["expired"]:
        return False
    await conn.execute(
        sql.TAKE_OVER_ACTION,
        record.incident_id,
        record.step,
        record.pipeline,
        record.strategy,
        record.action,
        record.target,
        record.started_at,
        record.retryable,
        record.detail,
        record.worker,
        lease,
        record.diagnosis,
    )
    return True


async def renew_action(conn: Any, record: ActionRecord, lease_seconds: float) -> bool:
    """Extend ``record.worker``'s lease on its running step (database clock); False if lost."""
    found = await conn.fetchval(
        sql.RENEW_ACTION, record.incident_id, record.step, record.worker, float(lease_seconds)
    )
    return bool(found)


async def end_action(conn: Any, record: ActionRecord) -> None:
    """Store the outcome if ``record.worker`` still holds the claim, else log it.

    A step that was never begun is a ``StoreError``: outcomes without a claim
    would bypass the exactly-once guarantee.
    """
    stored = await conn.fetchval(
        sql.END_ACTION,
        record.incident_id,
        record.step,
        record.ended_at,
        record.outcome,
        record.retryable,
        record.verified,
        record.detail,
        record.worker,
    )
    if stored:
        return
    if not await conn.fetchval(sql.ACTION_EXISTS, record.incident_id, record.step):
        raise StoreError(f"action {record.step!r} of incident {record.incident_id} was never begun")
    # Another worker took the step over: its claim stays, this result goes on record.
    detail = {"step": record.step, "worker": record.worker, "outcome": record.outcome}
    at = record.ended_at or record.started_at
    await note(conn, record.incident_id, at, LATE_RESULT_EVENT, detail)


async def actions_since(
    conn: Any, since: datetime, pipeline: str | None, target: str | None
) -> Sequence[ActionRecord]:
    rows = await conn.fetch(sql.ACTIONS_SINCE, since, pipeline, target)
    return [action_from_row(r) for r in rows]
