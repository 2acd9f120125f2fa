"""The msgspec decoder (``webhook_fast``) never accepts what the schema path refuses.

Every sample goes through both paths: the slow one (strict UTF-8 ``json.loads``
+ jsonschema, ``parse_notification(decode_body(...))``) and the fast one
(``decode_fast``). When the fast one accepts, the slow one must accept too and
build the very same ``Notification``; valid real-world bodies must take the
fast path.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from core_helpers import alert_doc, notification_doc, real_world_notification
from json_paths import json_paths

from receiver.errors import PayloadError
from receiver.intake.webhook import decode_body, parse_body, parse_notification
from receiver.intake.webhook import to_notification as _fast_notification
from receiver.intake.webhook_fast import alert_time, decode_fast
from receiver.models import Notification


def _slow(body: bytes) -> Notification | None:
    try:
        return parse_notification(decode_body(body))
    except PayloadError:
        return None


def _agree(body: bytes) -> bool:
    """Assert the fast path is no looser than the slow one; return whether it accepted."""
    fast = decode_fast(body)
    slow = _slow(body)
    if fast is None:
        return False
    try:
        built = _fast_notification(fast)
    except ValueError:  # an impossible time: parse_body takes the slow path
        return False
    assert slow is not None, body[:200]
    assert parse_body(body) == slow
    if all(a.fingerprint for a in built.alerts):
        assert built == slow
    return True


def _good() -> dict[str, Any]:
    return notification_doc(alert_doc("p"), alert_doc("q", status="resolved"))


def _mutated(path: tuple[Any, ...], value: Any, *, delete: bool = False) -> dict[str, Any]:
    doc = _good()
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


def _real_world() -> list[dict[str, Any]]:
    alert = alert_doc("données", labels={"note": "ünïcødé ✓ 日本", "emoji": "\U0001f600"})
    alert["generatorURL"] = ""
    alert["startsAt"] = "2026-01-01T12:00:00.123456789+02:00"
    alert["someFutureField"] = {"x": [1, 2.5, None, True]}
    bare = {"status": "firing", "labels": {"a": "b"}, "startsAt": "2026-01-01T12:00:00Z"}
    return [
        _good(),
        real_world_notification(alert),
        {"version": "4", "status": "resolved", "alerts": []},
        {"version": "4", "status": "firing", "alerts": [bare]},
        _mutated(("alerts", 0, "fingerprint"), None, delete=True),
        _mutated(("alerts", 0, "endsAt"), None, delete=True),
        _mutated(("truncatedAlerts",), 10**30),
        _mutated(("alerts", 0, "labels", "x" * 1024), "v" * 65536),
        _mutated(("alerts", 0, "annotations", "d"), "v" * 262144),
        _mutated(("alerts", 0, "fingerprint"), "f" * 128),
        _mutated(("alerts", 0, "generatorURL"), "g" * 8192),
        _mutated(("receiver",), "r" * 4096),
        _mutated(("groupKey",), "k" * 65536),
        _mutated(("externalURL",), "u" * 8192),
        _mutated(("alerts", 0, "labels", "\U0001f600" * 1024), "\U0001f600" * 65536),
        _mutated(("alerts", 0, "labels", "\x00"), "\x00\n\t\u2028"),
        _mutated(("alerts", 0, "startsAt"), "2026-01-01T12:00:00-01:30"),
        _mutated(("alerts", 0, "startsAt"), "2026-01-01T12:00:00.5Z"),
    ]


_INVALID_VALUES: list[tuple[tuple[Any, ...], Any]] = [
    (("version",), "3"),
    (("version",), 4),
    (("status",), "pending"),
    (("status",), None),
    (("alerts",), {}),
    (("alerts",), None),
    (("alerts", 0), []),
    (("alerts", 0), "x"),
    (("truncatedAlerts",), True),
    (("truncatedAlerts",), -1),
    (("truncatedAlerts",), 2.5),
    (("truncatedAlerts",), "2"),
    (("truncatedAlerts",), None),
    (("alerts", 0, "status"), "FIRING"),
    (("alerts", 0, "labels"), None),
    (("alerts", 0, "labels"), []),
    (("alerts", 0, "labels", "x"), 1),
    (("alerts", 0, "labels", "x"), None),
    (("alerts", 0, "labels", ""), "v"),
    (("alerts", 0, "labels", "x" * 1025), "v"),
    (("alerts", 0, "labels", "x"), "v" * 65537),
    (("alerts", 0, "labels", "\U0001f600" * 1025), "v"),
    (("alerts", 0, "annotations", "d"), "v" * 262145),
    (("alerts", 0, "annotations"), None),
    (("alerts", 0, "annotations", ""), "v"),
    (("alerts", 0, "startsAt"), "yesterday"),
    (("alerts", 0, "startsAt"), None),
    (("alerts", 0, "startsAt"), 1767268800),
    (("alerts", 0, "startsAt"), "2026-01-01 12:00:00Z"),
    (("alerts", 0, "startsAt"), "2026-01-01"),
    (("alerts", 0, "startsAt"), "2026-01-01T12:00:00"),
    (("alerts", 0, "startsAt"), "2026-01-01T12:00:00.1234567890Z"),
    (("alerts", 0, "startsAt"), "2026-01-01T12:00:00Z\n"),
    (("alerts", 0, "startsAt"), "x2026-01-01T12:00:00Z"),
    (("alerts", 0, "startsAt"), "2026-13-45T99:00:00Z"),  # the pattern admits it
    (("alerts", 0, "startsAt"), "2026-01-01t12:00:00z"),  # as does parse_time: refused
    (("alerts", 0, "endsAt"), None),
    (("alerts", 0, "endsAt"), ""),
    (("alerts", 0, "fingerprint"), None),
    (("alerts", 0, "fingerprint"), "f" * 129),
    (("alerts", 0, "generatorURL"), "x" * 8193),
    (("alerts", 0, "generatorURL"), None),
    (("commonLabels", ""), "v"),
    (("groupLabels",), None),
    (("commonAnnotations", "a"), 1),
    (("receiver",), 5),
    (("receiver",), "r" * 4097),
    (("groupKey",), "k" * 65537),
    (("groupKey",), None),
    (("externalURL",), "u" * 8193),
]

_MISSING: list[tuple[Any, ...]] = [
    ("version",),
    ("status",),
    ("alerts",),
    ("alerts", 0, "status"),
    ("alerts", 0, "labels"),
    ("alerts", 0, "startsAt"),
]


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize("doc", _real_world())
def test_valid_bodies_take_the_fast_path_and_build_what_the_slow_one_builds(doc: Any) -> None:
    for body in (_dumps(doc), json.dumps(doc, ensure_ascii=False).encode()):
        assert _slow(body) is not None
        assert _agree(body), body[:200]


@pytest.mark.parametrize(("path", "value"), _INVALID_VALUES)
def test_the_fast_path_refuses_what_the_schema_refuses(path: tuple[Any, ...], value: Any) -> None:
    body = _dumps(_mutated(path, value))
    assert _slow(body) is None, path
    assert not _agree(body), path
    with pytest.raises(PayloadError):
        parse_body(body)


@pytest.mark.parametrize("path", _MISSING)
def test_missing_required_fields_are_refused(path: tuple[Any, ...]) -> None:
    body = _dumps(_mutated(path, None, delete=True))
    assert _slow(body) is None and decode_fast(body) is None
    with pytest.raises(PayloadError):
        parse_body(body)


_ALERT = b'{"status":"firing","labels":{"a":"b"},"startsAt":"2026-01-01T12:00:00Z"'


def _raw(alert_tail: bytes = b"", top_tail: bytes = b"") -> bytes:
    head = b'{"version":"4","status":"firing","alerts":['
    return head + _ALERT + alert_tail + b"]" + top_tail + b"}"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_raw(b',"x":"\xff"}'), id="invalid-utf8-in-unknown-field"),
        pytest.param(_raw(b',"fingerprint":"\xc0\x80"}'), id="overlong-utf8"),
        pytest.param(_raw(b',"fingerprint":"\xed\xa0\x80"}'), id="utf8-encoded-surrogate"),
        pytest.param(_raw(b',"fingerprint":"\\ud800"}'), id="lone-surrogate-escape"),
        pytest.param(_raw(b',"x":"\\udc00"}'), id="lone-surrogate-in-unknown-field"),
        pytest.param(_raw(b',"x":"a\\ud800b"}'), id="lone-high-surrogate-mid-string"),
        pytest.param(_raw(b',"status":"nope"}'), id="duplicate-key-last-invalid"),
        pytest.param(_raw(b',"labels":{"a":1}}'), id="duplicate-labels-last-invalid"),
        pytest.param(_raw(b"}", b',"truncatedAlerts":NaN'), id="nan"),
        pytest.param(_raw(b"}", b',"truncatedAlerts":-Infinity'), id="minus-infinity"),
        pytest.param(_raw(b"}", b',"truncatedAlerts":-1' + b"0" * 400), id="huge-negative-int"),
        pytest.param(_raw(b"}", b',"x":' + b"[" * 100_000 + b"]" * 100_000), id="deep-unknown"),
        pytest.param(_raw(b"}", b',"x":' + b"[" * 500_000), id="deep-unclosed"),
        pytest.param(
            _raw(b"}", b',"x":' + b'{"a":' * 200_000 + b"1" + b"}" * 200_000), id="deep-objects"
        ),
        pytest.param(_raw(b"}") + b"x", id="trailing-garbage"),
        pytest.param(b"\xef\xbb\xbf" + _raw(b"}"), id="utf8-bom"),
        pytest.param(_raw(b',"x":"\x01"}'), id="raw-control-character"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[]", id="array"),
    ],
)
def test_hostile_bodies_never_pass_the_fast_path_alone(body: bytes) -> None:
    assert decode_fast(body) is None
    assert _slow(body) is None
    with pytest.raises(PayloadError):
        parse_body(body)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_numbers_are_refused_even_in_unknown_fields(token: str) -> None:
    body = _raw(f',"x":{token}}}'.encode())
    assert decode_fast(body) is None
    with pytest.raises(PayloadError, match=f"{token} is not a JSON number"):
        parse_body(body)


@pytest.mark.parametrize(
    ("starts", "ends", "where"),
    [
        ("0001-01-01T00:00:00+01:00", None, "startsAt"),  # stored as 1970 before
        ("0001-01-01T00:00:00Z", None, "startsAt"),
        ("1969-12-31T23:59:59Z", None, "startsAt"),
        ("2026-01-01T00:00:00Z", "1900-01-01T00:00:00Z", "endsAt"),
    ],
)
def test_times_no_alert_can_have_are_refused_naming_the_field(
    starts: str, ends: str | None, where: str
) -> None:
    alert: dict[str, Any] = {"status": "firing", "labels": {"a": "b"}, "startsAt": starts}
    if ends is not None:
        alert["endsAt"] = ends
    body = json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()
    with pytest.raises(PayloadError) as refused:
        parse_body(body)
    assert refused.value.path == f"alerts[0].{where}"


def test_the_zero_time_still_means_no_end() -> None:
    alert = {
        "status": "firing",
        "labels": {"a": "b"},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00+01:00",
    }
    body = json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()
    assert parse_body(body).alerts[0].ends_at is None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_raw(b"}", b',"truncatedAlerts":2.0'), id="integral-float"),
        pytest.param(
            b'{"version":"4","status":"bad","alerts":[],"status":"firing"}',
            id="duplicate-key-first-invalid-last-valid",  # json.loads keeps the last
        ),
    ],
)
def test_what_only_the_schema_admits_goes_the_slow_way(body: bytes) -> None:
    assert decode_fast(body) is None
    slow = _slow(body)
    assert slow is not None
    assert parse_body(body) == slow


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_raw(b',"status":"resolved"}'), id="duplicate-key-both-valid"),
        pytest.param(_raw(b',"x":1,"x":{"y":[]}}'), id="duplicate-unknown-key"),
        pytest.param(_raw(b',"labels":{"a":"1","a":"2"}}'), id="duplicate-label"),
        pytest.param(_raw(b',"x":"\\ud83d\\ude00"}'), id="surrogate-pair"),
        pytest.param(_raw(b"}", b',"truncatedAlerts":1' + b"0" * 400), id="huge-int"),
        pytest.param(_raw(b"}", b',"x":' + b"[" * 50 + b"]" * 50), id="moderate-nesting"),
        pytest.param(_raw(b',"x":1' + b"0" * 400 + b"}"), id="huge-int-in-unknown-field"),
        pytest.param(_raw(b',"x":1e999}'), id="overflowing-float"),
    ],
)
def test_odd_but_valid_bodies_agree(body: bytes) -> None:
    assert _agree(body)


def test_fifty_thousand_alerts_decode_fast_and_fifty_thousand_empty_ones_do_not() -> None:
    alert = {"status": "firing", "labels": {"a": "b"}, "startsAt": "2026-01-01T12:00:00Z"}
    many = _dumps({"version": "4", "status": "firing", "alerts": [alert] * 50_000})
    fast = decode_fast(many)
    assert fast is not None and len(fast.alerts) == 50_000
    assert len(parse_body(many).alerts) == 50_000
    empty = _dumps({"version": "4", "status": "firing", "alerts": [{}] * 50_000})
    assert decode_fast(empty) is None and _slow(empty) is None


_POOL: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    "",
    "firing",
    "4",
    "2026-01-01T12:00:00Z",
    "x" * 1025,
    [],
    {},
    {"": "v"},
    {"k": 1},
    {"k": "v"},
]


def test_random_mutations_agree() -> None:
    """Replace, delete or add one value anywhere in a valid body (seeded: reproducible)."""
    rng = random.Random(5)
    base = _good()
    paths = json_paths(base)
    accepted = refused = 0
    for _ in range(1500):
        doc = json.loads(json.dumps(base))
        path = rng.choice(paths)
        target = doc
        for part in path[:-1]:
            target = target[part]
        roll = rng.random()
        if roll < 0.15 and isinstance(target, dict):
            del target[path[-1]]
        elif roll < 0.3 and isinstance(target[path[-1]], dict):
            target[path[-1]][rng.choice(["x", "", "labels", "status"])] = rng.choice(_POOL)
        else:
            target[path[-1]] = rng.choice(_POOL)
        if _agree(_dumps(doc)):
            accepted += 1
        else:
            refused += 1
    assert accepted > 100 and refused > 100  # both sides exercised


def test_memoised_times_still_refuse_what_the_pattern_refuses() -> None:
    good = "2026-01-01T12:00:00.000Z"
    assert alert_time(good) == alert_time(good) is not None
    assert alert_time("0001-01-01T00:00:00Z") is None
    for bad in (good + "\n", good.replace("T", " "), "2026-01-01", "2026-13-45T99:00:00Z"):
        for _ in range(2):  # a refusal is never memoised
            with pytest.raises(ValueError):
                alert_time(bad)
