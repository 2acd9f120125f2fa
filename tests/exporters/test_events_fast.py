"""The msgspec decoder (``events_fast``) never accepts what the schema path refuses.

Every sample goes through both paths: the slow one (strict UTF-8 ``json.loads``
+ jsonschema, ``parse_events`` + ``to_changes``) and the fast one
(``decode_fast`` + ``FastEvent.change``). When the fast one accepts, the slow
one must accept too and leave a registry in the very same state; valid
real-world bodies must take the fast path.
"""

from __future__ import annotations

import json
import random
import typing
from typing import Any

import msgspec
import pytest
from exporter_helpers import RUN_FINISHED as README_EVENT

from exporters.errors import InvalidEventError
from exporters.events import load_schema, parse_changes, parse_events, to_changes
from exporters.events_fast import EVENT_TYPES, FastEvent, decode_fast
from exporters.registry import PipelineRegistry

NOW = 1_800_000_000.0


def _state(batch: list[Any]) -> list[dict[str, Any]]:
    registry = PipelineRegistry(clock=lambda: NOW)
    registry.apply(batch)
    return sorted(registry.snapshot(), key=lambda d: str(d["name"]))


def _slow(body: bytes) -> list[dict[str, Any]] | None:
    try:
        return _state(to_changes(parse_events(body), NOW))
    except InvalidEventError:
        return None


def _agree(body: bytes) -> bool:
    """Assert the fast path is no looser than the slow one; return whether it accepted."""
    fast = decode_fast(body)
    slow = _slow(body)
    if fast is None:
        return False
    assert slow is not None, body[:200]
    assert _state([e.change(NOW, p) for p, e in fast]) == slow, body[:200]
    assert [c.path for c in parse_changes(body, NOW)] == [p for p, _ in fast]
    return True


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


RUN_FINISHED: dict[str, Any] = {**README_EVENT, "message": "upstream timed out ✓"}
VALID: list[Any] = [
    RUN_FINISHED,
    {"pipeline": "etl_orders", "event": "run_started", "timestamp": 0},
    {"pipeline": "etl_orders", "event": "run_finished", "status": "success"},
    {"pipeline": "a.b:c-d_1", "event": "heartbeat", "memory_bytes": 1e9, "cpu_usage_ratio": 1},
    {
        "pipeline": "x",
        "event": "heartbeat",
        "memory_bytes": 0,
        "memory_limit_bytes": 2**62,
        "disk_free_bytes": 12.5,
        "cpu_usage_ratio": 0.0,
        "timestamp": NOW + 3600,  # in the future: becomes now
    },
    {"pipeline": "x", "event": "down", "message": "m" * 1000},
    {"pipeline": "x", "event": "down", "message": "\U0001f600" * 1000},
    {"pipeline": "x", "event": "data_updated", "timestamp": 1e11},
    {"pipeline": "x", "event": "checkpoint"},
    {"pipeline": "x", "event": "error", "category": "data", "reason": "my_custom", "count": 2},
    {"pipeline": "x", "event": "error", "category": "connectivity", "reason": "timeout"},
    {"pipeline": "x" * 128, "event": "run_started"},
    [RUN_FINISHED, {"pipeline": "y", "event": "heartbeat"}, {"pipeline": "x", "event": "down"}],
    [{"pipeline": f"p{i}", "event": "checkpoint"} for i in range(1000)],
]
INVALID: list[Any] = [
    {"pipeline": "x", "event": "run_finished"},
    {"pipeline": "x", "event": "explode"},
    {"pipeline": "x", "event": None},
    {"pipeline": "x"},
    {"event": "heartbeat"},
    {"pipeline": "", "event": "heartbeat"},
    {"pipeline": "x" * 129, "event": "heartbeat"},
    {"pipeline": 'a"b', "event": "heartbeat"},
    {"pipeline": "a\nb", "event": "heartbeat"},
    {"pipeline": "pipéline", "event": "heartbeat"},
    {"pipeline": 5, "event": "heartbeat"},
    {"pipeline": "x", "event": "heartbeat", "status": "success"},
    {"pipeline": "x", "event": "heartbeat", "typo": 1},
    {"pipeline": "x", "event": "heartbeat", "message": "hi"},
    {"pipeline": "x", "event": "heartbeat", "cpu_usage_ratio": 2},
    {"pipeline": "x", "event": "heartbeat", "memory_bytes": True},
    {"pipeline": "x", "event": "heartbeat", "memory_bytes": -1},
    {"pipeline": "x", "event": "heartbeat", "memory_bytes": 2**63 + 1},
    {"pipeline": "x", "event": "heartbeat", "memory_bytes": "5"},
    {"pipeline": "x", "event": "run_started", "message": "m"},
    {"pipeline": "x", "event": "run_started", "timestamp": None},
    {"pipeline": "x", "event": "run_finished", "status": "success", "records_failed": -1},
    {"pipeline": "x", "event": "run_finished", "status": "success", "records_failed": 1.5},
    {"pipeline": "x", "event": "run_finished", "status": "success", "records_failed": "7"},
    {"pipeline": "x", "event": "run_finished", "status": "success", "records_failed": 2**53 + 1},
    {"pipeline": "x", "event": "run_finished", "status": "success", "count": 1},
    {"pipeline": "x", "event": "run_finished", "status": "SUCCESS"},
    {"pipeline": "x", "event": "run_finished", "status": "failure", "category": "data"},
    {"pipeline": "x", "event": "run_finished", "status": "failure", "reason": "timeout"},
    {
        "pipeline": "x",
        "event": "run_finished",
        "status": "failure",
        "category": "data",
        "reason": "timeout",  # a connectivity reason
    },
    {"pipeline": "x", "event": "error", "category": "data"},
    {"pipeline": "x", "event": "error", "reason": "x"},
    {"pipeline": "x", "event": "error", "category": "weather", "reason": "rain"},
    {"pipeline": "x", "event": "error", "category": "data", "reason": "Bad Reason"},
    {"pipeline": "x", "event": "error", "category": "data", "reason": "x", "count": 0},
    {"pipeline": "x", "event": "error", "category": "logic", "reason": "timeout"},
    {"pipeline": "x", "event": "checkpoint", "timestamp": -5},
    {"pipeline": "x", "event": "checkpoint", "timestamp": 1e300},
    {"pipeline": "x", "event": "checkpoint", "timestamp": 1e11 + 1},
    {"pipeline": "x", "event": "down", "message": "m" * 1001},
    {"pipeline": "x", "event": "down", "message": None},
    {"pipeline": "x", "event": "data_updated", "message": "m"},
    [],
    [{"pipeline": "x", "event": "down"}, {"pipeline": "x", "event": "run_finished"}],
    [{"pipeline": "x", "event": "down"}, "heartbeat"],
    [{"pipeline": f"p{i}", "event": "checkpoint"} for i in range(1001)],
    [[{"pipeline": "x", "event": "down"}]],
    "heartbeat",
    None,
    5,
]


@pytest.mark.parametrize("doc", VALID)
def test_valid_bodies_take_the_fast_path_and_change_what_the_slow_one_changes(doc: Any) -> None:
    for body in (_dumps(doc), json.dumps(doc, ensure_ascii=False).encode()):
        assert _slow(body) is not None
        assert _agree(body), body[:200]


@pytest.mark.parametrize("doc", INVALID)
def test_the_fast_path_refuses_what_the_schema_refuses(doc: Any) -> None:
    body = _dumps(doc)
    assert decode_fast(body) is None
    assert _slow(body) is None
    with pytest.raises(InvalidEventError):
        parse_changes(body, NOW)


_HB = b'{"pipeline":"x","event":"heartbeat"'


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"pipeline":"\xff","event":"down"}', id="invalid-utf8"),
        pytest.param(_HB + b',"x":"\xff"}', id="invalid-utf8-in-unknown-field"),
        pytest.param(b'{"pipeline":"x","event":"down","message":"\xc0\x80"}', id="overlong"),
        pytest.param(b'{"pipeline":"x","event":"down","message":"\xed\xa0\x80"}', id="surrogate"),
        pytest.param(_HB + b',"memory_bytes":NaN}', id="nan"),
        pytest.param(_HB + b',"memory_bytes":-Infinity}', id="minus-infinity"),
        pytest.param(_HB + b',"memory_bytes":1e400}', id="overflowing-float"),
        pytest.param(_HB + b',"memory_bytes":1' + b"0" * 5000 + b"}", id="int-past-4300-digits"),
        pytest.param(_HB + b',"memory_bytes":5,"event":"down"}', id="duplicate-event-last-down"),
        pytest.param(_HB + b',"pipeline":"a b"}', id="duplicate-key-last-invalid"),
        pytest.param(_HB + b',"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}", id="deep-unknown"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep-lists"),
        pytest.param(b"[" * 500_000, id="deep-unclosed"),
        pytest.param(_HB + b"}x", id="trailing-garbage"),
        pytest.param(b"\xef\xbb\xbf" + _HB + b"}", id="utf8-bom"),
        pytest.param(b'{"pipeline":"x\x01","event":"down"}', id="raw-control-character"),
        pytest.param(b"", id="empty"),
        pytest.param(b"{", id="truncated"),
    ],
)
def test_hostile_bodies_never_pass_the_fast_path_alone(body: bytes) -> None:
    assert decode_fast(body) is None
    assert _slow(body) is None
    with pytest.raises(InvalidEventError):
        parse_changes(body, NOW)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b'{"pipeline":"x","event":"run_finished","status":"success","records_processed":5.0}',
            id="integral-float",
        ),
        pytest.param(_HB + b',"memory_bytes":9223372036854775808}', id="bytes-at-the-bound"),
        pytest.param(b'{"pipeline":"x","event":"down","message":"a\\ud800b"}', id="lone-escape"),
        pytest.param(b'{"pipeline":"a b","event":"down","pipeline":"x"}', id="dup-first-bad"),
        pytest.param(b'{"event":"down","pipeline":"x","event":"heartbeat"}', id="dup-event"),
    ],
)
def test_what_only_the_schema_admits_goes_the_slow_way(body: bytes) -> None:
    assert decode_fast(body) is None
    slow = _slow(body)
    assert slow is not None
    assert _state(parse_changes(body, NOW)) == slow


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"pipeline":"x","event":"down","event":"down"}', id="duplicate-event"),
        pytest.param(_HB + b',"pipeline":"y"}', id="duplicate-pipeline-both-valid"),
        pytest.param(_HB + b',"memory_bytes":1,"memory_bytes":2}', id="duplicate-value"),
        pytest.param(b'{"pipeline":"x","event":"down","message":"\\ud83d\\ude00"}', id="pair"),
        pytest.param(b' \n\t{"pipeline":"x","event":"down"}\r\n ', id="whitespace"),
        pytest.param(_HB + b',"memory_bytes":-0.0}', id="negative-zero"),
        pytest.param(_HB + b',"memory_bytes":1E3}', id="exponent"),
    ],
)
def test_odd_but_valid_bodies_agree(body: bytes) -> None:
    assert _agree(body)


def test_the_structs_mirror_the_schema() -> None:
    """Each Struct allows exactly the fields the schema allows its kind, and requires the same."""
    schema = load_schema()["$defs"]["event"]
    every = set(schema["properties"]) - {"event"}
    for branch in schema["allOf"]:
        kind = branch["if"]["properties"]["event"]["const"]
        (cls,) = [t for t in EVENT_TYPES if t.__struct_config__.tag == kind]
        forbidden = {k for k, v in branch["then"]["properties"].items() if v is False}
        assert set(cls.__struct_fields__) == every - forbidden, kind
        required = set(schema["required"]) | set(branch["then"].get("required", ()))
        needed = {f.name for f in msgspec.structs.fields(cls) if f.required}
        assert needed == required - {"event"}, kind
    kinds = {t.__struct_config__.tag for t in EVENT_TYPES}
    assert kinds == set(schema["properties"]["event"]["enum"])
    hints = typing.get_type_hints(FastEvent, include_extras=True)
    pattern = load_schema()["$defs"]["pipeline"]["pattern"]
    assert typing.get_args(hints["pipeline"])[1].pattern == pattern


_POOL: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    1.5,
    2.0,
    1e11,
    2**53,
    "",
    "x",
    "a b",
    "success",
    "failure",
    "data",
    "connectivity",
    "timeout",
    "heartbeat",
    "error",
    "down",
    "run_finished",
    "m" * 1001,
    [],
    {},
]
_KEYS = [*load_schema()["$defs"]["event"]["properties"], "x"]


def test_random_mutations_agree() -> None:
    """Replace, delete or add one field anywhere in a valid batch (seeded: reproducible)."""
    rng = random.Random(7)
    base = [d for d in VALID if isinstance(d, dict)]
    accepted = refused = 0
    for _ in range(1500):
        doc = json.loads(json.dumps(rng.choice(base)))
        for _ in range(rng.choice((1, 1, 2))):
            roll = rng.random()
            if roll < 0.2 and doc:
                del doc[rng.choice(list(doc))]
            elif roll < 0.5:
                doc[rng.choice(_KEYS)] = rng.choice(_POOL)
            else:
                doc[rng.choice(list(doc) or _KEYS)] = rng.choice(_POOL)
        body = _dumps([doc, rng.choice(base)] if rng.random() < 0.3 else doc)
        if _agree(body):
            accepted += 1
        else:
            refused += 1
    assert accepted > 100 and refused > 100  # both sides exercised
