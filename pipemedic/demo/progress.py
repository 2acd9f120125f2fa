"""Say what the receiver does as it happens, and sum it up in a table at the end.

The demo polls the receiver's ``GET /incidents`` (the same JSON any tool
gets) and turns every new timeline entry into one line: which alert fired,
what was diagnosed, which action ran and how it went, what recovered or was
escalated. :func:`summarize` compares each pipeline's incident with the
scenario's expectation and with the simulator's count of control calls, so
an action that ran twice (or never ran) shows up as a problem.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pipemedic.demo.scenario import Fault
from pipemedic.vocabulary import REASON_CAUSE
from receiver.models import parse_time

__all__ = ["Progress", "Reporter", "Row", "describe", "kind_of", "render_table", "summarize"]

log = logging.getLogger("pipemedic.demo")


class Reporter:
    """Emit progress: plain lines on stdout, or one JSON log object a line."""

    def __init__(self, json_lines: bool, write: Callable[[str], None] | None = None) -> None:
        self.json_lines = json_lines
        self.write = write or (lambda text: print(text, flush=True))

    def line(self, text: str, **fields: Any) -> None:
        if self.json_lines:
            log.info(text, extra=fields)
        else:
            self.write(text)


def _short(text: Any, limit: int = 140) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe(event: str, detail: Any) -> str | None:
    """Return a person's line for a timeline entry, or None for bookkeeping ones."""
    d: Mapping[str, Any] = detail if isinstance(detail, Mapping) else {}
    match event:
        case "detected":
            return f"alert {d.get('alert')} fired: incident opened"
        case "alert_joined":
            return f"alert {d.get('alert')} joined the incident"
        case "diagnosed":
            return f"diagnosed {d.get('cause')} ({d.get('handler')}): {_short(d.get('summary'))}"
        case "strategy":
            return f"strategy {d.get('strategy')} for {d.get('cause')}"
        case "action_started":
            return f"action {d.get('step')}: {d.get('summary')}"
        case "action_finished":
            return f"action {d.get('step')} {d.get('outcome')}: {_short(d.get('detail'), 90)}"
        case "verification":
            verdict = "condition cleared" if d.get("cleared") else "condition NOT cleared"
            return f"verification: {verdict} ({d.get('detail')})"
        case "backoff":
            return f"backing off {d.get('seconds')}s before attempt {d.get('next_attempt')}"
        case "guardrail_blocked":
            return f"guardrail {d.get('guard')}: {_short(d.get('reason'))}"
        case "recovered":
            return f"recovered by {d.get('strategy')} (attempt {d.get('attempts')})"
        case "escalated" if "roles" in d:
            roles = d.get("roles") or {}
            return f"ESCALATED to {roles.get('commander') or 'the team'}: {_short(d.get('reason'))}"
        case "escalated":
            return None  # the recoverer's note; the lifecycle's line above says it
        case "skipped":
            return f"skipped: {_short(d.get('reason'))}"
        case "alert_resolved":
            return f"alert {d.get('alert')} resolved"
        case "resolved":
            return "incident resolved"
        case _:
            return None


def _seconds(a: str | None, b: str | None) -> float | None:
    start, end = parse_time(a), parse_time(b)
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


class Progress:
    """Remember which timeline entries were shown; report the new ones."""

    def __init__(self, reporter: Reporter, since: datetime) -> None:
        self.reporter = reporter
        self.since = since
        self._shown: dict[int, int] = {}

    def update(self, incidents: Sequence[Mapping[str, Any]]) -> None:
        """Report every timeline entry not reported before, in the order they happened."""
        fresh: list[tuple[datetime, int, Mapping[str, Any], Mapping[str, Any]]] = []
        for incident in incidents:
            number = int(incident["id"])
            timeline = incident.get("timeline") or []
            for entry in timeline[self._shown.get(number, 0) :]:
                at = parse_time(entry.get("at")) or self.since
                fresh.append((at, number, incident, entry))
            self._shown[number] = len(timeline)
        for at, _, incident, entry in sorted(fresh, key=lambda f: (f[0], f[1])):
            text = describe(str(entry.get("event")), entry.get("detail"))
            if text is None:
                continue
            offset = (at - self.since).total_seconds()
            self.reporter.line(
                f"{offset:+7.1f}s  {incident['pipeline']:<20} #{incident['id']:<3} "
                f"[{incident['sev']}] {text}",
                pipeline=incident["pipeline"],
                incident=incident["id"],
                event=entry.get("event"),
                detail=entry.get("detail"),
            )


@dataclass
class Row:
    """One line of the summary: a fault, what pipemedic did, and whether it was right."""

    pipeline: str
    kind: str  # the runbook's incident kind of the diagnosed cause
    fault: str
    incident: int | None = None
    state: str = "no incident"
    cause: str | None = None
    strategy: str | None = None
    outcome: str = "no incident"
    actions: int = 0
    calls: int = 0
    recover_seconds: float | None = None
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def kind_of(cause: str | None) -> str | None:
    """Return the runbook incident kind a diagnosed cause belongs to (the vocabulary's)."""
    return next((cat for cat, c in REASON_CAUSE.values() if c == cause), None)


def _strategy(incident: Mapping[str, Any]) -> str | None:
    for entry in reversed(incident.get("timeline") or []):
        detail = entry.get("detail")
        if entry.get("event") == "recovering" and isinstance(detail, Mapping):
            return str(detail["strategy"]) if detail.get("strategy") else None
    return None


def _outcome(incident: Mapping[str, Any]) -> str:
    state = str(incident["state"])
    events = {e.get("event") for e in incident.get("timeline") or []}
    if state == "resolved":
        return "recovered" if "recovered" in events else "resolved by itself"
    return state


def summarize(
    faults: Sequence[Fault],
    incidents: Sequence[Mapping[str, Any]],
    hits: Mapping[str, Mapping[str, int]],
) -> list[Row]:
    """Return one row per fault from the newest incident of its pipeline."""
    rows = []
    for fault in faults:
        row = Row(fault.pipeline, "-", fault.title)
        mine = [i for i in incidents if i.get("pipeline") == fault.pipeline]
        calls = sum(hits.get(fault.pipeline, {}).values())
        row.calls = calls
        if not mine:
            row.problems.append("no incident was opened")
            rows.append(row)
            continue
        incident = max(mine, key=lambda i: int(i["id"]))
        diagnosis = incident.get("diagnosis") or {}
        actions = [a for a in incident.get("actions") or [] if a.get("outcome") != "dry_run"]
        steps = [a.get("step") for a in actions]
        row.incident = int(incident["id"])
        row.state = str(incident["state"])
        row.cause = diagnosis.get("cause")
        row.kind = kind_of(row.cause) or "-"
        row.strategy = _strategy(incident)
        row.outcome = _outcome(incident)
        row.actions = len(actions)
        row.recover_seconds = _seconds(incident.get("opened_at"), incident.get("resolved_at"))
        if len(mine) > 1:
            row.problems.append(f"{len(mine)} incidents instead of one")
        if row.kind != fault.category:
            row.problems.append(f"incident kind {row.kind!r}, expected {fault.category!r}")
        if row.cause != fault.cause:
            row.problems.append(f"cause {row.cause!r}, expected {fault.cause!r}")
        if row.strategy != fault.strategy:
            row.problems.append(f"strategy {row.strategy!r}, expected {fault.strategy!r}")
        if row.state != fault.state:
            row.problems.append(f"state {row.state!r}, expected {fault.state!r}")
        if len(set(steps)) != len(steps):
            row.problems.append(f"a recovery step was recorded twice: {steps}")
        if calls != len(actions):
            row.problems.append(f"{calls} control calls but {len(actions)} recorded actions")
        rows.append(row)
    return rows


def _ttr(row: Row) -> str:
    if row.recover_seconds is not None:
        return f"{row.recover_seconds:.1f}s"
    return "- (needs a person)" if row.state == "escalated" else "-"


def render_table(rows: Sequence[Row]) -> str:
    """Return the summary as an aligned text table (also valid Markdown)."""
    head = (
        "pipeline",
        "incident kind",
        "fault",
        "cause found",
        "strategy",
        "outcome",
        "actions/calls",
        "time to recover",
    )
    body = [
        (
            r.pipeline,
            r.kind,
            r.fault,
            r.cause or "-",
            r.strategy or "- (none applies)",
            r.outcome + (" (!)" if r.problems else ""),
            f"{r.actions}/{r.calls}",
            _ttr(r),
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=True)]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    lines = [fmt(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [fmt(b) for b in body]
    return "\n".join(lines)


def rows_json(rows: Sequence[Row]) -> str:
    return json.dumps([r.to_json() for r in rows], indent=2)
