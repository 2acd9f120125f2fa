"""Turn an exception raised inside a run into an incident ``(category, reason)``.

The default table maps what pipelines commonly die of (timeouts, refused
connections, MemoryError, a full disk, expired credentials, broken JSON or a
changed schema) onto the causes of ``pipemedic/vocabulary/causes.py``, so the
error counter already says which diagnosis to run. A ``Classifier`` is one
callable; users put their own first (``ExceptionClassifier((mine,))``) or
raise ``PipelineFailure(category, reason)`` to say it outright.

Example::

    def vendor_errors(exc: BaseException) -> tuple[str, str] | None:
        if isinstance(exc, VendorQuotaError):
            return ("connectivity", "rate_limited")
        return None

    registry = PipelineRegistry(classifier=ExceptionClassifier((vendor_errors,)))
"""

from __future__ import annotations

import errno
import json
from collections.abc import Sequence
from typing import Protocol

from exporters.vocabulary import check_category, check_reason

__all__ = [
    "DEFAULT_RULES",
    "Classifier",
    "ExceptionClassifier",
    "PipelineFailure",
    "classify_exception",
]

Verdict = tuple[str, str]


class Classifier(Protocol):
    """Return ``(category, reason)`` for an exception, or None when it does not know."""

    def __call__(self, exc: BaseException) -> Verdict | None: ...


class PipelineFailure(Exception):
    """Raise inside a run to fail it with an explicit category and reason."""

    def __init__(self, category: str, reason: str, message: str = "") -> None:
        self.category = check_category(category)
        self.reason = check_reason(reason)
        super().__init__(message or f"{category}/{reason}")


def _explicit(exc: BaseException) -> Verdict | None:
    if isinstance(exc, PipelineFailure):
        return (exc.category, exc.reason)
    return None


def _http_status(exc: BaseException) -> int | None:
    """Find an HTTP status on client-library errors (aiohttp, requests, httpx, urllib)."""
    for holder in (exc, getattr(exc, "response", None)):
        for attr in ("status", "status_code", "code"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and 100 <= value <= 599:
                return value
    return None


def _by_http_status(exc: BaseException) -> Verdict | None:
    status = _http_status(exc)
    if status in (401, 403):
        return ("connectivity", "auth_expired")
    if status == 429:
        return ("connectivity", "rate_limited")
    if status in (502, 503, 504):
        return ("connectivity", "dependency_down")
    if status == 408:
        return ("connectivity", "timeout")
    return None


def _names(exc: BaseException) -> str:
    return " ".join(cls.__name__.lower() for cls in type(exc).__mro__)


def _by_type(exc: BaseException) -> Verdict | None:
    names = _names(exc)
    if isinstance(exc, TimeoutError) or "timeout" in names:
        return ("connectivity", "timeout")
    if "auth" in names or "credential" in names or "unauthorized" in names or "token" in names:
        return ("connectivity", "auth_expired")
    if isinstance(exc, ConnectionError) or "connectionerror" in names:
        return ("connectivity", "connection_error")
    if isinstance(exc, MemoryError):
        return ("resources", "out_of_memory")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ("resources", "disk_full")
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return ("data", "corrupt_record")
    if "schema" in names or "validationerror" in names:
        return ("data", "schema_change")
    if "decodeerror" in names or "parsererror" in names or "csv.error" in names:
        return ("data", "corrupt_record")
    return None


# Consulted in order; the first verdict wins. Anything unmatched is a bug.
DEFAULT_RULES: tuple[Classifier, ...] = (_explicit, _by_http_status, _by_type)
FALLBACK: Verdict = ("logic", "bug")


class ExceptionClassifier:
    """Ask ``extra`` classifiers first, then the default table, else ``logic/bug``."""

    def __init__(self, extra: Sequence[Classifier] = (), *, defaults: bool = True) -> None:
        self.rules: tuple[Classifier, ...] = tuple(extra) + (DEFAULT_RULES if defaults else ())

    def __call__(self, exc: BaseException) -> Verdict:
        for rule in self.rules:
            verdict = rule(exc)
            if verdict is not None:
                return (check_category(verdict[0]), check_reason(verdict[1]))
        return FALLBACK


classify_exception = ExceptionClassifier()
