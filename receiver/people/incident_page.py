"""Render one incident's page for people (``GET /incidents/{id}`` with ``Accept: text/html``).

The page has two parts: the live part (state, SEV, people, the step waiting
for approval, the timeline, the post-mortem draft) in an ``<iframe>`` that
reloads itself every few seconds (``GET /incidents/{id}/live``), and the forms
for every action around it, so typing into a form is never lost to a reload.
No JavaScript: plain POST forms answered with a redirect back. Every form
carries the CSRF token (``receiver.people.access``).

Links go only where they are known to be safe: the runbook (``http(s)`` only)
and the Prometheus graph when its host is the configured Prometheus external
URL's (an alert's ``generatorURL`` is untrusted). Text that came from outside
(notes, status updates, labels) is escaped once, where it is placed, and
never becomes a link or markup.

Example::

    html = render_incident(incident, view)
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from receiver.models import Incident, TimelineEntry, format_time
from receiver.people.actions import ROLES
from receiver.report.page import _CSS, _badge, _detail, _e, _sev_class, _state_class
from rules.severity import SEVS

__all__ = [
    "PageView",
    "render_error",
    "render_incident",
    "render_live",
    "render_login",
    "short_time",
]

REFRESH_SECONDS = 10

_MORE_CSS = """
.banner{background:#fff3cd;border:1px solid #e0c36a;padding:.5rem .8rem;border-radius:4px}
.pending{background:#fde7c2;border:1px solid #e0b060;padding:.5rem .8rem;border-radius:4px}
iframe{width:100%;height:34rem;border:1px solid #dfe3e8;border-radius:6px;background:#fff}
.forms{display:grid;grid-template-columns:repeat(auto-fill,minmax(20rem,1fr));gap:.8rem}
.forms form{background:#fff;border:1px solid #dfe3e8;border-radius:6px;padding:.6rem .8rem}
.forms label{display:block;margin:.2rem 0}.forms textarea,.forms input[type=text]{width:95%}
.error{background:#f8c8c8;padding:.5rem .8rem;border-radius:4px}
"""


@dataclass(frozen=True)
class PageView:
    """What the page needs besides the incident: who looks, their token, safe link hosts."""

    person: str
    role: str
    csrf: str
    prometheus_host: str | None  # the only host a graph link may point at
    runbook_url: str | None = None  # the spec's, trusted
    banner: str | None = None  # e.g. "no users configured"
    postmortem: str = ""


def short_time(value: datetime | None, now: datetime | None = None) -> str:
    """``14:03:27`` today, ``Dec 06 14:03`` another day (UTC); the full time in a tooltip."""
    if value is None:
        return "-"
    value = value.astimezone(UTC)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    text = (
        value.strftime("%H:%M:%S") if value.date() == now.date() else value.strftime("%b %d %H:%M")
    )
    return (
        f'<time datetime="{_e(format_time(value))}" title="{_e(format_time(value))}">{text}</time>'
    )


def _head(title: str, refresh: bool = False) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{_e(title)}</title><style>{_CSS}{_MORE_CSS}</style></head><body>"
    )


def _person(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("name") or "")
    if isinstance(value, list | tuple):
        return ", ".join(_person(v) for v in value)
    return "" if value is None else str(value)


def _safe_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def graph_links(incident: Incident, prometheus_host: str | None) -> list[tuple[str, str]]:
    """Return (alert name, generatorURL) for URLs on the configured Prometheus host only."""
    if not prometheus_host:
        return []
    found: list[tuple[str, str]] = []
    for alert in incident.alerts:
        url = str(alert.get("generatorURL") or "")
        parts = urlsplit(url)
        if _safe_http(url) and parts.netloc.lower() == prometheus_host.lower() and "@" not in url:
            name = str((alert.get("labels") or {}).get("alertname", "alert"))
            if (name, url) not in found:
                found.append((name, url))
    return found


def render_live(incident: Incident, view: PageView, now: datetime) -> str:
    """The part of the page that reloads itself: state, people, approval, timeline, draft."""
    i = incident
    people = "".join(
        f"<tr><th>{_e(role)}</th><td>{_e(_person(i.roles.get(role)) or '-')}</td></tr>"
        for role in ROLES
    )
    ack = (
        f"acknowledged by {_e(i.acknowledged_by)} at {short_time(i.acknowledged_at, now)}"
        if i.acknowledged_by
        else "not acknowledged yet"
    )
    parts = [
        _head(f"incident {i.id}", refresh=i.state != "closed"),
        f"<h2>#{i.id} {_e(i.pipeline)} {_badge(i.state, _state_class(i.state))} "
        f"{_badge(i.sev, _sev_class(i.sev))}</h2>",
        f'<p class="muted">team {_e(i.team or "-")} · opened {short_time(i.opened_at, now)}'
        f" · {ack}</p>",
        _pending(i, now),
        f'<table class="people"><tbody>{people}</tbody></table>',
        _merges(i),
        _blast_radius(i),
        "<h3>Timeline</h3>",
        _timeline(i.timeline, now),
        "<details><summary>Post-mortem draft</summary>"
        f"<pre>{html.escape(view.postmortem, quote=True)}</pre></details>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _merges(incident: Incident) -> str:
    """Links between an incident merged into its upstream's and that one (lineage)."""
    merges = incident.merges()
    parts = []
    if isinstance(merges["merged_into"], int):
        n = merges["merged_into"]
        parts.append(f'merged into the upstream\'s <a href="/incidents/{n}">#{n}</a>')
    ids = [n for n in merges["merged_from"] if isinstance(n, int)]
    if ids:
        links = ", ".join(f'<a href="/incidents/{n}">#{n}</a>' for n in ids)
        parts.append(f"downstream incidents merged into it: {links}")
    return f'<p class="muted">{" · ".join(parts)}</p>' if parts else ""


def _blast_radius(incident: Incident) -> str:
    """The downstream pipelines whose alerts joined this incident, their teams and datasets."""
    found = incident.blast_radius()
    if not found:
        return ""
    rows = "".join(
        f"<tr><td>{_e(r['pipeline'])}</td><td>{_e(r['team'] or '-')}</td>"
        f"<td>{_e(r['impact'] or '-')}</td><td>{_e(r['hops'])}</td>"
        f'<td class="wrap">{", ".join(_e(d["name"]) for d in r["datasets"]) or "-"}</td>'
        f"<td>{_e(r['alerts']['firing'])} firing, {_e(r['alerts']['resolved'])} resolved</td></tr>"
        for r in found
    )
    head = (
        "<tr><th>Pipeline</th><th>Team</th><th>Impact</th><th>Hops</th><th>Datasets</th>"
        "<th>Alerts</th></tr>"
    )
    return (
        f"<h3>Blast radius ({len(found)} downstream)</h3>"
        f'<table class="blast"><thead>{head}</thead><tbody>{rows}</tbody></table>'
    )


def _pending(incident: Incident, now: datetime) -> str:
    pending = incident.pending_approval
    if not pending:
        return ""
    decision = pending.get("decision")
    said = (
        f" — {_e(decision.get('decision'))} by {_e(decision.get('by'))}, waiting for a worker"
        if isinstance(decision, Mapping)
        else ""
    )
    return (
        f'<p class="pending"><strong>Waiting for approval:</strong> {_e(pending.get("step"))} '
        f"({_e(pending.get('action'))}) · asked {_e(pending.get('requested_at'))} · "
        f"escalates at {_e(pending.get('timeout_at'))}{said}</p>"
    )


def _timeline(timeline: Sequence[TimelineEntry], now: datetime) -> str:
    if not timeline:
        return '<p class="muted">No timeline yet.</p>'
    rows = [
        f"<tr><td>{short_time(t.at, now)}</td><td>{_e(t.event)}</td>"
        f"<td>{_e(t.by or '')}</td>"
        f'<td class="wrap">{_e(_detail(t.detail))}</td></tr>'
        for _, t in sorted(enumerate(timeline), key=lambda p: (p[1].at, p[0]))
    ]
    head = "<tr><th>Time (UTC)</th><th>Event</th><th>By</th><th>Detail</th></tr>"
    return f'<table class="timeline"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _form(incident: Incident, action: str, title: str, csrf: str, fields: str, button: str) -> str:
    return (
        f'<form method="post" action="/incidents/{incident.id}/{action}" id="form-{action}">'
        f"<h3>{_e(title)}</h3>"
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">{fields}'
        f'<button type="submit">{_e(button)}</button></form>'
    )


def _text(name: str, label: str, *, area: bool = False) -> str:
    box = (
        f'<textarea name="{name}" rows="3" required></textarea>'
        if area
        else f'<input type="text" name="{name}" required>'
    )
    return f"<label>{_e(label)}<br>{box}</label>"


def _select(name: str, label: str, options: Sequence[str]) -> str:
    opts = "".join(f'<option value="{_e(o)}">{_e(o)}</option>' for o in options)
    return f'<label>{_e(label)} <select name="{name}">{opts}</select></label>'


def render_incident(incident: Incident, view: PageView, now: datetime) -> str:
    """The incident's whole page: links, the live frame, and a form per action."""
    i, csrf = incident, view.csrf
    links = [f'<a href="/incidents/{i.id}/postmortem">post-mortem (Markdown)</a>']
    if view.runbook_url and _safe_http(view.runbook_url):
        links.append(f'<a href="{_e(view.runbook_url)}" rel="noreferrer">runbook</a>')
    for name, url in graph_links(i, view.prometheus_host):
        links.append(f'<a href="{_e(url)}" rel="noreferrer">graph: {_e(name)}</a>')
    parts = [
        _head(f"incident {i.id} · {i.pipeline}"),
        f'<p><a href="/">← all incidents</a> · <a href="/status">status page</a> · '
        f"signed in as {_e(view.person)} ({_e(view.role)})</p>",
    ]
    if view.banner:
        parts.append(f'<p class="banner">{_e(view.banner)}</p>')
    parts += [
        f"<h1>Incident #{i.id} — {_e(i.pipeline)}</h1>",
        # the live part, also readable without frames
        f'<iframe src="/incidents/{i.id}/live" title="incident {i.id} (live)"></iframe>',
        f'<p class="muted">{" · ".join(links)}</p>',
    ]
    if view.role == "responder":
        parts.append(_forms(i, csrf))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _forms(i: Incident, csrf: str) -> str:
    forms = [
        _form(i, "acknowledge", "Acknowledge", csrf, "", "I take it"),
        _form(
            i,
            "roles",
            "Assign a role",
            csrf,
            _select("role", "Role", ROLES) + _text("person", "Person"),
            "Assign",
        ),
        _form(i, "notes", "Add a note", csrf, _text("text", "Note", area=True), "Add note"),
        _form(
            i,
            "status-updates",
            "Status update (liaison)",
            csrf,
            _text("text", "Update for data consumers", area=True),
            "Publish",
        ),
        _form(
            i,
            "severity",
            "Change severity",
            csrf,
            _select("sev", "SEV", SEVS) + _text("why", "Why"),
            "Set SEV",
        ),
        _form(
            i,
            "handoff",
            "Hand off",
            csrf,
            _select("role", "Role", ROLES) + _text("to", "To") + _text("note", "Note", area=True),
            "Hand off",
        ),
        _form(
            i,
            "approve",
            "Approve the waiting step",
            csrf,
            '<label>Why (optional)<br><input type="text" name="why"></label>',
            "Approve",
        ),
        _form(
            i,
            "reject",
            "Reject the waiting step (escalates)",
            csrf,
            '<label>Why (optional)<br><input type="text" name="why"></label>',
            "Reject",
        ),
        _form(i, "resolve", "Resolve", csrf, _text("how", "How it was resolved"), "Resolve"),
        _form(
            i,
            "close",
            "Close with the review",
            csrf,
            _text("preventive_measures", "Preventive measures (one per line)", area=True)
            + "<label>Action items, one per line: action | owner | YYYY-MM-DD<br>"
            '<textarea name="action_items" rows="3"></textarea></label>',
            "Close",
        ),
    ]
    return f'<h2>Act</h2><div class="forms">{"".join(forms)}</div>'


def render_login(next_path: str, csrf: str, error: str | None = None) -> str:
    parts = [_head("pipemedic sign in"), "<h1>pipemedic — sign in</h1>"]
    if error:
        parts.append(f'<p class="error">{_e(error)}</p>')
    parts.append(
        '<form method="post" action="/login" id="login">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        f'<input type="hidden" name="next" value="{_e(next_path)}">'
        '<label>User <input type="text" name="user" autocomplete="username" required></label>'
        '<label>Password <input type="password" name="password" '
        'autocomplete="current-password" required></label>'
        '<button type="submit">Sign in</button></form></body></html>'
    )
    return "\n".join(parts) + "\n"


def render_error(status: int, message: str, back: str) -> str:
    return (
        _head(f"{status}")
        + f'<h1>{status}</h1><p class="error">{_e(message)}</p>'
        + f'<p><a href="{_e(back)}">back</a></p></body></html>\n'
    )
