"""Check the names and numbers the exporter accepts against the shared vocabulary.

The categories and label patterns are :mod:`pipemedic.vocabulary`'s: a
pipeline name that the spec would accept is a pipeline name the exporter
accepts, and nothing else (no quotes, newlines or unicode in label values,
so they can never break the exposition format).
"""

from __future__ import annotations

import math
import re
from typing import Final

from exporters.errors import FieldProblem, InvalidEventError
from pipemedic.vocabulary.causes import CATEGORIES
from pipemedic.vocabulary.metrics import LABEL_VALUE_PATTERN, REASON_PATTERN

__all__ = [
    "MAX_COUNT",
    "MAX_SECONDS",
    "check_category",
    "check_count",
    "check_pipeline_name",
    "check_reason",
    "check_seconds",
]

_LABEL_VALUE = re.compile(LABEL_VALUE_PATTERN)
_REASON = re.compile(REASON_PATTERN)

# Bounds that keep every number finite (JSON "1e400" parses as infinity).
MAX_COUNT: Final = 2**53
MAX_SECONDS: Final = 1e11


def _bad(path: str, message: str) -> InvalidEventError:
    return InvalidEventError([FieldProblem(path, message)])


def check_pipeline_name(name: object, path: str = "pipeline") -> str:
    """Return ``name`` if it is a valid pipeline label value, else raise naming the field."""
    if not isinstance(name, str) or not _LABEL_VALUE.match(name):
        raise _bad(path, f"{name!r} is not a pipeline name (must match {LABEL_VALUE_PATTERN})")
    return name


def check_category(category: object, path: str = "category") -> str:
    """Return ``category`` if it is one of the four incident categories."""
    if category not in CATEGORIES:
        raise _bad(path, f"{category!r} is not one of {', '.join(CATEGORIES)}")
    return str(category)


def check_reason(reason: object, path: str = "reason") -> str:
    """Return ``reason`` if it is a snake_case reason label value."""
    if not isinstance(reason, str) or not _REASON.match(reason):
        raise _bad(path, f"{reason!r} is not a reason (must match {REASON_PATTERN})")
    return reason


def check_count(value: object, path: str) -> int:
    """Return a non-negative whole count, refusing bools, NaN and fractions."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(path, f"{value!r} is not a count")
    if not math.isfinite(value) or value < 0 or value > MAX_COUNT or value != int(value):
        raise _bad(path, f"{value!r} is not a whole number between 0 and {MAX_COUNT}")
    return int(value)


def check_seconds(value: object, path: str, maximum: float = MAX_SECONDS) -> float:
    """Return a finite, non-negative number of seconds (or unix time)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(path, f"{value!r} is not a number")
    if not math.isfinite(value) or value < 0 or value > maximum:
        raise _bad(path, f"{value!r} is not a finite number between 0 and {maximum:g}")
    return float(value)
