"""``events.schema.json`` as msgspec types: decode and validate a body in one C pass.

One ``msgspec.json.Decoder`` reads the raw bytes straight into one Struct per
event kind (a tagged union on ``event``; each Struct holds exactly the
fields the schema allows for that kind, so a field the kind forbids, a typo
or a wrong type is a refusal). It is never more permissive than the schema
(``tests/exporters/test_events_fast.py`` checks both agree on valid, hostile
and randomly mutated bodies): a result means the schema accepts the body
too. ``None`` only means "take the slow path" (``events.parse_events``:
strict UTF-8 ``json.loads`` + jsonschema), which names the bad field in the
400, so error bodies and reject reasons are the slow path's.

Stricter than the schema where that is cheaper, never looser: integers must
be JSON integers (``5.0`` goes the slow way), byte counts above 2**62 go the
slow way (msgspec turns a JSON integer into the nearest float before the
bound check, which could round 2**63 + 1 down onto the schema's bound), and
any refusal by msgspec (``NaN``, a lone ``\\ud800`` escape, duplicate
``event`` keys that disagree, nesting) or by the checks msgspec cannot
express (``category`` and ``reason`` given together, a known reason in its
own category) sends the body the slow way. Duplicate keys: every
occurrence is validated and the last one is kept, as ``json.loads`` does.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from exporters import changes
from exporters.changes import Change
from pipemedic.vocabulary import REASON_CAUSE

__all__ = ["EVENT_TYPES", "FastEvent", "decode_fast"]

# Mirrors of events.schema.json's $defs (tests compare them with the schema).
Pipeline = Annotated[str, Meta(pattern="^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")]
Seconds = Annotated[float, Meta(ge=0, le=100000000000.0)]
Count = Annotated[int, Meta(ge=0, le=9007199254740992)]
ErrorCount = Annotated[int, Meta(ge=1, le=9007199254740992)]
Bytes = Annotated[float, Meta(ge=0, le=2**62)]  # schema: 2**63; see the module docstring
Ratio = Annotated[float, Meta(ge=0, le=1)]
Message = Annotated[str, Meta(max_length=1000)]
Reason = Annotated[str, Meta(pattern="^[a-z][a-z0-9_]{0,63}$")]
Category = Literal["connectivity", "data", "resources", "logic"]
Status = Literal["success", "failure"]


class FastEvent(Struct, tag_field="event", forbid_unknown_fields=True, kw_only=True, gc=False):
    """Fields every event kind allows; subclasses add their own (one per ``event`` value)."""

    pipeline: Pipeline
    timestamp: Seconds | UnsetType = UNSET

    def at(self, now: float) -> float:
        """Return the event time; absent or in the future means ``now``."""
        ts = self.timestamp
        return now if ts is UNSET or ts > now else ts

    def change(self, now: float, path: str) -> Change:  # pragma: no cover - abstract
        """Return the registry change this event makes."""
        raise NotImplementedError


class RunStarted(FastEvent, tag="run_started", kw_only=True, gc=False):
    """A run began."""

    def change(self, now: float, path: str) -> Change:
        return changes.run_started(self.pipeline, self.at(now), path)


class RunFinished(FastEvent, tag="run_finished", kw_only=True, gc=False):
    """A run ended, with its counts and, on failure, its category and reason."""

    status: Status
    duration_seconds: Seconds | UnsetType = UNSET
    records_processed: Count = 0
    records_failed: Count = 0
    category: Category | UnsetType = UNSET
    reason: Reason | UnsetType = UNSET
    message: Message | UnsetType = UNSET

    def change(self, now: float, path: str) -> Change:
        duration = self.duration_seconds
        category, reason = self.category, self.reason
        return changes.run_finished(
            self.pipeline,
            self.at(now),
            success=self.status == "success",
            duration=None if duration is UNSET else duration,
            processed=self.records_processed,
            failed=self.records_failed,
            category=None if category is UNSET else category,
            reason=None if reason is UNSET else reason,
            path=path,
        )


class Heartbeat(FastEvent, tag="heartbeat", kw_only=True, gc=False):
    """The pipeline is alive, optionally with its resource usage."""

    memory_bytes: Bytes | UnsetType = UNSET
    memory_limit_bytes: Bytes | UnsetType = UNSET
    disk_free_bytes: Bytes | UnsetType = UNSET
    cpu_usage_ratio: Ratio | UnsetType = UNSET

    def change(self, now: float, path: str) -> Change:
        resources = {
            name: value
            for name, value in (
                ("memory_bytes", self.memory_bytes),
                ("memory_limit_bytes", self.memory_limit_bytes),
                ("disk_free_bytes", self.disk_free_bytes),
                ("cpu_usage_ratio", self.cpu_usage_ratio),
            )
            if value is not UNSET
        }
        return changes.heartbeat(self.pipeline, self.at(now), resources, path)


class Down(FastEvent, tag="down", kw_only=True, gc=False):
    """The pipeline says it is down."""

    message: Message | UnsetType = UNSET

    def change(self, now: float, path: str) -> Change:
        return changes.down(self.pipeline, self.at(now), path)


class DataUpdated(FastEvent, tag="data_updated", kw_only=True, gc=False):
    """The pipeline's output was refreshed."""

    def change(self, now: float, path: str) -> Change:
        return changes.data_updated(self.pipeline, self.at(now), path)


class Checkpoint(FastEvent, tag="checkpoint", kw_only=True, gc=False):
    """A good checkpoint was written."""

    def change(self, now: float, path: str) -> Change:
        return changes.checkpoint(self.pipeline, self.at(now), path)


class Error(FastEvent, tag="error", kw_only=True, gc=False):
    """Errors of one category and reason were counted."""

    category: Category
    reason: Reason
    count: ErrorCount = 1
    message: Message | UnsetType = UNSET

    def change(self, now: float, path: str) -> Change:
        return changes.error(self.pipeline, self.category, self.reason, self.count, path)


EVENT_TYPES: tuple[type[FastEvent], ...] = (
    RunStarted,
    RunFinished,
    Heartbeat,
    Down,
    DataUpdated,
    Checkpoint,
    Error,
)
AnyEvent = RunStarted | RunFinished | Heartbeat | Down | DataUpdated | Checkpoint | Error
Batch = Annotated[list[AnyEvent], Meta(min_length=1, max_length=1000)]

_decode = msgspec.json.Decoder(AnyEvent | Batch).decode
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError, MemoryError)


def _consistent(event: FastEvent) -> bool:
    """Check what msgspec cannot: category and reason together, a known reason's category."""
    category = getattr(event, "category", UNSET)
    reason = getattr(event, "reason", UNSET)
    if category is UNSET and reason is UNSET:
        return True
    if category is UNSET or reason is UNSET:
        return False
    known = REASON_CAUSE.get(reason)
    return known is None or known[0] == category


def decode_fast(body: bytes) -> list[tuple[str, FastEvent]] | None:
    """Return ``(path, event)`` pairs if the schema accepts the body, else ``None``."""
    if not body.isascii():
        try:  # strict UTF-8 everywhere, whatever msgspec checks itself
            body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        decoded = _decode(body)
    except _DECODE_ERRORS:
        return None
    if isinstance(decoded, list):
        items = [(f"$[{i}]", e) for i, e in enumerate(decoded)]
    else:
        items = [("$", decoded)]
    for _, event in items:
        if not _consistent(event):
            return None
    return items
