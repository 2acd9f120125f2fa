"""``events.schema.json`` as msgspec types: one Struct per event kind, the one event model.

:data:`EVENT_TYPES` is the dispatch table: each Struct's tag is its ``event``
value and its ``change`` builds the registry change, so adding an event kind
is one Struct here (plus its schema branch and its ``changes`` function).

One ``msgspec.json.Decoder`` reads the raw bytes straight into these Structs
(a tagged union on ``event``; each Struct holds exactly the fields the schema
allows for that kind, so a field the kind forbids, a typo or a wrong type is
a refusal). It is never more permissive than the schema
(``tests/exporters/test_events_fast.py`` checks both agree on valid, hostile
and randomly mutated bodies): a result means the schema accepts the body
too. ``None`` only means "take the slow path" (``events.parse_events``:
strict UTF-8 ``json.loads`` + jsonschema), which names the bad field in the
400, so error bodies and reject reasons are the slow path's; the events it
accepts are converted into the same Structs (``to_event``).

Stricter than the schema where that is cheaper, never looser: integers must
be JSON integers (``5.0`` goes the slow way), byte counts above 2**62 go the
slow way (msgspec turns a JSON integer into the nearest float before the
bound check, which could round 2**63 + 1 down onto the schema's bound), and
any refusal by msgspec (``NaN``, a lone ``\\ud800`` escape, duplicate
``event`` keys that disagree, nesting) or by the checks msgspec cannot
express (``fast_ok``: ``category`` and ``reason`` given together, a known
reason in its own category, the byte bound) sends the body the slow way.
Duplicate keys: every occurrence is validated and the last one is kept, as
``json.loads`` does.
"""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from exporters import changes
from exporters.changes import Change
from pipemedic.vocabulary import REASON_CAUSE

__all__ = ["EVENT_KINDS", "EVENT_TYPES", "FastEvent", "decode_fast", "to_event"]

# Mirrors of events.schema.json's $defs (tests compare them with the schema).
Pipeline = Annotated[str, Meta(pattern="^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")]
Seconds = Annotated[float, Meta(ge=0, le=100000000000.0)]
Count = Annotated[int, Meta(ge=0, le=9007199254740992)]
ErrorCount = Annotated[int, Meta(ge=1, le=9007199254740992)]
Bytes = Annotated[float, Meta(ge=0, le=2**63)]
# the fast path's own bound: a JSON integer above it may have been rounded down onto 2**63
_FAST_MAX_BYTES = 2**62
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

    def fast_ok(self) -> bool:
        """Check what msgspec cannot (the schema's cross-field rules); False: the slow way."""
        return True


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

    def fast_ok(self) -> bool:
        return _reason_fits(self.category, self.reason)


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

    def fast_ok(self) -> bool:
        used, limit, free = self.memory_bytes, self.memory_limit_bytes, self.disk_free_bytes
        return (
            (used is UNSET or used <= _FAST_MAX_BYTES)
            and (limit is UNSET or limit <= _FAST_MAX_BYTES)
            and (free is UNSET or free <= _FAST_MAX_BYTES)
        )


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

    def fast_ok(self) -> bool:
        return _reason_fits(self.category, self.reason)


EVENT_TYPES: tuple[type[FastEvent], ...] = (
    RunStarted,
    RunFinished,
    Heartbeat,
    Down,
    DataUpdated,
    Checkpoint,
    Error,
)
EVENT_KINDS: tuple[str, ...] = tuple(str(t.__struct_config__.tag) for t in EVENT_TYPES)
# RunStarted | RunFinished | ...: msgspec picks the Struct by the ``event`` tag
_ANY_EVENT: Any = functools.reduce(operator.or_, EVENT_TYPES)
_Batch = Annotated[list[_ANY_EVENT], Meta(min_length=1, max_length=1000)]

_decode = msgspec.json.Decoder(_ANY_EVENT | _Batch).decode
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError, MemoryError)


def _reason_fits(category: str | UnsetType, reason: str | UnsetType) -> bool:
    """Both or neither of category and reason; a known reason in its own category."""
    if category is UNSET or reason is UNSET:
        return category is reason
    known = REASON_CAUSE.get(reason)
    return known is None or known[0] == category


def to_event(event: Any) -> FastEvent:
    """Convert one schema-valid event object (a dict) into its Struct.

    Lax mode takes what the schema admits and the fast decoder does not
    (``5.0`` records); ``msgspec.ValidationError`` for anything else.
    """
    converted: FastEvent = msgspec.convert(event, _ANY_EVENT, strict=False)
    return converted


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
        if not event.fast_ok():
            return None
    return items
