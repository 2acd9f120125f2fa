"""Parse and format Prometheus durations (``1h30m``, ``5m``, ``250ms``).

The spec, the generated rules and the receiver's config all speak Prometheus'
duration syntax, so there is exactly one parser for it.
"""

from __future__ import annotations

import functools
import re

__all__ = ["format_duration", "is_duration", "parse_duration"]

_UNITS: tuple[tuple[str, float], ...] = (
    ("y", 365 * 86400.0),
    ("w", 7 * 86400.0),
    ("d", 86400.0),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 0.001),
)
_PATTERN = re.compile(
    r"^(?:(?P<y>\d+)y)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?"
    r"(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$"
)


def is_duration(text: str) -> bool:
    """Tell whether ``text`` is a Prometheus duration (``0`` and ``0s`` included)."""
    return text == "0" or (bool(text) and _PATTERN.match(text) is not None)


@functools.lru_cache(maxsize=1024)
def parse_duration(text: str) -> float:
    """Return the seconds in a Prometheus duration; ``ValueError`` names the bad text.

    Cached: a large spec repeats a handful of durations tens of thousands of times.
    """
    if text == "0":
        return 0.0
    match = _PATTERN.match(text) if text else None
    if match is None:
        raise ValueError(f"{text!r} is not a Prometheus duration (e.g. 30s, 5m, 1h30m, 4h, 7d)")
    return sum(float(match.group(unit) or 0) * factor for unit, factor in _UNITS)


def format_duration(seconds: float) -> str:
    """Return the shortest Prometheus duration for ``seconds`` (``5400`` -> ``1h30m``)."""
    if seconds < 0:
        raise ValueError(f"negative duration: {seconds}")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit, factor in _UNITS:
        unit_ms = round(factor * 1000)
        count, millis = divmod(millis, unit_ms)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
