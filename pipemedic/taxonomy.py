"""The shared vocabulary of failure: categories, error reasons, diagnosed causes.

The exporter labels ``pipeline_errors_total`` with ``category`` and
``reason``; the rules put ``category`` on every alert; the receiver's
diagnosis turns reasons it finds in Prometheus into causes, and recovery
turns causes into strategies. One table keeps the three in step.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CATEGORIES", "CAUSES", "REASONS", "REASON_CAUSE", "category_of_reason"]

# The runbook's four incident kinds.
CATEGORIES: Final = ("connectivity", "data", "resources", "logic")

# reason label value -> (category, diagnosed cause)
REASON_CAUSE: Final[dict[str, tuple[str, str]]] = {
    # connectivity: APIs down, timeouts, rate limits, expired credentials
    "timeout": ("connectivity", "network_timeout"),
    "connection_error": ("connectivity", "dependency_down"),
    "dependency_down": ("connectivity", "dependency_down"),
    "rate_limited": ("connectivity", "rate_limited"),
    "auth_expired": ("connectivity", "credential_expired"),
    # data: corrupt records, schema changes, volumes over capacity
    "corrupt_record": ("data", "data_corruption"),
    "schema_change": ("data", "schema_change"),
    "volume_exceeded": ("data", "volume_exceeded"),
    # resources: memory, CPU, disk
    "out_of_memory": ("resources", "memory_limit"),
    "cpu_saturation": ("resources", "cpu_saturation"),
    "disk_full": ("resources", "disk_full"),
    # logic: bugs, bad configuration
    "bug": ("logic", "logic_error"),
    "config": ("logic", "config_error"),
}
REASONS: Final = tuple(REASON_CAUSE)

CAUSES: Final = (
    "network_timeout",
    "rate_limited",
    "dependency_down",
    "credential_expired",
    "data_corruption",
    "schema_change",
    "volume_exceeded",
    "memory_limit",
    "disk_full",
    "cpu_saturation",
    "logic_error",
    "config_error",
    "unknown",
)


def category_of_reason(reason: str) -> str | None:
    """Return the category a known reason belongs to, or None for a custom reason."""
    found = REASON_CAUSE.get(reason)
    return found[0] if found else None
