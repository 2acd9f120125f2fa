"""Mobilization: tell a team's people about their incidents (chat, email, paging).

The spec's ``teams.<t>.notify`` destinations (``rules.people``) take events
(``events.EVENTS``); ``messages.render`` writes each message, ``send`` delivers
it through apprise. See docs/notifications.md.
"""

from __future__ import annotations

from receiver.notify.events import EVENTS, NotifyEvent, event_for_timeline
from receiver.notify.messages import Message, chat_text, header_text, html_text, render
from receiver.notify.send import AppriseSender, Delivery, NotifyConfigError, Sender

__all__ = [
    "EVENTS",
    "AppriseSender",
    "Delivery",
    "Message",
    "NotifyConfigError",
    "NotifyEvent",
    "Sender",
    "chat_text",
    "event_for_timeline",
    "header_text",
    "html_text",
    "render",
]
