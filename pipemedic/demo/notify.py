"""The demo's people: a local SMTP server and chat sink, and what each received.

``pipemedic demo`` starts a real SMTP server (aiosmtpd) and a Mattermost-style
chat hook on loopback (:mod:`pipemedic.sinks`), gives every team of the run's
spec copy two destinations (every event to the chat; ``escalated`` by email
to the commander), and at the end says what each received.

Example::

    with DemoPeople() as people:
        raw["teams"] = people.add_destinations(raw["teams"])
        ...
        people.summary()   # ['chat: 7 messages (opened: 5, escalated: 1, resolved: 1)', ...]
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Self

from pipemedic.sinks import ChatSink, MailSink

__all__ = ["DemoPeople"]

# The message titles (receiver.notify.messages) name the event after the pipeline.
_TITLE_EVENTS = {
    "incident opened": "opened",
    "escalated, needs a person": "escalated",
    "a recovery step waits for approval": "approval_needed",
    "role handed off": "handoff",
    "status update": "status_update",
    "resolved": "resolved",
    "closed": "closed",
}


class DemoPeople:
    """The demo's SMTP server and chat sink, and the destinations pointing at them."""

    def __init__(self) -> None:
        self.mail = MailSink()
        self.chat = ChatSink()

    def __enter__(self) -> Self:
        self.mail.__enter__()
        self.chat.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.chat.__exit__(None, None, None)
        self.mail.__exit__()

    def destinations(self) -> list[dict[str, Any]]:
        """Return the ``notify:`` entries every demo team gets."""
        return [
            {"url": f"mmost://{self.chat.address}/demo-incidents"},
            {
                "url": f"mailto://{self.mail.address}?from=pipemedic-demo@example.com&mode=insecure",
                "events": ["escalated"],
                "to": ["commander"],
            },
        ]

    def chat_events(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for post in list(self.chat.posts):
            first = str(post.get("text", "")).split("\n", 1)[0]
            event = next((e for t, e in _TITLE_EVENTS.items() if first.endswith(f"{t}**")), "?")
            found[event] += 1
        return found

    def summary(self) -> list[str]:
        """Say what the chat sink and the SMTP server received, one line each (or per email)."""
        events = self.chat_events()
        counts = ", ".join(f"{e}: {n}" for e, n in sorted(events.items())) or "nothing"
        lines = [
            f"chat sink (Mattermost hook on {self.chat.address}): "
            f"{sum(events.values())} messages ({counts})"
        ]
        lines.append(f"SMTP server on {self.mail.address}: {len(self.mail.messages)} email(s)")
        for message, rcpt in zip(
            list(self.mail.messages), list(self.mail.recipients), strict=False
        ):
            lines.append(f"  to {', '.join(rcpt)}: {message['Subject']}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "chat": dict(self.chat_events()),
            "emails": [
                {"to": list(rcpt), "subject": str(m["Subject"])}
                for m, rcpt in zip(
                    list(self.mail.messages), list(self.mail.recipients), strict=False
                )
            ],
        }
