"""``webhook.schema.json`` compiled to msgspec types: the one model of a webhook body.

jsonschema takes milliseconds for a 20-alert notification; ``decode_fast``
reads the raw body straight into these Structs in microseconds. It is never
more permissive than the schema (``tests/receiver/intake/test_webhook_fast.py``
checks both agree on valid and hostile samples): a result means the schema
accepts the body too. ``None`` only means "take the slow path"
(``webhook.decode_body`` + jsonschema), which then names the offending path
in the 400, so error bodies are the slow path's; a body it accepts is
converted into the same Structs (``msgspec.convert``), so both paths build
the ``Notification`` with one constructor (``webhook.to_notification``).

Times are the one rule checked outside msgspec: a ``Meta(pattern=...)``
would run the regex for every time of every alert, while the constructor
checks each *distinct* string of a notification once (``alert_time``: the
alerts of a group share their ``startsAt``, and every firing alert's
``endsAt`` is Go's zero time) and raises ``ValueError`` for a time the
schema refuses, which also sends the body the slow way.

Stricter than the schema where that is cheaper, never looser: integers must
be JSON integers (``1.0`` goes the slow way), times must end the string
(``fullmatch``, where the schema's ``$`` also admits a final newline), and any
refusal by msgspec (``NaN``, a lone ``\\ud800`` escape, nesting past the
recursion limit) sends the body the slow way. msgspec does not check UTF-8
inside the unknown fields it skips, so a non-ASCII body is UTF-8-checked
first. Duplicate keys: every occurrence is validated and the last one is
kept, as ``json.loads`` does.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType, field

from receiver.models import parse_time

__all__ = ["UNSET", "FastAlert", "FastNotification", "alert_time", "decode_fast"]

Status = Literal["firing", "resolved"]
_Name = Annotated[str, Meta(min_length=1, max_length=1024)]
Labels = dict[_Name, Annotated[str, Meta(max_length=65536)]]
Annotations = dict[_Name, Annotated[str, Meta(max_length=262144)]]
Time = str
"""A ``$defs/time`` string, checked by ``alert_time`` (the schema's pattern, anchored)."""
_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


class FastAlert(Struct, gc=False):
    """One alert object as the schema's ``$defs/alert`` admits it (unknown fields ignored).

    ``ends_at`` is ``UNSET`` when the field is absent (the schema refuses ``null``).
    """

    status: Status
    labels: Labels
    starts_at: Time = field(name="startsAt")
    annotations: Annotations = field(default_factory=dict)
    ends_at: Time | UnsetType = field(default=UNSET, name="endsAt")
    fingerprint: Annotated[str, Meta(max_length=128)] = ""
    generator_url: Annotated[str, Meta(max_length=8192)] = field(default="", name="generatorURL")


class FastNotification(Struct, gc=False):
    """A webhook body (payload version 4) as the schema admits it (unknown fields ignored)."""

    version: Literal["4"]
    status: Status
    alerts: list[FastAlert]
    group_key: Annotated[str, Meta(max_length=65536)] = field(default="", name="groupKey")
    truncated_alerts: Annotated[int, Meta(ge=0)] = field(default=0, name="truncatedAlerts")
    receiver: Annotated[str, Meta(max_length=4096)] = ""
    group_labels: Labels = field(default_factory=dict, name="groupLabels")
    common_labels: Labels = field(default_factory=dict, name="commonLabels")
    common_annotations: Annotations = field(default_factory=dict, name="commonAnnotations")
    external_url: Annotated[str, Meta(max_length=8192)] = field(default="", name="externalURL")


_decode = msgspec.json.Decoder(FastNotification).decode


def alert_time(text: str) -> datetime | None:
    """Return the time of a string the schema's pattern admits (anchored); else ``ValueError``.

    ``models.parse_time`` parses it (also ``ValueError`` for an impossible
    one, month 13); the zero time is ``None``.
    """
    if _TIME.fullmatch(text) is None:
        raise ValueError(f"not an RFC 3339 time: {text[:40]!r}")
    return parse_time(text)


def decode_fast(body: bytes) -> FastNotification | None:
    """Return the body as typed structs if the schema accepts it, else ``None`` (slow path)."""
    if not body.isascii():
        try:  # msgspec skips unknown fields without checking their UTF-8
            body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        return _decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, MemoryError):
        return None
