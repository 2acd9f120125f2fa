"""Render the incidents page (``GET /``): one small server-side HTML document.

No template engine and no JavaScript: the page is built from a handful of
functions, and every value that came from outside (alert labels,
annotations, timeline details, post-mortem text) passes through ``_e``
(``html.escape`` with quotes) exactly once, where it is placed. CSS class
names come from fixed sets, never from data.

Example::

    html = render_page(incidents, postmortems, now=utcnow(), query=PageQuery())
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from receiver.models import INCIDENT_STATES, Incident, TimelineEntry, format_time
from receiver.report.facts import (
    alert_names,
    alert_summaries,
    clean_text,
    format_duration,
    incident_began,
    incident_duration,
)
from rules.severity import SEVS

__all__ = ["PageQuery", "render_page"]


@dataclass(frozen=True)
class PageQuery:
    """The filters and page window the page was asked for (already validated)."""

    state: str | None = None
    pipeline: str | None = None
    sev: str | None = None
    limit: int = 50
    offset: int = 0

    def params(self, **changes: Any) -> str:
        """Return the query string of this query with ``changes`` applied."""
        values = {
            "state": self.state,
            "pipeline": self.pipeline,
            "sev": self.sev,
            "limit": self.limit,
            "offset": self.offset,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem 1.5rem;
color:#1d2330;background:#f7f8fa}
h1{font-size:1.4rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:0 0 .4rem}
h3{font-size:.95rem;margin:.8rem 0 .3rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.3rem .55rem;border-bottom:1px solid #e3e6eb;vertical-align:top}
th{background:#eef0f4;font-weight:600}td.wrap{overflow-wrap:anywhere}
.incident{background:#fff;border:1px solid #dfe3e8;border-radius:6px;padding:.8rem 1rem;
margin:1rem 0}
.badge{display:inline-block;padding:0 .45rem;border-radius:4px;font-size:.85rem;
font-weight:600;background:#e3e6eb}
.sev-1,.sev-2{background:#c62828;color:#fff}.sev-3{background:#ef8f00;color:#fff}
.sev-4,.sev-5{background:#607d8b;color:#fff}
.st-open,.st-diagnosing,.st-recovering{background:#fde7c2}.st-escalated{background:#f8c8c8}
.st-resolved,.st-closed{background:#cdebd0}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f3f4f7;padding:.7rem;
border-radius:4px;font-size:.85rem}
.banner{background:#fff3cd;border:1px solid #e0c36a;padding:.5rem .8rem;border-radius:4px}
form{margin:0 0 1rem}form *{font:inherit;margin-right:.4rem}
.muted{color:#5c6675}nav a{margin-right:1rem}
"""


def _e(value: object) -> str:
    """Escape untrusted text for HTML text and quoted attributes."""
    return html.escape(clean_text(value), quote=True)


def _state_class(state: str) -> str:
    return f"st-{state}" if state in INCIDENT_STATES else "st-unknown"


def _sev_class(sev: str) -> str:
    return f"sev-{sev[3]}" if sev in SEVS else "sev-unknown"


def _badge(text: str, css: str) -> str:
    return f'<span class="badge {css}">{_e(text)}</span>'


def render_page(
    incidents: Sequence[Incident],
    postmortems: Mapping[int, str],
    *,
    now: datetime,
    query: PageQuery,
    has_more: bool = False,
    banner: str | None = None,
) -> str:
    """Return the whole HTML page for ``incidents`` (newest first, as the store gives them).

    ``banner``: a notice shown above everything (e.g. that no users are configured).
    """
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>pipemedic incidents</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>pipemedic — incidents</h1>",
        f'<p class="banner">{_e(banner)}</p>' if banner else "",
        '<p><a href="/status">status page</a> · <a href="/action-items">action items</a></p>',
        _filter_form(query),
        _summary_table(incidents, now),
        *(_incident_section(i, postmortems.get(i.id, ""), now) for i in incidents),
        _pager(query, len(incidents), has_more),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _filter_form(query: PageQuery) -> str:
    def select(name: str, options: Sequence[str], chosen: str | None) -> str:
        opts = ['<option value="">any</option>'] + [
            f"<option{' selected' if o == chosen else ''}>{_e(o)}</option>" for o in options
        ]
        return f'<label>{name} <select name="{name}">{"".join(opts)}</select></label>'

    return (
        '<form method="get" action="/">'
        + select("state", INCIDENT_STATES, query.state)
        + select("sev", SEVS, query.sev)
        + f'<label>pipeline <input name="pipeline" value="{_e(query.pipeline or "")}"></label>'
        + '<button type="submit">filter</button></form>'
    )


def _summary_table(incidents: Sequence[Incident], now: datetime) -> str:
    if not incidents:
        return '<p class="muted">No incidents.</p>'
    rows = []
    for i in incidents:
        cause = i.diagnosis.cause if i.diagnosis else "-"
        rows.append(
            "<tr>"
            f'<td><a href="#incident-{i.id}">#{i.id}</a></td>'
            f"<td>{_badge(i.state, _state_class(i.state))}</td>"
            f"<td>{_badge(i.sev, _sev_class(i.sev))}</td>"
            f'<td class="wrap">{_e(i.pipeline)}</td>'
            f'<td class="wrap">{_e(", ".join(alert_names(i)) or "-")}</td>'
            f'<td class="wrap">{_e(cause)}</td>'
            f"<td>{_e(_short_time(incident_began(i)))}</td>"
            f"<td>{_e(_lasted(i, now))}</td>"
            "</tr>"
        )
    head = (
        "<tr><th>Incident</th><th>State</th><th>SEV</th><th>Pipeline</th><th>Alerts</th>"
        "<th>Cause</th><th>Began (UTC)</th><th>Duration</th></tr>"
    )
    return f'<table class="incidents"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _incident_section(incident: Incident, postmortem: str, now: datetime) -> str:
    i = incident
    roles = ", ".join(
        f"{_e(role)}: {_e(_who(i.roles.get(role)))}"
        for role in ("commander", "scribe", "liaison", "sme")
        if i.roles.get(role)
    )
    return (
        f'<section class="incident" id="incident-{i.id}">'
        f'<h2><a href="/incidents/{i.id}">#{i.id}</a> {_e(i.pipeline)} '
        f"{_badge(i.state, _state_class(i.state))} "
        f"{_badge(i.sev, _sev_class(i.sev))}</h2>"
        f'<p class="muted">team {_e(i.team or "-")}'
        f"{' · ' + roles if roles else ''} · {_e(_lasted(i, now))}</p>"
        f"{_alerts(i)}"
        "<h3>Timeline</h3>"
        f"{_timeline(i.sorted_timeline())}"
        "<details><summary>Post-mortem draft</summary>"
        f"<pre>{html.escape(postmortem, quote=True)}</pre></details>"
        f'<p class="muted"><a href="/incidents/{i.id}">incident page</a> · '
        f'<a href="/incidents/{i.id}/postmortem">Markdown</a></p>'
        "</section>"
    )


def _alerts(incident: Incident) -> str:
    items = [
        f"<li><strong>{_e(name or '?')}</strong>{': ' + _e(summary) if summary else ''}</li>"
        for name, summary in alert_summaries(incident)
    ]
    return f'<ul class="alerts">{"".join(items)}</ul>' if items else ""


def _timeline(timeline: Sequence[TimelineEntry]) -> str:
    if not timeline:
        return '<p class="muted">No timeline yet.</p>'
    rows = [
        f"<tr><td>{_e(format_time(t.at))}</td><td>{_e(t.event)}</td>"
        f'<td class="wrap">{_e(_detail(t.detail))}</td></tr>'
        for t in timeline
    ]
    head = "<tr><th>Time (UTC)</th><th>Event</th><th>Detail</th></tr>"
    return f'<table class="timeline"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _pager(query: PageQuery, shown: int, has_more: bool) -> str:
    links = []
    if query.offset > 0:
        prev = max(query.offset - query.limit, 0)
        links.append(f'<a href="/?{_e(query.params(offset=prev))}">← newer</a>')
    if has_more:
        links.append(f'<a href="/?{_e(query.params(offset=query.offset + shown))}">older →</a>')
    return f"<nav>{''.join(links)}</nav>" if links else ""


def _lasted(incident: Incident, now: datetime) -> str:
    took = format_duration(incident_duration(incident, now))
    if incident.resolved_at is None and incident.closed_at is None:
        return f"ongoing for {took}"
    return f"lasted {took}"


def _short_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _who(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _detail(detail: Any) -> str:
    if detail is None:
        return ""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, Mapping):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in sorted(detail.items()))
    return json.dumps(detail, sort_keys=True, default=str, ensure_ascii=False)


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
