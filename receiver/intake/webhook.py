"""Parse and validate an Alertmanager webhook body (payload version 4).

The schema (``webhook.schema.json``) accepts every real Alertmanager payload
from 0.25 on, unknown future fields included, and refuses what can never be
valid. A refusal is a ``PayloadError`` naming the field path (``alerts[3].startsAt``).

``parse_body`` first tries ``webhook_fast.decode_fast`` (the schema as msgspec
types, one C pass over the raw bytes); whatever that refuses takes the slow
path, ``decode_body`` + jsonschema, which accepts it or says where it is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from receiver.errors import PayloadError
from receiver.intake.webhook_fast import (
    UNSET,
    FastAlert,
    FastNotification,
    alert_time,
    decode_fast,
    fast_time,
)
from receiver.models import Alert, Notification, parse_time

__all__ = [
    "SCHEMA_PATH",
    "decode_body",
    "fast_time",
    "parse_body",
    "parse_notification",
    "schema_validator",
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


def decode_body(body: bytes) -> Any:
    """Decode strict UTF-8 JSON; ``PayloadError`` says why it is not."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 (byte {exc.start})", "$") from None
    try:
        doc = json.loads(text)
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


def _fallback_fingerprint(alert: Alert) -> str:
    """Hash the sorted labels when a sender left ``fingerprint`` out."""
    text = json.dumps(sorted(alert.labels.items()), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


_EPOCH = datetime.fromtimestamp(0, UTC)


def _alert(doc: dict[str, Any]) -> Alert:
    """Build an ``Alert`` from a schema-valid alert object (as ``Alert.from_json``)."""
    return Alert(
        doc["status"],
        doc.get("labels") or {},
        doc.get("annotations") or {},
        fast_time(doc.get("startsAt")) or _EPOCH,
        fast_time(doc.get("endsAt")),
        doc.get("fingerprint") or "",
        doc.get("generatorURL") or "",
    )


def _notification(doc: dict[str, Any]) -> Notification:
    """Build the ``Notification`` of a schema-valid body (as ``Notification.from_json``).

    The decoded dicts are fresh and owned by this request, so they are used
    as they are instead of being copied.
    """
    return Notification(
        doc.get("receiver", ""),
        doc["status"],
        tuple(_alert(a) for a in doc.get("alerts") or ()),
        doc.get("groupLabels") or {},
        doc.get("commonLabels") or {},
        doc.get("commonAnnotations") or {},
        doc.get("externalURL", ""),
        doc.get("groupKey", ""),
        int(doc.get("truncatedAlerts") or 0),
    )


def _fast_alert(a: FastAlert) -> Alert:
    ends = a.ends_at
    return Alert(
        a.status,
        a.labels,
        a.annotations,
        alert_time(a.starts_at) or _EPOCH,
        None if ends is UNSET else alert_time(ends),
        a.fingerprint,
        a.generator_url,
    )


def _fast_notification(n: FastNotification) -> Notification:
    """Build the ``Notification`` of a decoded body (the same one the slow path builds)."""
    return Notification(
        n.receiver,
        n.status,
        tuple(map(_fast_alert, n.alerts)),
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
            notification = _fast_notification(fast)
        except (ValueError, OverflowError):
            pass  # a time the schema refuses, or an impossible one: the slow path names it
        else:
            return _with_fingerprints(notification)
    return parse_notification(decode_body(body))


def _with_fingerprints(notification: Notification) -> Notification:
    """Give every alert without a ``fingerprint`` the hash of its labels (usually none)."""
    if all(a.fingerprint for a in notification.alerts):
        return notification
    alerts = tuple(
        a if a.fingerprint else replace(a, fingerprint=_fallback_fingerprint(a))
        for a in notification.alerts
    )
    return replace(notification, alerts=alerts)


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
        notification = _notification(doc)
    except (ValueError, OverflowError) as exc:
        # the pattern admits e.g. month 13; say which alert's time is impossible
        for i, alert in enumerate(doc["alerts"]):
            for key in ("startsAt", "endsAt"):
                try:
                    parse_time(alert.get(key))
                except (ValueError, OverflowError):
                    raise PayloadError(f"impossible time: {exc}", f"alerts[{i}].{key}") from None
        raise PayloadError(f"invalid payload: {exc}", "$") from None
    return _with_fingerprints(notification)
