"""Exceptions map onto the incident taxonomy; users can put their own rules first."""

from __future__ import annotations

import errno
import json

import jsonschema
import pytest

from exporters.classify import ExceptionClassifier, PipelineFailure, classify_exception
from pipemedic.vocabulary import REASON_CAUSE


class HTTPError(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class AuthenticationFailed(Exception):
    pass


class ReadTimeout(OSError):
    pass


def _json_error() -> Exception:
    try:
        json.loads("{")
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError("slow"), ("connectivity", "timeout")),
        (TimeoutError(), ("connectivity", "timeout")),
        (ReadTimeout("requests-style"), ("connectivity", "timeout")),
        (ConnectionRefusedError(), ("connectivity", "connection_error")),
        (ConnectionResetError(), ("connectivity", "connection_error")),
        (HTTPError(429), ("connectivity", "rate_limited")),
        (HTTPError(401), ("connectivity", "auth_expired")),
        (HTTPError(503), ("connectivity", "dependency_down")),
        (AuthenticationFailed("token expired"), ("connectivity", "auth_expired")),
        (MemoryError(), ("resources", "out_of_memory")),
        (OSError(errno.ENOSPC, "No space left on device"), ("resources", "disk_full")),
        (_json_error(), ("data", "corrupt_record")),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), ("data", "corrupt_record")),
        (jsonschema.ValidationError("x"), ("data", "schema_change")),
        (ZeroDivisionError(), ("logic", "bug")),
        (KeyError("col"), ("logic", "bug")),
        (PipelineFailure("data", "volume_exceeded"), ("data", "volume_exceeded")),
    ],
)
def test_default_mapping(exc: BaseException, expected: tuple[str, str]) -> None:
    assert classify_exception(exc) == expected
    category, reason = expected
    assert REASON_CAUSE[reason][0] == category  # every default is in the shared taxonomy


def test_user_rules_come_first_and_can_replace_defaults() -> None:
    def mine(exc: BaseException) -> tuple[str, str] | None:
        return ("data", "schema_change") if isinstance(exc, KeyError) else None

    classify = ExceptionClassifier((mine,))
    assert classify(KeyError("col")) == ("data", "schema_change")
    assert classify(TimeoutError()) == ("connectivity", "timeout")
    bare = ExceptionClassifier((mine,), defaults=False)
    assert bare(TimeoutError()) == ("logic", "bug")


def test_a_rule_returning_a_bad_category_is_refused() -> None:
    classify = ExceptionClassifier((lambda exc: ("network", "timeout"),))
    with pytest.raises(ValueError, match="category"):
        classify(TimeoutError())


def test_pipeline_failure_checks_its_labels() -> None:
    with pytest.raises(ValueError, match="category"):
        PipelineFailure("oops", "bug")
