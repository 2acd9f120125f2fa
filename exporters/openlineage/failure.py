"""Classify a FAIL or ABORT into an incident ``(category, reason)``.

The ``errorMessage`` run facet carries text, not an exception, so the text
is turned into a ``_ReportedError`` whose class is named after the
exception type the message or stack trace names (``SocketTimeoutException``,
``psycopg2.OperationalError``, ``MemoryError``; a Python builtin type is
used as itself) and which carries an HTTP status found in the text. That
object goes through the exporter's exception classifier
(``exporters/classify.py``: a user's classifier, then the default table),
with ``TEXT_RULES`` first for what only the words say (``No space left on
device``, ``OutOfMemoryError``, ``permission denied``).

The documented defaults:

- no ``errorMessage`` facet, but failed ``dataQualityAssertions`` (a dbt
  test): ``data`` / ``failed_assertion``;
- no ``errorMessage`` facet at all (``dbt-ol`` sends FAIL without one):
  ``logic`` / ``bug``, the classifier's own fallback;
- an ABORT is classified the same way as a FAIL.
"""

from __future__ import annotations

import builtins
import re
from typing import Final

from exporters.classify import FALLBACK, Classifier, ExceptionClassifier, classify_exception
from exporters.openlineage.model import ErrorMessageFacet

__all__ = [
    "DEFAULT_FAILURE",
    "FAILED_ASSERTION",
    "TEXT_RULES",
    "classify_failure",
    "reported_error",
]

DEFAULT_FAILURE: Final = FALLBACK
FAILED_ASSERTION: Final = ("data", "failed_assertion")

# The last "Name: message" / "Name(" / "Caused by: pkg.Name" in a trace names the type.
_TYPE: Final = re.compile(
    r"(?:^|[\s(])((?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Z][A-Za-z0-9_]*(?:Error|Exception|Exit|Interrupt|Warning|Timeout))\b"
)
_STATUS: Final = re.compile(
    r"\b(?:HTTP|[Ss]tatus(?: code)?)\D{0,3}([1-5]\d\d)\b|\b([1-5]\d\d) (?:Server|Client) Error"
)
_TEXT_TABLE: Final[tuple[tuple[re.Pattern[str], tuple[str, str]], ...]] = (
    (
        re.compile(r"out ?of ?memory|OutOfMemory|Killed.*signal 9|exit code 137", re.I),
        ("resources", "out_of_memory"),
    ),
    (
        re.compile(r"no space left on device|disk (?:is )?full|quota exceeded", re.I),
        ("resources", "disk_full"),
    ),
    (re.compile(r"timed? ?out|deadline exceeded", re.I), ("connectivity", "timeout")),
    (re.compile(r"too many requests|rate.?limit", re.I), ("connectivity", "rate_limited")),
    (
        re.compile(
            r"permission denied|unauthori[sz]ed|authentication failed|expired token|access denied",
            re.I,
        ),
        ("connectivity", "auth_expired"),
    ),
    (
        re.compile(
            r"connection (?:refused|reset)|could not connect|name or service not known", re.I
        ),
        ("connectivity", "connection_error"),
    ),
    (
        re.compile(
            r"(?:column|field) .{0,80}(?:does not exist|not found|cannot be resolved)"
            r"|schema mismatch",
            re.I,
        ),
        ("data", "schema_change"),
    ),
)
_MAX_SCAN: Final = 8192  # characters of message and trace looked at (bounded work)


class _ReportedError(Exception):
    """An error a producer reported as text (never raised); subclasses are named after its type."""

    def __init__(self, message: str, stack_trace: str, status: int | None) -> None:
        super().__init__(message)
        self.text = f"{message}\n{stack_trace}"
        self.status = status


def _type_named(dotted: str) -> type[_ReportedError]:
    """Make a class named like the reported type (a builtin one is also its base).

    Made per FAIL/ABORT and dropped with it: no cache of names that events choose.
    """
    short = dotted.rsplit(".", 1)[-1]
    known = getattr(builtins, short, None)
    if isinstance(known, type) and issubclass(known, BaseException):
        return type(short, (_ReportedError, known), {})
    return type(short, (_ReportedError,), {})


def reported_error(facet: ErrorMessageFacet) -> _ReportedError:
    """Return an exception object standing for the facet's error, typed by its text."""
    message = facet.message[:_MAX_SCAN]
    trace = (facet.stackTrace or "")[-_MAX_SCAN:]
    names = _TYPE.findall(f"{trace}\n{message}")
    status_match = _STATUS.search(message) or _STATUS.search(trace)
    status = int(status_match.group(1) or status_match.group(2)) if status_match else None
    cls = _type_named(names[-1]) if names else _ReportedError
    error: _ReportedError = cls(message, trace, status)
    return error


def _by_text(exc: BaseException) -> tuple[str, str] | None:
    text = exc.text if isinstance(exc, _ReportedError) else str(exc)
    for pattern, verdict in _TEXT_TABLE:
        if pattern.search(text):
            return verdict
    return None


TEXT_RULES: Final[tuple[Classifier, ...]] = (_by_text,)


def classify_failure(
    facet: ErrorMessageFacet | None,
    failed_assertions: int,
    classifier: Classifier | None = None,
) -> tuple[str, str]:
    """Return the (category, reason) of a FAIL/ABORT (defaults in the module docstring)."""
    if facet is None:
        return FAILED_ASSERTION if failed_assertions else DEFAULT_FAILURE
    error = reported_error(facet)
    # the type names first (TimeoutError, SocketTimeoutException), then the words
    verdict = (classifier or classify_exception)(error)
    if verdict is None or verdict == FALLBACK:
        verdict = _TEXT_CLASSIFIER(error)
    return verdict


_TEXT_CLASSIFIER: Final = ExceptionClassifier(TEXT_RULES, defaults=False)
