"""The event schema: good events parse, bad ones are refused; errors name the field path."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest
from exporter_helpers import RUN_FINISHED

from exporters.errors import InvalidEventError
from exporters.events import load_schema, parse_events, to_changes
from exporters.events_fast import decode_fast
from exporters.registry import PipelineRegistry

GOOD: list[dict[str, Any]] = [
    RUN_FINISHED,
    {"pipeline": "etl_orders", "event": "run_started"},
    {"pipeline": "a.b:c-d_1", "event": "heartbeat", "memory_bytes": 1e9, "cpu_usage_ratio": 1},
    {"pipeline": "x", "event": "down", "message": "maintenance"},
    {"pipeline": "x", "event": "data_updated", "timestamp": 0},
    {"pipeline": "x", "event": "checkpoint"},
    {"pipeline": "x", "event": "error", "category": "data", "reason": "my_custom", "count": 2},
    {"pipeline": "x", "event": "run_finished", "status": "success", "records_processed": 5.0},
]
BAD: list[Any] = [
    {"pipeline": "x", "event": "run_finished"},
    {"pipeline": "x", "event": "explode"},
    {"event": "heartbeat"},
    {"pipeline": 'a"b', "event": "heartbeat"},
    {"pipeline": "a\nb", "event": "heartbeat"},
    {"pipeline": "pipéline", "event": "heartbeat"},
    {"pipeline": "x", "event": "heartbeat", "status": "success"},
    {"pipeline": "x", "event": "heartbeat", "typo": 1},
    {"pipeline": "x", "event": "heartbeat", "cpu_usage_ratio": 2},
    {"pipeline": "x", "event": "heartbeat", "memory_bytes": True},
    {"pipeline": "x", "event": "run_finished", "status": "success", "records_failed": -1},
    {"pipeline": "x", "event": "run_finished", "status": "success", "records_failed": 1.5},
    {"pipeline": "x", "event": "run_finished", "status": "success", "records_failed": "7"},
    {"pipeline": "x", "event": "run_finished", "status": "failure", "category": "data"},
    {"pipeline": "x", "event": "error", "category": "data"},
    {"pipeline": "x", "event": "error", "category": "weather", "reason": "rain"},
    {"pipeline": "x", "event": "error", "category": "data", "reason": "Bad Reason"},
    {"pipeline": "x", "event": "checkpoint", "timestamp": -5},
    {"pipeline": "x", "event": "checkpoint", "timestamp": 1e300},
    {"pipeline": "x", "event": "down", "message": "m" * 1001},
    [],
    "heartbeat",
    None,
]


def test_the_fast_decoder_agrees_with_jsonschema() -> None:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    slow = jsonschema.Draft202012Validator(schema)
    for doc in [*GOOD, *BAD, GOOD, [GOOD[0], BAD[0]]]:
        if decode_fast(json.dumps(doc).encode()) is not None:
            assert slow.is_valid(doc), doc
    assert all(decode_fast(json.dumps(d).encode()) for d in GOOD[:-1])  # 5.0: the slow way
    assert not any(slow.is_valid(d) for d in BAD)


def test_good_events_parse() -> None:
    assert len(parse_events(json.dumps(GOOD).encode())) == len(GOOD)


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"pipeline": "x", "event": "run_finished"}, "$.status"),
        ({"pipeline": "x", "event": "explode"}, "$.event"),
        ({"event": "heartbeat"}, "$.pipeline"),
        ({"pipeline": 'a"b', "event": "heartbeat"}, "$.pipeline"),
        ({"pipeline": "x", "event": "heartbeat", "status": "success"}, "$.status"),
        ({"pipeline": "x", "event": "heartbeat", "typo": 1}, "$.typo"),
        (
            {"pipeline": "x", "event": "run_finished", "status": "failure", "category": "data"},
            "$.reason",
        ),
        ({"pipeline": "x", "event": "error", "category": "data", "reason": "timeout"}, "$.reason"),
        ([GOOD[0], GOOD[1], GOOD[2], {**GOOD[0], "records_failed": -3}], "$[3].records_failed"),
    ],
)
def test_errors_name_the_field_path(doc: Any, path: str) -> None:
    with pytest.raises(InvalidEventError) as raised:
        parse_events(json.dumps(doc).encode())
    assert path in [p.path for p in raised.value.problems], raised.value.problems


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"pipeline": "x", "event": "heartbeat", "memory_bytes": NaN}', "invalid_json"),
        (b'{"pipeline": "x", "event": "heartbeat", "memory_bytes": Infinity}', "invalid_json"),
        (b'{"pipeline": "x", "event": "heartbeat", "memory_bytes": 1e400}', "schema"),
        (b'{"pipeline": "\xff", "event": "heartbeat"}', "encoding"),
        (b"{", "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (
            b'{"pipeline": "x", "event": "heartbeat", "memory_bytes": 1' + b"0" * 5000 + b"}",
            "invalid_json",
        ),
    ],
)
def test_hostile_bodies(body: bytes, kind: str) -> None:
    with pytest.raises(InvalidEventError) as raised:
        parse_events(body)
    assert raised.value.kind == kind


def test_timestamps_in_the_future_count_as_now(registry: PipelineRegistry) -> None:
    now = registry.clock()
    events = parse_events(
        json.dumps({"pipeline": "x", "event": "heartbeat", "timestamp": now + 1e6}).encode()
    )
    registry.apply(to_changes(events, now))
    state = registry.get("x")
    assert state is not None and state.last_seen == now
    assert not math.isnan(now)
