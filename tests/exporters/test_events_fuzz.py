"""Fuzz POST /events' decoder: any body is a list of changes or an InvalidEventError.

Hypothesis builds event bodies (one object or a list) from the schema's field
names with arbitrary JSON values near their edges, plus raw bytes.
Properties: nothing but ``InvalidEventError`` comes out, each refusal names a
field path, and the fast path never accepts what the jsonschema path refuses
(when both accept, they make the same changes). Bounded in ``make test``;
``HYPOTHESIS_PROFILE=bench`` runs more examples.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporters.changes import Change
from exporters.errors import InvalidEventError
from exporters.events import parse_changes, parse_events, to_changes
from exporters.events_fast import EVENT_KINDS, decode_fast
from exporters.registry import PipelineRegistry

settings.register_profile(
    "default", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "bench", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

NOW = 1_800_000_000.0
_FIELDS = [
    "pipeline", "status", "duration_seconds", "records_processed", "records_failed",
    "category", "reason", "timestamp", "count", "memory_bytes", "memory_limit_bytes",
    "disk_free_bytes", "bytes",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["etl_orders", "success", "failure", "timeout", "data", "", "a" * 200])
    | st.text(max_size=16)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {"event": draw(st.sampled_from([*EVENT_KINDS, "nope"]))}
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=6, unique=True)):
        event[name] = draw(json_values)
    if draw(st.booleans()):
        event["pipeline"] = draw(st.sampled_from(["etl_orders", "x.y:z-1", "bad name", ""]))
    return event


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    doc: Any = draw(events() | st.lists(events(), max_size=4) | json_values)
    return json.dumps(doc).encode()


def _state(batch: list[Change]) -> list[dict[str, Any]]:
    """What a batch does to a fresh registry (changes are closures: compare their effect)."""
    registry = PipelineRegistry(clock=lambda: NOW)
    registry.apply(batch)
    return sorted(registry.snapshot(), key=lambda d: str(d["name"]))


def _slow(body: bytes) -> list[Change] | None:
    try:
        return to_changes(parse_events(body), NOW)
    except InvalidEventError:
        return None


def _check(body: bytes) -> None:
    try:
        got: list[Change] | None = parse_changes(body, NOW)
    except InvalidEventError as exc:
        assert exc.problems
        got = None
    slow = _slow(body)
    if decode_fast(body) is not None:
        assert slow is not None, "the fast path accepted what the schema refuses"
    assert (got is None) == (slow is None)
    if got is not None and slow is not None:
        assert _state(got) == _state(slow)


@given(bodies())
def test_structured_bodies_decode_or_name_the_problem(body: bytes) -> None:
    _check(body)


@given(st.binary(max_size=300))
def test_raw_bytes_decode_or_name_the_problem(body: bytes) -> None:
    _check(body)
