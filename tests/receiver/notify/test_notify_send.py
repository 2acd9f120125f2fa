"""apprise delivery to real loopback servers: aiosmtpd for email, an HTTP sink for chat."""

from __future__ import annotations

import markdown
import pytest
from notify_helpers import HOSTILE, incident, spec_with

from pipemedic.sinks import ChatSink, MailSink
from receiver.notify.messages import render
from receiver.notify.send import AppriseSender, NotifyConfigError


async def test_escalation_email_reaches_smtp_with_html_and_text_and_no_injected_header() -> None:
    with MailSink() as mail:
        spec = spec_with(
            f'      - {{url: "mailto://{mail.address}?from=pm@example.com&mode=insecure",'
            " to: [commander, liaison]}"
        )
        sender = AppriseSender.prepare(spec)
        hostile = incident(hostile=True)
        msg = render("escalated", hostile, spec.team("data-platform"), {"reason": HOSTILE})
        result = await sender.send("teams.data-platform.notify[0]", msg, hostile)
        await sender.close()
    assert result.outcome == "sent", result
    # apprise sends one message per recipient: the commander and the liaison
    assert sorted(r for rcpt in mail.recipients for r in rcpt) == [
        "ada@example.com",
        "lin@example.com",
    ]
    got = mail.messages[0]
    assert "escalated, needs a person" in str(got["Subject"])
    for raw, rcpt in zip(mail.raw, mail.recipients, strict=True):
        headers = raw.replace(b"\r\n", b"\n").split(b"\n\n")[0]
        assert b"\nBcc:" not in headers and "victim@evil.example" not in rcpt
    assert got["Bcc"] is None
    kinds = sorted(part.get_content_type() for part in got.walk() if not part.is_multipart())
    assert kinds == ["text/html", "text/plain"]
    html_part = got.get_body(("html",))
    assert html_part is not None and "Ada Lovelace" in html_part.get_content()


async def test_chat_message_reaches_a_mattermost_hook_as_inert_markdown() -> None:
    with ChatSink() as chat:
        spec = spec_with(f'      - {{url: "mmost://{chat.address}/hooktoken123"}}')
        sender = AppriseSender.prepare(spec)
        msg = render("escalated", incident(hostile=True), spec.team("data-platform"))
        result = await sender.send("teams.data-platform.notify[0]", msg, incident())
        await sender.close()
    assert result.outcome == "sent"
    assert chat.paths == ["/hooks/hooktoken123"]
    text = chat.posts[0]["text"]
    assert "commander Ada Lovelace (@ada)" in text
    for bad in ("@channel", "<!everyone>", "http://evil"):
        assert bad not in text
    rendered = markdown.markdown(text)  # CommonMark-ish, as Mattermost renders it
    assert "<a " not in rendered and "<em>" not in rendered


async def test_json_webhook_down_is_a_retryable_failure() -> None:
    with ChatSink() as chat:
        spec = spec_with(f'      - {{url: "json://{chat.address}/notify"}}')
        sender = AppriseSender.prepare(spec)
        msg = render("opened", incident(), spec.team("data-platform"))
        chat.down = True
        failed = await sender.send("teams.data-platform.notify[0]", msg, incident())
        chat.down = False
        sent = await sender.send("teams.data-platform.notify[0]", msg, incident())
        await sender.close()
    assert (failed.outcome, failed.retryable) == ("failed", True)
    assert sent.outcome == "sent" and len(chat.posts) == 1
    assert chat.posts[0]["message"].startswith("**\\[SEV2\\] etl_orders: incident opened**")


def test_a_missing_variable_stops_start_up_naming_team_and_destination() -> None:
    spec = spec_with('      - {url: "json://127.0.0.1:1/${NOT_SET_ANYWHERE}"}')
    with pytest.raises(NotifyConfigError) as caught:
        AppriseSender.prepare(spec, env={})
    assert "teams.data-platform.notify[0].url" in str(caught.value)
    assert "NOT_SET_ANYWHERE is not set" in str(caught.value)


def test_the_expanded_secret_is_never_in_an_error() -> None:
    spec = spec_with('      - {url: "mmost://${MM_HOST}"}')
    with pytest.raises(NotifyConfigError) as caught:
        AppriseSender.prepare(spec, env={"MM_HOST": "s3cret-token"})
    assert "s3cret-token" not in str(caught.value) and "notify[0]" in str(caught.value)
