"""The incidents page in a real headless Chromium: readable, and hostile labels stay text.

The page is served by aiohttp over a real SQLite store holding incidents
whose labels, annotations and timeline details are script and markup. The
payloads would set ``document.title``; a control page that embeds them
unescaped proves the browser runs them and the title check notices.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from chromium_flags import HEADLESS
from presentation_samples import (
    HOSTILE,
    HOSTILE_ATTR,
    escalated_incident,
    hostile_incident,
    persist,
    recovered_incident,
)

from pipemedic.stack import find_binary
from receiver.keys import STORE
from receiver.report.web import add_routes
from receiver.store import open_store
from receiver.store.base import Store

_FLAGS = (*HEADLESS, "--hide-scrollbars")


class _Dom(HTMLParser):
    """Collect the title, the tags present and the visible text of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        self.text.append(data)


async def _chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    proc = await asyncio.create_subprocess_exec(
        find_binary("chromium", "chromium-browser"),
        *_FLAGS,
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def _dom(tmp_path: Path, url: str) -> _Dom:
    parser = _Dom()
    parser.feed(await _chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", url))
    return parser


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(str(tmp_path / "incidents.db"))
    for incident in (recovered_incident(), escalated_incident(), hostile_incident()):
        await persist(store=opened, incident=incident)
    yield opened
    await opened.close()


@pytest.fixture
async def server(
    store: Store, aiohttp_server: Callable[[web.Application], Awaitable[TestServer]]
) -> TestServer:
    async def control(request: web.Request) -> web.Response:
        # what the page would be if it forgot to escape: proves the oracle works
        body = f"<!doctype html><title>pipemedic incidents</title><p>{HOSTILE}</p>"
        body += f'<p><a title="{HOSTILE_ATTR}">x</a></p>'
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app[STORE] = store
    add_routes(app)
    app.router.add_get("/control", control)
    return await aiohttp_server(app, host="127.0.0.1")


async def test_control_page_shows_the_payloads_would_run(
    server: TestServer, tmp_path: Path
) -> None:
    dom = await _dom(tmp_path, str(server.make_url("/control")))
    assert dom.title == "pwned"


async def test_page_content_and_hostile_labels_stay_text(
    server: TestServer, tmp_path: Path
) -> None:
    dom = await _dom(tmp_path, str(server.make_url("/")))
    assert dom.title == "pipemedic incidents"  # no payload ran
    assert "script" not in dom.tags and "img" not in dom.tags
    assert not any(name.startswith("on") for name, _ in dom.attrs)
    text = "".join(dom.text)
    # the hostile values are on the page, as the characters they are
    assert HOSTILE in text and HOSTILE_ATTR in text
    assert "ünïcødé ✓ 'quotes' \"double\" & amp" in text
    # the listing: state, SEV, pipeline, duration; the timeline; the post-mortem
    for fact in ("etl_orders", "ml_features", "resolved", "escalated", "SEV2", "SEV3", "9m 00s"):
        assert fact in text, fact
    assert "acknowledged" in text and "recovery_attempt" in text
    assert "## Root cause" in text and "## Action items" in text


async def test_screenshot_of_the_page(server: TestServer, tmp_path: Path) -> None:
    shot = tmp_path / "incidents.png"
    await _chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1280,1400", str(server.make_url("/"))
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    keep = Path(__file__).resolve().parents[3] / ".pytest_cache" / "incidents-page.png"
    keep.parent.mkdir(exist_ok=True)
    keep.write_bytes(data)
