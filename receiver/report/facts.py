"""Derive the facts people ask about an incident: when, how long, who was hit.

The post-mortem, the HTML page and ``pipemedic incidents`` all show the same
derived facts; computing them once here keeps the three in agreement. Every
function is pure: "now" is a parameter, never read from the clock here.

Example::

    began = incident_began(incident)
    took = incident_duration(incident, now=utcnow())
    print(format_duration(took), users_affected(incident))
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from receiver.models import Incident, TimelineEntry, parse_time
from rules.severity import IMPACTS, SEVS

__all__ = [
    "IMPACT_WORDS",
    "SEV_TABLE",
    "alert_names",
    "alert_summaries",
    "clean_text",
    "declared_impact",
    "degradation",
    "first_event",
    "format_duration",
    "incident_began",
    "incident_duration",
    "incident_ended",
    "since_began",
    "users_affected",
]

# The seed's SEV table (rules/severity.py): SEV -> (service degradation, users affected).
# tests/receiver/test_postmortem.py checks it against rules.severity.sev_for.
SEV_TABLE: dict[str, tuple[str, str]] = {
    "SEV1": ("unavailable", "most users affected"),
    "SEV2": ("significant problems", "many users affected"),
    "SEV3": ("performance problems", "some users affected"),
    "SEV4": ("performance problems", "no users affected"),
    "SEV5": ("low level annoyances", "no users affected"),
}
assert tuple(SEV_TABLE) == SEVS


# The spec's ``impact`` -> the seed's words for it.
IMPACT_WORDS: dict[str, str] = {
    "most": "most users affected",
    "many": "many users affected",
    "some": "some users affected",
    "none": "no users affected",
}
assert tuple(IMPACT_WORDS) == tuple(IMPACTS)


def declared_impact(incident: Incident) -> str | None:
    """Return the spec's ``impact`` recorded when the incident opened (its ``sev_set``)."""
    for entry in sorted(incident.timeline, key=lambda t: t.at):
        detail = entry.detail
        if entry.event == "sev_set" and isinstance(detail, dict):
            impact = detail.get("impact")
            if isinstance(impact, str) and impact in IMPACT_WORDS:
                return impact
    return None


def users_affected(incident: Incident) -> str:
    """Return who was affected: the pipeline's declared ``impact``, recorded at open.

    Not read back from the SEV: the SEV is the milder of degradation and
    impact, so ``impact: most`` on a SEV2 incident is still most users. An
    incident recorded before impacts were kept falls back to the SEV's column
    of the seed's table.
    """
    impact = declared_impact(incident)
    if impact is not None:
        return IMPACT_WORDS[impact]
    return SEV_TABLE.get(incident.sev, ("unknown", "unknown (no valid SEV)"))[1]


def degradation(sev: str) -> str:
    """Return the seed's "service degradation" for a SEV."""
    return SEV_TABLE.get(sev, ("unknown", ""))[0]


def first_event(incident: Incident, *names: str) -> TimelineEntry | None:
    """Return the earliest timeline entry whose event is one of ``names``."""
    found = [t for t in incident.timeline if t.event in names]
    return min(found, key=lambda t: t.at) if found else None


def _alert_starts(alerts: Iterable[dict[str, Any]]) -> list[datetime]:
    starts: list[datetime] = []
    for alert in alerts:
        raw = alert.get("startsAt") if isinstance(alert, dict) else None
        try:
            parsed = parse_time(raw) if isinstance(raw, str) else None
        except ValueError:
            parsed = None
        if parsed is not None:
            starts.append(parsed)
    return starts


def incident_began(incident: Incident) -> datetime:
    """Return when the trouble began: the first alert's startsAt, else detection, else opening."""
    starts = _alert_starts(incident.alerts)
    detected = first_event(incident, "detected")
    if detected is not None:
        starts.append(detected.at)
    return min(starts) if starts else incident.opened_at


def incident_ended(incident: Incident) -> datetime | None:
    """Return when the trouble ended (the resolution), or None while it lasts."""
    return incident.resolved_at


def incident_duration(incident: Incident, now: datetime) -> timedelta:
    """Return how long the incident lasted, or has lasted until ``now`` if unresolved."""
    end = incident_ended(incident) or incident.closed_at or now
    return max(end - incident_began(incident), timedelta(0))


def since_began(incident: Incident, *names: str) -> timedelta | None:
    """Return the time from the beginning to the first of the named events, if any."""
    entry = first_event(incident, *names)
    if entry is None:
        return None
    return max(entry.at - incident_began(incident), timedelta(0))


def format_duration(value: timedelta | None) -> str:
    """Format a duration for people: ``<1s``, ``45s``, ``12m 05s``, ``3h 07m``, ``2d 04h``."""
    if value is None:
        return "-"
    if timedelta(0) < value < timedelta(seconds=1):
        return "<1s"
    total = int(value.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def alert_names(incident: Incident) -> list[str]:
    """Return the distinct alert names of the incident, sorted."""
    names = {
        str(a.get("labels", {}).get("alertname", ""))
        for a in incident.alerts
        if isinstance(a, dict) and isinstance(a.get("labels"), dict)
    }
    return sorted(n for n in names if n)


def alert_summaries(incident: Incident) -> list[tuple[str, str]]:
    """Return (alertname, summary annotation) per distinct alert, sorted."""
    seen: set[tuple[str, str]] = set()
    for a in incident.alerts:
        if not isinstance(a, dict):
            continue
        labels = a.get("labels") if isinstance(a.get("labels"), dict) else {}
        notes = a.get("annotations") if isinstance(a.get("annotations"), dict) else {}
        name = str((labels or {}).get("alertname", ""))
        summary = str((notes or {}).get("summary", ""))
        if name or summary:
            seen.add((name, summary))
    return sorted(seen)


def clean_text(value: object) -> str:
    """Return ``value`` as one line with control characters made visible.

    Alert labels and annotations are untrusted: a terminal escape sequence or
    a newline in them must not rewrite a terminal or break a table row.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # no control, format or line-breaking character: nothing to do
        return text
    out: list[str] = []
    for ch in text:
        if ch in "\r\n\t":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\u200d":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)
