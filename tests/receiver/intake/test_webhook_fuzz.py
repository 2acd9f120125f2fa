"""Fuzz the webhook decoder: any body is a Notification or a PayloadError naming a path.

Hypothesis builds bodies around a real payload's shape (every field, known or
unknown, replaced by arbitrary JSON, times and strings drawn near their
edges) and raw bytes. Properties: nothing but ``PayloadError`` ever comes
out; the fast path never accepts what the schema refuses, and when both
accept they build the same Notification; an accepted alert's times are real.
Bounded in ``make test``; ``HYPOTHESIS_PROFILE=bench`` runs more examples.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.errors import PayloadError
from receiver.intake.webhook import decode_body, parse_body, parse_notification, to_notification
from receiver.intake.webhook_fast import decode_fast
from receiver.models import Notification

settings.register_profile(
    "default", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "bench", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

_EPOCH = datetime.fromtimestamp(0, UTC)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
times = st.sampled_from(
    [
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.123456789+02:00",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "1969-12-31T23:59:59Z",
        "9999-12-31T23:59:59Z",
        "2026-13-01T00:00:00Z",
        "2026-01-01T00:00:00",
        "2026-01-01 00:00:00Z",
        "",
    ]
) | st.text(max_size=30)
labels = st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4)


@st.composite
def alerts(draw: st.DrawFn) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": draw(st.sampled_from(["firing", "resolved", "pending", ""])),
        "labels": draw(labels | json_values),
        "annotations": draw(labels | json_values),
        "startsAt": draw(times | json_values),
        "endsAt": draw(times),
        "generatorURL": draw(st.text(max_size=20)),
        "fingerprint": draw(st.text(max_size=20)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(alert)), max_size=2)):
        alert.pop(key, None)
    alert.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return alert


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    doc: dict[str, Any] = {
        "version": draw(st.sampled_from(["4", "3", 4])),
        "groupKey": draw(st.text(max_size=20)),
        "truncatedAlerts": draw(st.integers(min_value=-2, max_value=2**64) | json_values),
        "status": draw(st.sampled_from(["firing", "resolved", "x"])),
        "receiver": draw(st.text(max_size=10)),
        "groupLabels": draw(labels),
        "commonLabels": draw(labels),
        "commonAnnotations": draw(labels),
        "externalURL": draw(st.text(max_size=10)),
        "alerts": draw(st.lists(alerts(), max_size=4)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(doc)), max_size=2)):
        doc.pop(key, None)
    doc.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()


def _check(body: bytes) -> None:
    try:
        got = parse_body(body)
    except PayloadError as exc:
        assert exc.path  # "$" at least: every refusal names where
        got = None
    fast = decode_fast(body)
    if fast is not None:
        try:
            to_notification(fast)  # the fast path accepts only when this builds too
        except (ValueError, OverflowError):
            fast = None
    try:
        slow: Notification | None = parse_notification(decode_body(body))
    except PayloadError:
        slow = None
    if fast is not None:
        assert slow is not None, "the fast path accepted what the schema refuses"
    assert got == slow
    if got is not None:
        for alert in got.alerts:
            assert alert.starts_at >= _EPOCH
            assert alert.ends_at is None or alert.ends_at >= _EPOCH


@given(bodies())
def test_structured_bodies_decode_or_name_the_problem(body: bytes) -> None:
    _check(body)


@given(st.binary(max_size=300))
def test_raw_bytes_decode_or_name_the_problem(body: bytes) -> None:
    _check(body)
