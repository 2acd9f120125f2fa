"""The recovery settings (``recovery:`` in the receiver's config), all with defaults.

Seconds fields take a number or a Prometheus duration (``90s``, ``5m``).
:meth:`RecoveryConfig.from_mapping` refuses unknown fields and wrong types
with a ``ValueError`` naming the field path, e.g.
``recovery.max_concurrent_actions: expected an integer >= 1, got 'many'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from rules.durations import parse_duration

__all__ = ["RecoveryConfig"]


@dataclass(frozen=True)
class RecoveryConfig:
    """How carefully recovery acts: limits, backoff, breaker, verification, silences."""

    dry_run: bool = False  # record what would run, run nothing (every pipeline)
    max_concurrent_actions: int = 4  # actions running at once (all pipelines)
    rate_limit_per_minute: int = 30  # actions started per minute (all pipelines)
    backoff_base_seconds: float = 2.0  # first wait between attempts; doubles each time
    backoff_max_seconds: float = 120.0
    backoff_jitter: float = 0.5  # up to this share of a wait is randomly taken off
    circuit_failure_threshold: int = 3  # consecutive failures of one target open its breaker
    circuit_reset_seconds: float = 300.0  # ... for this long
    verify_deadline_seconds: float = 180.0  # how long the condition has to clear
    verify_interval_seconds: float = 5.0  # how often Prometheus is asked meanwhile
    verify_window_seconds: float = 60.0  # errors counted over this window must be zero
    lease_seconds: float = 900.0  # a claimed step is another worker's after this
    admission_wait_seconds: float = 60.0  # wait for rate limit/concurrency before escalating
    silence_during_recovery: bool = False  # silence the pipeline's alerts while acting
    alertmanager_url: str | None = None  # for silences (API v2)
    silence_max_seconds: float = 3600.0  # a silence's end if expiring it fails
    approval_timeout_seconds: float = 1800.0  # a step nobody approved escalates after this

    def __post_init__(self) -> None:
        if self.silence_during_recovery and not self.alertmanager_url:
            raise ValueError(
                "recovery.alertmanager_url: required when silence_during_recovery is true"
            )
        if self.alertmanager_url is not None and not self.alertmanager_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError(
                f"recovery.alertmanager_url: not an http(s) URL: {self.alertmanager_url!r}"
            )
        if not 0.0 <= self.backoff_jitter <= 1.0:
            raise ValueError(
                f"recovery.backoff_jitter: must be within 0..1, got {self.backoff_jitter!r}"
            )

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any], where: str = "recovery") -> RecoveryConfig:
        """Build a config from YAML/JSON data; errors name the field path."""
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(d).__name__}")
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in d.items():
            path = f"{where}.{key}"
            f = known.get(str(key))
            if f is None:
                raise ValueError(f"{path}: unknown field (known: {', '.join(sorted(known))})")
            kind = str(f.type)
            if kind == "bool":
                if not isinstance(raw, bool):
                    raise ValueError(f"{path}: expected true or false, got {raw!r}")
                values[f.name] = raw
            elif kind == "int":
                if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
                    raise ValueError(f"{path}: expected an integer >= 1, got {raw!r}")
                values[f.name] = raw
            elif kind == "float":
                values[f.name] = _seconds(raw, path, allow_zero=f.name != "verify_interval_seconds")
            else:
                if raw is not None and not isinstance(raw, str):
                    raise ValueError(f"{path}: expected a URL string, got {raw!r}")
                values[f.name] = raw
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(str(exc).replace("recovery.", f"{where}.", 1)) from None


def _seconds(raw: Any, path: str, *, allow_zero: bool) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"{path}: expected seconds or a duration, got {raw!r}")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = parse_duration(raw)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    else:
        raise ValueError(f"{path}: expected seconds or a duration, got {raw!r}")
    if value != value or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{path}: must be {'>= 0' if allow_zero else '> 0'}, got {raw!r}")
    return value
