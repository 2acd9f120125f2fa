"""The status page for data consumers (``GET /status``): what is broken, since when, what it feeds.

One row per pipeline with an incident that is not closed: a plain state
(``outage`` for SEV1/SEV2, ``degraded`` for SEV3..SEV5 while unresolved,
``operational`` once recovered or resolved), since when, what the pipeline feeds (the
spec's ``description`` and ``impact``) and the liaison's latest status
update. Nothing internal: no labels, evidence, actions, people, incident
ids or links to the receiver's other pages. Built from an allow-list of
fields, so a new incident field never leaks here by accident.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from receiver.models import Incident, format_time
from receiver.report.facts import clean_text
from rules.spec import Spec

__all__ = ["plain_state", "render_status", "status_rows"]

_CSS = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:56rem;padding:1rem}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.4rem;"
    "border-bottom:1px solid #e3e6eb;vertical-align:top}.outage{color:#b71c1c}"
    ".degraded{color:#b26a00}.operational{color:#1b5e20}"
)


def plain_state(incident: Incident) -> str:
    """operational once recovered (verified) or resolved; else outage or degraded by SEV."""
    if incident.state in ("recovered", "resolved", "closed"):
        return "operational"
    return "outage" if incident.sev in ("SEV1", "SEV2") else "degraded"


def _latest_update(incident: Incident) -> dict[str, Any] | None:
    for entry in sorted(incident.timeline, key=lambda t: t.at, reverse=True):
        if entry.event == "status_update" and isinstance(entry.detail, dict):
            return {"text": clean_text(entry.detail.get("text", "")), "at": format_time(entry.at)}
    return None


def status_rows(incidents: Sequence[Incident], spec: Spec | None) -> list[dict[str, Any]]:
    """Return one public row per pipeline (its newest incident that is not closed)."""
    rows: dict[str, dict[str, Any]] = {}
    for incident in sorted(incidents, key=lambda i: i.id, reverse=True):
        if incident.state == "closed" or incident.pipeline in rows:
            continue
        pipeline = spec.pipeline(incident.pipeline) if spec is not None else None
        state = plain_state(incident)
        since = incident.resolved_at if state == "operational" else incident.opened_at
        rows[incident.pipeline] = {
            "pipeline": clean_text(incident.pipeline),
            "state": state,
            "since": format_time(since),
            "feeds": clean_text(pipeline.description) if pipeline else "",
            "users_affected": pipeline.impact if pipeline else "",
            "update": _latest_update(incident),
        }
    return sorted(rows.values(), key=lambda r: (r["state"] == "operational", r["pipeline"]))


def render_status(rows: Sequence[dict[str, Any]], now: datetime) -> str:
    def e(value: Any) -> str:
        return html.escape(str(value or ""), quote=True)

    body = "".join(
        f'<tr><td>{e(r["pipeline"])}</td><td class="{e(r["state"])}">{e(r["state"])}</td>'
        f"<td>{e(r['since'])}</td><td>{e(r['feeds'])}"
        f"{' (users affected: ' + e(r['users_affected']) + ')' if r['users_affected'] else ''}"
        f"</td><td>{e((r['update'] or {}).get('text'))}"
        f"{' <small>' + e(r['update']['at']) + '</small>' if r['update'] else ''}</td></tr>"
        for r in rows
    )
    table = (
        "<table><thead><tr><th>Pipeline</th><th>State</th><th>Since (UTC)</th>"
        f"<th>What it feeds</th><th>Latest update</th></tr></thead><tbody>{body}</tbody></table>"
        if rows
        else "<p>All pipelines operational.</p>"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="60"><title>Data pipeline status</title>'
        f"<style>{_CSS}</style></head><body><h1>Data pipeline status</h1>"
        f"<p>As of {e(format_time(now))}.</p>{table}</body></html>\n"
    )
