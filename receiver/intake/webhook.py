"""Parse and validate an Alertmanager webhook body (payload version 4).

The schema (``webhook.schema.json``) accepts every real Alertmanager payload
from 0.25 on, unknown future fields included, and refuses what can never be
valid. A refusal is a ``PayloadError`` naming the field path (``alerts[3].startsAt``).

``parse_body`` first tries ``webhook_fast.decode_fast`` (the schema as msgspec
types, one C pass over the raw bytes); whatever that refuses takes the slow
path, ``decode_body`` + jsonschema, which accepts it or says where it is wrong.
A body the schema accepts is converted into the same msgspec types, so
``to_notification`` builds every ``Notification`` whichever path decoded it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import msgspec

from receiver.errors import PayloadError
from receiver.intake.webhook_fast import UNSET, FastNotification, alert_time, decode_fast
from receiver.models import Alert, Notification

__all__ = [
    "SCHEMA_PATH",
    "decode_body",
    "parse_body",
    "parse_notification",
    "schema_validator",
    "to_notification",
]

SCHEMA_PATH = Path(__file__).with_name("webhook.schema.json")


@cache
def schema_validator() -> jsonschema.Draft202012Validator:
    """Return the compiled validator for ``webhook.schema.json`` (loaded once)."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _dotted(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"


# a \uD800-\uDFFF escape: JSON admits it, but alone it is no character (Go's
# encoder never writes one) and it could not be stored as UTF-8 text.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_constant(token: str) -> Any:
    raise PayloadError(f"invalid JSON: {token} is not a JSON number", "$")


def decode_body(body: bytes) -> Any:
    """Decode strict UTF-8 JSON; ``PayloadError`` says why it is not.

    Strict means standard: ``NaN``, ``Infinity`` and ``-Infinity``, which
    Python's ``json`` accepts by default, are refused wherever they stand
    (unknown fields included), as Alertmanager never writes them.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 (byte {exc.start})", "$") from None
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", "$"
        ) from None
    except RecursionError:
        raise PayloadError("invalid JSON: nested too deeply", "$") from None
    if "\\u" in text and _SURROGATE.search(text) is not None:
        try:  # a pair is one character; only a lone half cannot be encoded
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            message = "a \\u escape is a lone UTF-16 surrogate, not a character"
            raise PayloadError(message, "$") from None
    return doc


def _fallback_fingerprint(labels: Mapping[str, str]) -> str:
    """Hash the sorted labels when a sender left ``fingerprint`` out."""
    text = json.dumps(sorted(labels.items()), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


_EPOCH = datetime.fromtimestamp(0, UTC)
_MISS = datetime.min


def _in_range(at: datetime | None, key: str) -> datetime | None:
    """Refuse a time no alert can have: a zero or pre-1970 ``startsAt``, a pre-1970 ``endsAt``.

    Go's zero time (``0001-01-01T00:00:00``, in any offset) means "no end" in
    ``endsAt``; in ``startsAt`` it would be stored as 1970.
    """
    if at is None:
        if key == "startsAt":
            raise ValueError("startsAt is the zero time: an alert has a start")
        return None
    if at < _EPOCH:
        raise ValueError(f"{key} is before 1970-01-01")
    return at


# Go's zero time, Alertmanager's endsAt of every firing alert: no time at all
_ZERO_TIME = "0001-01-01T00:00:00Z"


def to_notification(n: FastNotification) -> Notification:
    """Build the ``Notification`` of a decoded body: the one constructor of both paths.

    Each distinct time string of the body is checked and parsed once
    (``alert_time``; ``ValueError`` for one the schema refuses or an
    impossible one): the alerts of a group share their ``startsAt``. Each
    alert's times must be in range (``_in_range``, ``ValueError`` too). An
    alert without a ``fingerprint`` gets the hash of its labels. The decoded
    dicts are fresh and owned by this request, so they are used as they are.
    """
    times: dict[str, datetime | None] = {_ZERO_TIME: None}
    alerts = []
    for a in n.alerts:
        starts = times.get(a.starts_at, _MISS)
        if starts is _MISS:
            starts = times[a.starts_at] = alert_time(a.starts_at)
        starts = _in_range(starts, "startsAt")
        assert starts is not None  # _in_range refuses a start that is no time
        if a.ends_at is UNSET:
            ends = None
        else:
            ends = times.get(a.ends_at, _MISS)
            if ends is _MISS:
                ends = times[a.ends_at] = alert_time(a.ends_at)
            ends = _in_range(ends, "endsAt")
        alerts.append(
            Alert(
                a.status,
                a.labels,
                a.annotations,
                starts,
                ends,
                a.fingerprint or _fallback_fingerprint(a.labels),
                a.generator_url,
            )
        )
    return Notification(
        n.receiver,
        n.status,
        tuple(alerts),
        n.group_labels,
        n.common_labels,
        n.common_annotations,
        n.external_url,
        n.group_key,
        n.truncated_alerts,
    )


def parse_body(body: bytes) -> Notification:
    """Decode, validate and build the ``Notification`` of a raw body, or raise ``PayloadError``."""
    fast = decode_fast(body)
    if fast is not None:
        try:
            return to_notification(fast)
        except (ValueError, OverflowError):
            pass  # a time the schema refuses, or an impossible one: the slow path names it
    return parse_notification(decode_body(body))


def parse_notification(doc: Any) -> Notification:
    """Validate a decoded body against the schema and build a ``Notification``."""
    error = next(iter(schema_validator().iter_errors(doc)), None)
    if error is not None:
        best = jsonschema.exceptions.best_match([error]) or error
        message = best.message
        if len(message) > 300:
            message = message[:300] + "..."
        raise PayloadError(message, _dotted(best.absolute_path))
    try:
        return to_notification(msgspec.convert(doc, FastNotification, strict=False))
    except (ValueError, OverflowError, msgspec.ValidationError) as exc:
        # the pattern admits e.g. month 13; say which alert's time is impossible
        for i, alert in enumerate(doc["alerts"]):
            for key in ("startsAt", "endsAt"):
                try:
                    if key in alert:
                        _in_range(alert_time(alert[key]), key)
                except (ValueError, OverflowError) as bad:
                    raise PayloadError(f"impossible time: {bad}", f"alerts[{i}].{key}") from None
        raise PayloadError(f"invalid payload: {exc}", "$") from None
