"""Severity from the incident-management table: service degradation x users affected.

The incident-management SEV table (docs/incidents.md)::

            service degradation     impact to users
    SEV1    unavailable             most users affected
    SEV2    significant problems    many users affected
    SEV3    performance problems    some users affected
    SEV4    performance problems    none
    SEV5    low level annoyances    none

The table gives five points of a grid; the rest of the grid follows the rule
that holds for all five: the SEV is the milder of the two ranks (a total
outage nobody depends on is not a SEV1; an annoyance stays an annoyance).
The Alertmanager ``severity`` label (critical/warning/info) is derived from it.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "DEGRADATIONS",
    "IMPACTS",
    "SEVS",
    "Degradation",
    "Impact",
    "Severity",
    "max_sev",
    "sev_for",
    "sev_rank",
    "severity_label",
]

Degradation = Literal["unavailable", "significant", "performance", "annoyance"]
Impact = Literal["most", "many", "some", "none"]
Severity = Literal["critical", "warning", "info"]

DEGRADATIONS: dict[str, int] = {
    "unavailable": 1,
    "significant": 2,
    "performance": 3,
    "annoyance": 5,
}
IMPACTS: dict[str, int] = {"most": 1, "many": 2, "some": 3, "none": 4}
SEVS: tuple[str, ...] = ("SEV1", "SEV2", "SEV3", "SEV4", "SEV5")


def sev_for(degradation: str, impact: str) -> str:
    """Return ``SEV1``..``SEV5`` for a degradation and the users affected."""
    try:
        rank = max(DEGRADATIONS[degradation], IMPACTS[impact])
    except KeyError as exc:
        raise ValueError(
            f"unknown degradation/impact {exc.args[0]!r}; degradation is one of "
            f"{sorted(DEGRADATIONS)}, impact one of {sorted(IMPACTS)}"
        ) from None
    return f"SEV{rank}"


def severity_label(sev: str) -> Severity:
    """Map a SEV to Alertmanager's ``severity``: SEV1-2 page, SEV3-4 warn, SEV5 inform."""
    rank = sev_rank(sev)
    if rank <= 2:
        return "critical"
    if rank <= 4:
        return "warning"
    return "info"


def sev_rank(sev: str) -> int:
    """Return 1..5 for ``SEV1``..``SEV5``; ``ValueError`` for anything else."""
    if sev not in SEVS:
        raise ValueError(f"{sev!r} is not one of {', '.join(SEVS)}")
    return int(sev[3])


def max_sev(a: str, b: str) -> str:
    """Return the more severe of two SEVs (SEV1 is the most severe)."""
    return a if sev_rank(a) <= sev_rank(b) else b
