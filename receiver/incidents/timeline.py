"""Merge two copies of one incident's timeline without losing or doubling an entry.

A worker holds an incident in memory while it works; meanwhile another
replica, or the store itself (PostgreSQL writes ``work_taken_over`` straight
into the timeline table), may add entries to the stored copy. Whatever is
written from the held copy (a post-mortem draft, a SQLite document) must
include those entries too.
"""

from __future__ import annotations

import json
from collections import Counter

from receiver.models import TimelineEntry, format_time

__all__ = ["merge_timelines"]


def merge_timelines(held: list[TimelineEntry], stored: list[TimelineEntry]) -> list[TimelineEntry]:
    """Return ``held`` plus the ``stored`` entries it lacks (appended, in stored order).

    Entries compare at the stores' precision (milliseconds, details as JSON),
    each stored entry matching at most one held entry, so nothing is doubled.
    """
    have = Counter(_entry_key(t) for t in held)
    extra: list[TimelineEntry] = []
    for entry in stored:
        key = _entry_key(entry)
        if have[key] > 0:
            have[key] -= 1
        else:
            extra.append(entry)
    return [*held, *extra] if extra else held


def _entry_key(entry: TimelineEntry) -> tuple[str | None, str, str]:
    detail = json.dumps(entry.detail, sort_keys=True, separators=(",", ":"), default=str)
    return (format_time(entry.at), entry.event, detail)
