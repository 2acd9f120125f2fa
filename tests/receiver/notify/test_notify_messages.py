"""Rendered notifications: what each says, and hostile label text made inert in every format."""

from __future__ import annotations

import html.parser

import markdown
import pytest
from notify_helpers import incident, spec_with

from receiver.notify.events import EVENTS, event_for_timeline
from receiver.notify.messages import header_text, render
from rules.people import NOTIFY_EVENTS

SPEC = spec_with('      - {url: "json://127.0.0.1:1/x"}')
TEAM = SPEC.team("data-platform")


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def _tags(page: str) -> list[str]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def test_every_event_has_a_row_and_timeline_causes() -> None:
    assert tuple(EVENTS) == NOTIFY_EVENTS
    assert event_for_timeline("escalated") == "escalated"
    assert event_for_timeline("detected") == "opened"
    assert event_for_timeline("diagnosing") is None


def test_escalation_message_says_what_people_need() -> None:
    msg = render("escalated", incident(), TEAM, {"reason": "requires manual intervention"})
    text = msg.markdown
    assert msg.title == "[SEV2] etl_orders: escalated, needs a person"
    for expected in (
        "SEV2",
        "etl_orders",
        "escalated",
        "logic_error",
        "retry_with_backoff, 1 attempt, last failure",
        "commander Ada Lovelace (@ada)",
        "Asked of you",
        "requires manual intervention",
    ):
        assert expected in text, expected
    assert "http" not in text  # no external_url: no link at all


def test_the_link_appears_only_with_an_external_url() -> None:
    msg = render("opened", incident(), TEAM, external_url="https://pm.example.com/")
    assert "(https://pm.example.com/incidents/7)" in msg.markdown
    assert 'href="https://pm.example.com/incidents/7"' in msg.html


@pytest.mark.parametrize("event", NOTIFY_EVENTS)
def test_hostile_label_text_is_inert_in_every_format(event: str) -> None:
    detail = {"text": "@here <!channel> [y](http://evil.example)", "by": "@all", "reason": "@here"}
    msg = render(event, incident(hostile=True), TEAM, detail, external_url="https://pm.example")
    # chat: no mention, no link but ours, no emphasis, no raw Slack control sequence
    for bad in ("@channel", "@here", "@all", "<!everyone>", "<!channel>", "http://evil"):
        assert bad not in msg.markdown and bad not in msg.html, bad
    rendered = markdown.markdown(msg.markdown)
    assert rendered.count("<a ") == 1 and "<em>" not in rendered
    assert "<strong>bold" not in rendered
    # email HTML: only our own tags, one link (ours)
    assert set(_tags(msg.html)) <= {"p", "strong", "ul", "li", "a"}
    assert msg.html.count("<a ") == 1
    # subject: one line, so no header can be injected
    assert "\r" not in msg.title and "\n" not in msg.title


def test_header_text_is_one_line() -> None:
    assert header_text("a\r\nBcc: x\u2028y\x85z") == "a Bcc: x y z"
