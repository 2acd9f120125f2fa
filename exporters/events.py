"""Parse, validate and translate ``POST /events`` bodies into registry changes.

The event format is documented in README.md ("Any language") and written down as a
JSON Schema in ``exporters/schema/events.schema.json``. A body is one event
or a list of them; every problem is reported with its field path
(``$[3].records_failed``), and a body with any problem yields no change at
all, so a rejected batch applies nothing.

Example::

    events = parse_events(body_bytes)                 # InvalidEventError on any problem
    registry.apply(to_changes(events, now=time.time()))
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import msgspec

from exporters.changes import Change
from exporters.errors import FieldProblem, InvalidEventError
from exporters.events_fast import EVENT_KINDS, decode_fast, to_event
from pipemedic.vocabulary import REASON_CAUSE
from pipemedic.vocabulary.metrics import LABEL_VALUE_PATTERN

__all__ = [
    "EVENT_KINDS",
    "MAX_PROBLEMS",
    "SCHEMA_PATH",
    "load_schema",
    "parse_changes",
    "parse_events",
    "to_changes",
]

MAX_PROBLEMS = 20
SCHEMA_PATH = Path(__file__).with_name("schema") / "events.schema.json"
_EXTRA = re.compile(r"'([^']*)'")


@cache
def load_schema() -> dict[str, Any]:
    """Return the events JSON Schema shipped with the package."""
    text = SCHEMA_PATH.read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _event_schema() -> dict[str, Any]:
    schema = {k: v for k, v in load_schema().items() if k != "oneOf"}
    schema["$ref"] = "#/$defs/event"
    return schema


@cache
def _event_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_event_schema())


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


# One decoder for every body: ``json.loads(text, parse_constant=...)`` would build a
# new decoder (and its scanner, a reference cycle for the GC) on every request.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode_body(body: bytes) -> Any:
    """Decode UTF-8 JSON strictly: invalid UTF-8, NaN and Infinity are errors."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEventError(
            [FieldProblem("$", f"body is not valid UTF-8 (bad byte at offset {exc.start})")],
            kind="encoding",
        ) from None
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise InvalidEventError([FieldProblem("$", message)], kind="invalid_json") from None
    except (ValueError, RecursionError) as exc:
        problem = FieldProblem("$", f"invalid JSON: {exc}")
        raise InvalidEventError([problem], kind="invalid_json") from None


def _join(base: str, parts: Iterator[str | int] | Any) -> str:
    out = base
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _as_any(value: object) -> Any:
    return value


@cache
def _forbidden() -> dict[str, frozenset[str]]:
    """Map each event kind to the fields the schema refuses for it (``false`` schemas)."""
    out: dict[str, frozenset[str]] = {}
    for branch in load_schema()["$defs"]["event"]["allOf"]:
        kind = branch["if"]["properties"]["event"]["const"]
        props = branch["then"].get("properties", {})
        out[kind] = frozenset(k for k, v in props.items() if v is False)
    return out


def _problems(
    error: jsonschema.ValidationError, base: str, event: Mapping[str, Any]
) -> list[FieldProblem]:
    """Turn one schema error into problems that name the exact field and say why."""
    path = _join(base, error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, Mapping):
        missing = [f for f in _as_any(error.validator_value) if f not in instance]
        return [FieldProblem(f"{path}.{f}", "is required") for f in missing]
    if error.validator == "additionalProperties" and isinstance(instance, Mapping):
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        extra = sorted(str(k) for k in instance if k not in known)
        return [FieldProblem(f"{path}.{k}", "unknown field") for k in extra]
    if error.validator == "dependentRequired" and isinstance(instance, Mapping):
        return [
            FieldProblem(f"{path}.{m}", f"is required when {k} is given")
            for k, needed in _as_any(error.validator_value).items()
            if k in instance
            for m in needed
            if m not in instance
        ]
    if error.schema is False:  # jsonschema loses the field name here; find it again
        kind = event.get("event")
        bad = sorted(k for k in event if k in _forbidden().get(str(kind), ()))
        return [FieldProblem(f"{base}.{k}", f"is not used by a {kind} event") for k in bad]
    if error.validator == "pattern" and path.endswith(".pipeline"):
        return [
            FieldProblem(
                path,
                f"{instance!r} is not a pipeline name (must match "
                f"{LABEL_VALUE_PATTERN}: no quotes, spaces, newlines or non-ASCII)",
            )
        ]
    return [FieldProblem(path, error.message)]


def _semantic(event: Mapping[str, Any], base: str) -> list[FieldProblem]:
    """Check what the schema cannot: a known reason belongs to its category."""
    reason = event.get("reason")
    category = event.get("category")
    known = REASON_CAUSE.get(reason) if isinstance(reason, str) else None
    if known is not None and category is not None and known[0] != category:
        return [
            FieldProblem(
                f"{base}.reason",
                f"reason {reason!r} belongs to category {known[0]!r}, not {category!r}",
            )
        ]
    return []


def validate(document: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """Return ``(path, event)`` pairs, or raise with every problem (up to MAX_PROBLEMS).

    The slow path: ``parse_changes`` only comes here for a body the msgspec
    decoder refused, so this is where refusals get their field paths.
    """
    if isinstance(document, list):
        if not document:
            raise InvalidEventError([FieldProblem("$", "an empty list has no events")])
        if len(document) > 1000:
            raise InvalidEventError(
                [FieldProblem("$", f"{len(document)} events; at most 1000 per request")]
            )
        items = [(f"$[{i}]", e) for i, e in enumerate(document)]
    else:
        items = [("$", document)]
    validator = _event_validator()
    problems: list[FieldProblem] = []
    for base, event in items:
        if not isinstance(event, dict):
            problems.append(FieldProblem(base, "an event must be a JSON object"))
            continue
        errors = list(validator.iter_errors(event))
        if not errors:
            problems += _semantic(event, base)
            continue
        for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
            for problem in _problems(error, base, event):
                if problem not in problems:
                    problems.append(problem)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise InvalidEventError(problems[:MAX_PROBLEMS])
    return items


def parse_events(body: bytes) -> list[tuple[str, Mapping[str, Any]]]:
    """Decode and validate a body; InvalidEventError names each bad field path."""
    return validate(decode_body(body))


def parse_changes(body: bytes, now: float) -> list[Change]:
    """Decode, validate and translate a body; InvalidEventError names each bad field path.

    Bodies the schema accepts decode in one msgspec pass (``events_fast``);
    anything that pass refuses is decoded again the slow way, which either
    accepts it too (``5.0`` records) or names the problem.
    """
    fast = decode_fast(body)
    if fast is not None:
        return [event.change(now, path) for path, event in fast]
    return to_changes(parse_events(body), now)


def to_changes(events: list[tuple[str, Mapping[str, Any]]], now: float) -> list[Change]:
    """Translate validated events into registry changes; times in the future become now.

    Each event is converted into its Struct (``events_fast.EVENT_TYPES``, the
    one table of event kinds), whose ``change`` is the one the fast path uses.
    """
    out: list[Change] = []
    for path, event in events:
        try:
            out.append(to_event(event).change(now, path))
        except msgspec.ValidationError as exc:  # not schema-valid: parse_events refuses it
            raise InvalidEventError([FieldProblem(path, str(exc))]) from None
    return out
