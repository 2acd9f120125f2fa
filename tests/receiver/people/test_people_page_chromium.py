"""A person works an incident through the page's own forms in a real headless Chromium.

Chromium is driven over the DevTools protocol (a WebSocket): it loads the page,
fills the forms and clicks their buttons as a person would; every form is a
plain POST answered with a redirect. CSP is bypassed for the driver's own
script, which also means a note that escaped the page's escaping would run
(and set the title): the check is stricter than the browser's defaults.
A page on another origin then tries a forged POST: the browser sends the
session cookie along, and the receiver still refuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from chromium_flags import HEADLESS
from core_helpers import FakeDiagnose, alert_doc, config, notification_doc
from people_helpers import PASSWORDS, AlwaysFiring, approval_spec, basic, runs, users, wait_until

from pipemedic.stack import find_binary
from receiver.app import create_app
from rules.spec import parse_spec

pytestmark = pytest.mark.slow

_FLAGS = (*HEADLESS, "--remote-debugging-port=0", "--remote-allow-origins=*")
NOTE = "<script>document.title='pwned'</script> [x](javascript:alert(1))"


class Navigating(Exception):
    """The page navigated while a command ran on the old document (retry on the new one)."""


# DevTools answers these while the document is being replaced (a form's redirect)
_NAVIGATING = ("Inspected target navigated or closed", "Cannot find context with specified id")


class Browser:
    """One Chromium page driven over the DevTools protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        await self.ws.send_json({"id": number, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), 60)
            if message.get("id") == number:
                error = message.get("error", {}).get("message", "")
                if error in _NAVIGATING:
                    raise Navigating(error)
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    async def js(self, expression: str) -> Any:
        found = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in found, (expression, found["result"].get("description"))
        return found["result"].get("value")

    async def text(self) -> str:
        return str(await self.js("document.body ? document.body.innerText : ''"))

    async def settled(self) -> None:
        """Wait until a new document (not the one marked before the click) finished loading."""
        for _ in range(600):
            try:
                state = await self.js(
                    "typeof window.__old === 'undefined' && document.readyState === 'complete'"
                )
            except Navigating:  # asked the old document as it went: ask the new one
                state = False
            if state:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the page did not load")

    async def go(self, url: str) -> None:
        await self.js("window.__old = 1")
        await self.call("Page.navigate", url=url)
        await self.settled()

    async def submit(self, form: str, **fields: str) -> None:
        """Fill ``form``'s fields and click its button, as a person would; wait for the answer."""
        values = json.dumps(fields)
        with contextlib.suppress(Navigating):  # the click's navigation may beat the answer
            await self.js(
                f"""(() => {{
                    const form = document.querySelector({json.dumps(form)});
                    for (const [name, value] of Object.entries({values}))
                        form.elements[name].value = value;
                    window.__old = 1;
                    form.querySelector('button').click();
                }})()"""
            )
        await self.settled()


@asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[Browser]:
    proc = await asyncio.create_subprocess_exec(
        find_binary("chromium", "chromium-browser"),
        *_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        endpoint = ""
        while not endpoint:
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert line, "chromium exited before listening"
            found = re.search(r"DevTools listening on ws://([^/]+)/", line)
            endpoint = found.group(1) if found else ""
        async with aiohttp.ClientSession() as session:
            pages = await (await session.get(f"http://{endpoint}/json/list")).json()
            page = next(p for p in pages if p["type"] == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                browser = Browser(ws)
                await browser.call("Page.enable")
                await browser.call("Page.setBypassCSP", enabled=True)
                yield browser
    finally:
        proc.kill()
        await proc.wait()


async def test_a_person_works_the_incident_through_the_page(
    tmp_path: Path, aiohttp_server: Callable[[web.Application], Awaitable[TestServer]]
) -> None:
    marker = tmp_path / "runs.txt"
    app = create_app(
        config(
            tmp_path,
            people={"users": users()},
            recovery={"verify_deadline_seconds": 0.2, "verify_interval_seconds": 0.05},
        ),
        spec=parse_spec(approval_spec(marker)),
        diagnose=FakeDiagnose(cause="data_corruption"),
        firing=AlwaysFiring(),
    )
    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("")).rstrip("/")
    api = aiohttp.ClientSession(headers=basic("alice"))

    async def incident() -> dict[str, Any]:
        doc: dict[str, Any] = await (await api.get(f"{base}/incidents/1")).json()
        return doc

    async def evil_page(request: web.Request) -> web.Response:
        body = (
            f'<form id="f" method="post" action="{base}/incidents/1/resolve">'
            '<input name="how" value="forged"></form>'
            "<script>document.getElementById('f').submit()</script>"
        )
        return web.Response(text=body, content_type="text/html")

    evil_app = web.Application()
    evil_app.router.add_get("/", evil_page)
    evil = await aiohttp_server(evil_app, host="127.0.0.1")  # another origin (port)

    try:
        async with aiohttp.ClientSession() as session:
            doc = notification_doc(alert_doc("etl_orders", name="PipelineHighErrorRate"))
            assert (await session.post(f"{base}/alerts", json=doc)).status == 200

        async def asked() -> bool:
            response = await api.get(f"{base}/incidents/1")
            return response.status == 200 and bool((await response.json())["pending_approval"])

        await wait_until(asked)

        async with chromium(tmp_path) as browser:
            await browser.go(f"{base}/incidents/1")
            assert "/login" in await browser.js("location.pathname")
            await browser.submit("#login", user="alice", password=PASSWORDS["alice"])
            assert await browser.js("location.pathname") == "/incidents/1"
            assert "signed in as alice" in await browser.text()

            await browser.submit("#form-acknowledge")
            await browser.submit("#form-roles", role="commander", person="erin")
            await browser.submit("#form-notes", text=NOTE)
            await browser.submit(
                "#form-handoff", role="commander", to="frank", note="end of my shift"
            )
            await browser.submit("#form-approve", why="the checkpoint is good")
            await wait_until(lambda: _state(incident, "escalated"))
            assert runs(marker) == 1
            # a forged cross-site post while resolving is allowed (escalated): the cookies
            # go along, the receiver still refuses
            await browser.go(str(evil.make_url("/")))
            await browser.settled()
            for _ in range(200):
                if "refused" in await browser.text():
                    break
                await asyncio.sleep(0.05)
            assert "cross-site form post refused" in await browser.text()

            assert (await incident())["state"] == "escalated"
            await browser.go(f"{base}/incidents/1")
            await browser.submit(
                "#form-close",
                preventive_measures="validate loads before publishing",
                action_items="add a schema check | bob | 2026-03-01",
            )
            assert await browser.js("document.title") == "incident 1 · etl_orders"
            frame_title = "document.querySelector('iframe').contentDocument.title"
            assert await browser.js(frame_title) == "incident 1"  # the note did not run
            live = await browser.js(
                "document.querySelector('iframe').contentDocument.body.innerText"
            )
            assert "<script>document.title='pwned'</script>" in live  # shown as text

        doc = await incident()
        assert doc["state"] == "closed"
        assert doc["roles"]["commander"] == "frank"
        assert doc["review"]["action_items"] == [
            {"action": "add a schema check", "owner": "bob", "due": "2026-03-01"}
        ]
        by_alice = [t["event"] for t in doc["timeline"] if t.get("by") == "alice"]
        assert by_alice == [
            "acknowledged",
            "role_assigned",
            "note",
            "handoff",
            "approved",
            "closed",
        ]
        assert not any(t["event"] == "resolved" for t in doc["timeline"])  # the forgery
    finally:
        await api.close()


async def _state(incident: Callable[[], Awaitable[dict[str, Any]]], state: str) -> bool:
    return bool((await incident())["state"] == state)
