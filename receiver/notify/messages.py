"""Render one notification: Markdown for chat, HTML (apprise adds the plain part) for email.

Every message says the SEV, pipeline and state, the cause with its key
evidence in one line, what automation did, who holds which role, the blast
radius when downstream pipelines joined (lineage: their datasets, their
teams), what is asked of the reader and, only when the receiver knows its ``external_url``,
a link to the incident page (never a loopback link).

Alert labels and annotations, diagnosis summaries and people's notes are
untrusted: ``chat_text`` and ``html_text`` make them inert (no mentions such
as ``@channel``/``<!everyone>``, no links, no formatting) and ``header_text``
keeps them out of mail headers (no CR/LF, so no injected ``Bcc:``). Mentions
of role holders come from the spec's ``chat`` handles, on purpose.

Example::

    msg = render("escalated", incident, team, detail, external_url="https://pm.example.com")
    msg.title, msg.markdown, msg.html
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from receiver.models import Incident
from receiver.notify.events import EVENTS
from receiver.report import markdown as md
from receiver.report.facts import clean_text
from rules.spec import Team

__all__ = ["Message", "chat_text", "header_text", "html_text", "render"]

_ZWSP = "\u200b"
_MAX_LINE = 300
# Auto-linkers match scheme:// and www.; a zero-width space breaks both.
_LINKISH = re.compile(r"(?i)(://|www\.)")


@dataclass(frozen=True)
class Message:
    """One rendered notification; ``title`` is a safe one-line subject."""

    event: str
    title: str
    markdown: str
    html: str

    def to_json(self) -> dict[str, str]:
        return {
            "event": self.event,
            "title": self.title,
            "markdown": self.markdown,
            "html": self.html,
        }


def _short(value: object, limit: int = _MAX_LINE) -> str:
    text = clean_text(value).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _defuse(text: str) -> str:
    text = text.replace("@", "@" + _ZWSP)
    return _LINKISH.sub(lambda m: m.group(1)[0] + _ZWSP + m.group(1)[1:], text)


def chat_text(value: object, limit: int = _MAX_LINE) -> str:
    """Return untrusted text as inert Markdown: escaped, no mention, no auto-link."""
    return _defuse(md.text(_short(value, limit)))


def html_text(value: object, limit: int = _MAX_LINE) -> str:
    """Return untrusted text as inert HTML: escaped, no mention, no auto-link."""
    return _defuse(html.escape(_short(value, limit), quote=True))


def header_text(value: object, limit: int = 160) -> str:
    """Return text fit for a mail subject: one line, no control or separator characters."""
    text = "".join(
        " " if (ch in "\r\n\t\v\f\x85\u2028\u2029" or ord(ch) < 0x20 or ord(ch) == 0x7F) else ch
        for ch in str(value)
    )
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class _Line:
    """One line of the message: a label and parts, each trusted or untrusted."""

    label: str
    parts: tuple[tuple[str, bool], ...]  # (text, trusted)


def _untrusted(text: object) -> tuple[str, bool]:
    return (str(text), False)


def _trusted(text: str) -> tuple[str, bool]:
    return (text, True)


def render(
    event: str,
    incident: Incident,
    team: Team | None,
    detail: Any = None,
    *,
    external_url: str | None = None,
) -> Message:
    """Render the ``event`` message of ``incident`` (``detail``: the causing entry's)."""
    spec = EVENTS[event]
    state = spec.state or incident.state
    lines = [
        _Line(
            "Incident",
            (
                _trusted(f"#{incident.id} "),
                _trusted(incident.sev),
                _trusted(" · "),
                _untrusted(incident.pipeline),
                _trusted(f" · {state}"),
            ),
        ),
        _cause(incident),
        _automation(incident),
        *_roles(incident, team),
        *_blast_radius(incident),
        *_event_lines(event, detail),
        _Line("Asked of you", (_trusted(spec.ask),)),
    ]
    link = _link(incident, external_url)
    title = header_text(f"[{incident.sev}] {incident.pipeline}: {_TITLES[event]}")
    chat = [f"**{chat_text(title)}**"] + [_chat_line(line) for line in lines]
    page = [f"<p><strong>{html_text(title)}</strong></p>", "<ul>"]
    page += [f"<li>{_html_line(line)}</li>" for line in lines]
    page.append("</ul>")
    if link:
        chat.append(f"[Open incident #{incident.id}]({link})")
        page.append(
            f'<p><a href="{html.escape(link, quote=True)}">Open incident #{incident.id}</a></p>'
        )
    return Message(
        event=event, title=_defuse(title), markdown="\n".join(chat), html="\n".join(page)
    )


_TITLES: dict[str, str] = {
    "opened": "incident opened",
    "escalated": "escalated, needs a person",
    "approval_needed": "a recovery step waits for approval",
    "handoff": "role handed off",
    "status_update": "status update",
    "resolved": "resolved",
    "closed": "closed",
}
assert set(_TITLES) == set(EVENTS)


def _chat_line(line: _Line) -> str:
    body = "".join(t if trusted else chat_text(t) for t, trusted in line.parts)
    return f"**{line.label}:** {body}"


def _html_line(line: _Line) -> str:
    body = "".join(html.escape(t) if trusted else html_text(t) for t, trusted in line.parts)
    return f"<strong>{html.escape(line.label)}:</strong> {body}"


def _cause(incident: Incident) -> _Line:
    d = incident.diagnosis
    if d is None:
        return _Line("Cause", (_trusted("not diagnosed yet"),))
    parts: list[tuple[str, bool]] = [_untrusted(d.cause)]
    if d.summary:
        parts += [_trusted(" — "), _untrusted(_short(d.summary, 160))]
    key = next((e for e in d.evidence if e.note), d.evidence[0] if d.evidence else None)
    if key is not None:
        parts += [
            _trusted(" (evidence: "),
            _untrusted(_short(key.note or key.query, 120)),
            _trusted(")"),
        ]
    return _Line("Cause", tuple(parts))


def _automation(incident: Incident) -> _Line:
    if incident.actions:
        last = incident.actions[-1]
        tried = sum(1 for a in incident.actions if a.strategy == last.strategy)
        text = f"{last.strategy}, {tried} attempt{'s' if tried != 1 else ''}, last {last.outcome}"
        return _Line("Automation", (_untrusted(text),))
    finished = [t for t in incident.timeline if t.event == "recovery_finished"]
    if finished and isinstance(finished[-1].detail, Mapping):
        d = finished[-1].detail
        text = f"{d.get('strategy') or 'no strategy'}: {d.get('outcome')} ({d.get('reason')})"
        return _Line("Automation", (_untrusted(text),))
    return _Line("Automation", (_trusted("no recovery action taken"),))


def _roles(incident: Incident, team: Team | None) -> list[_Line]:
    parts: list[tuple[str, bool]] = []
    for role in ("commander", "scribe", "liaison", "sme"):
        value = incident.roles.get(role)
        names = [v for v in (value if isinstance(value, list) else [value]) if v]
        if not names:
            continue
        if parts:
            parts.append(_trusted("; "))
        parts.append(_trusted(f"{role} "))
        for i, name in enumerate(names):
            if i:
                parts.append(_trusted(", "))
            parts.append(_untrusted(name))
            person = team.person(str(name)) if team is not None else None
            if person is not None and person.chat:  # a spec handle: mentioned on purpose
                parts.append(_trusted(f" (@{person.chat.lstrip('@')})"))
    return [_Line("Roles", tuple(parts))] if parts else [_Line("Roles", (_trusted("none"),))]


def _blast_radius(incident: Incident, shown: int = 5) -> list[_Line]:
    """The downstream pipelines (lineage) and the datasets they write, the first ``shown``."""
    found = incident.blast_radius()
    if not found:
        return []
    parts: list[tuple[str, bool]] = []
    for r in found[:shown]:
        if parts:
            parts.append(_trusted("; "))
        parts.append(_untrusted(r["pipeline"]))
        names = [d["name"] for d in r["datasets"]]
        if names:
            parts += [_trusted(" ("), _untrusted(", ".join(names[:3])), _trusted(")")]
    more = len(found) - shown
    if more > 0:
        parts.append(_trusted(f"; and {more} more"))
    teams = sorted({r["team"] for r in found if r["team"]})
    if teams:
        parts += [_trusted(" · teams "), _untrusted(", ".join(teams))]
    return [_Line(f"Blast radius ({len(found)} downstream)", tuple(parts))]


def _event_lines(event: str, detail: Any) -> list[_Line]:
    if not isinstance(detail, Mapping):
        return []
    out: list[_Line] = []
    if event == "status_update" and detail.get("text"):
        out.append(_Line("Update", (_untrusted(detail["text"]),)))
    elif event == "handoff":
        text = f"{detail.get('role', 'role')} to {detail.get('to', '?')}"
        out.append(_Line("Hand-off", (_untrusted(text),)))
        if detail.get("note"):
            out.append(_Line("Note", (_untrusted(detail["note"]),)))
    elif event == "approval_needed":
        text = " ".join(str(detail.get(k, "")) for k in ("strategy", "action", "target")).strip()
        out.append(_Line("Step", (_untrusted(text or "recovery step"),)))
    elif event == "escalated" and detail.get("reason"):
        out.append(_Line("Why", (_untrusted(detail["reason"]),)))
    by = detail.get("by")
    if by:
        out.append(_Line("By", (_untrusted(by),)))
    return out


def _link(incident: Incident, external_url: str | None) -> str | None:
    if not external_url:
        return None
    return f"{external_url.rstrip('/')}/incidents/{incident.id}"
