"""The incidents API and page, served by aiohttp over a real SQLite store."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from presentation_samples import (
    HOSTILE,
    HOSTILE_ATTR,
    T0,
    escalated_incident,
    hostile_incident,
    persist,
    recovered_incident,
)

from receiver.keys import SPEC, STORE
from receiver.models import Incident
from receiver.report.page import PageQuery, render_page
from receiver.report.web import add_routes
from receiver.store import open_store
from receiver.store.base import Store
from rules.spec import parse_spec

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(str(tmp_path / "incidents.db"))
    yield opened
    await opened.close()


@pytest.fixture
async def client(
    store: Store, aiohttp_client: Callable[[web.Application], Awaitable[Client]]
) -> Client:
    app = web.Application()
    app[STORE] = store
    add_routes(app)
    return await aiohttp_client(app)


async def _seed(store: Store) -> dict[str, Incident]:
    return {
        "recovered": await persist(store, recovered_incident()),
        "escalated": await persist(store, escalated_incident()),
        "hostile": await persist(store, hostile_incident()),
    }


async def _json(client: Client, path: str, status: int = 200) -> Any:
    response = await client.get(path)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


async def test_list_returns_incidents_newest_first(client: Client, store: Store) -> None:
    seeded = await _seed(store)
    body = await _json(client, "/incidents")
    ids = [i["id"] for i in body["incidents"]]
    assert ids == sorted((i.id for i in seeded.values()), reverse=True)
    first = body["incidents"][-1]
    assert first["pipeline"] == "etl_orders" and first["sev"] == "SEV2"
    assert [a["outcome"] for a in first["actions"]] == ["failure", "success"]
    assert first["timeline"][0] == {
        "at": "2026-03-01T12:00:00.000Z",
        "event": "detected",
        "detail": {"alert": "PipelineDown"},
    }
    assert body["next_offset"] is None


@pytest.mark.parametrize(
    ("query", "pipelines"),
    [
        ("state=escalated", ["ml_features"]),
        ("sev=SEV2", ["p" + HOSTILE, "etl_orders"]),
        ("pipeline=etl_orders", ["etl_orders"]),
        ("state=resolved&sev=SEV3", []),
    ],
)
async def test_list_filters(client: Client, store: Store, query: str, pipelines: list[str]) -> None:
    await _seed(store)
    body = await _json(client, f"/incidents?{query}")
    assert [i["pipeline"] for i in body["incidents"]] == pipelines


async def test_list_paginates(client: Client, store: Store) -> None:
    for n in range(5):
        incident = escalated_incident(pipeline=f"pipe_{n}")
        await persist(store, incident)
    page1 = await _json(client, "/incidents?limit=2")
    page2 = await _json(client, f"/incidents?limit=2&offset={page1['next_offset']}")
    page3 = await _json(client, f"/incidents?limit=2&offset={page2['next_offset']}")
    names = [i["pipeline"] for p in (page1, page2, page3) for i in p["incidents"]]
    assert names == [f"pipe_{n}" for n in (4, 3, 2, 1, 0)]
    assert page3["next_offset"] is None


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("state=exploded", "state"),
        ("sev=SEV9", "sev"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=100000", "limit"),
        ("offset=-1", "offset"),
    ],
)
async def test_bad_filters_are_400_naming_the_parameter(
    client: Client, query: str, parameter: str
) -> None:
    body = await _json(client, f"/incidents?{query}", status=400)
    assert body["parameter"] == parameter and parameter in body["error"]
    page = await client.get(f"/?{query}")
    assert page.status == 400


async def test_show_one_incident(client: Client, store: Store) -> None:
    seeded = await _seed(store)
    incident = seeded["escalated"]
    body = await _json(client, f"/incidents/{incident.id}")
    assert body["id"] == incident.id and body["state"] == "escalated"
    assert body["diagnosis"]["cause"] == "logic_error"
    assert body == incident.to_json()


@pytest.mark.parametrize("ident", ["999", "abc", "-1", "1.5", "\u0661", "9" * 40])
async def test_unknown_or_invalid_id_is_404_json(client: Client, store: Store, ident: str) -> None:
    await _seed(store)
    for suffix in ("", "/postmortem"):
        body = await _json(client, f"/incidents/{ident}{suffix}", status=404)
        assert "incident" in body["error"]


async def test_postmortem_is_markdown_rendered_when_not_stored(
    client: Client, store: Store
) -> None:
    seeded = await _seed(store)
    response = await client.get(f"/incidents/{seeded['recovered'].id}/postmortem")
    assert response.status == 200
    assert response.content_type == "text/markdown" and response.charset == "utf-8"
    text = await response.text()
    for section in (
        "## Facts",
        "## Timeline",
        "## Root cause",
        "## Impact & resolution",
        "## Lessons learned",
        "## Action items",
    ):
        assert section in text
    assert "`network_timeout`" in text and "many users affected" in text


async def test_stored_postmortem_is_served_and_regenerable(client: Client, store: Store) -> None:
    incident = await persist(store, recovered_incident())
    incident.postmortem = "# stored draft\n"
    await store.save_incident(incident)
    path = f"/incidents/{incident.id}/postmortem"
    assert await (await client.get(path)).text() == "# stored draft\n"
    fresh = await (await client.get(path + "?regenerate=1")).text()
    assert fresh.startswith("# Post-mortem: PipelineDown")


async def test_postmortem_uses_the_spec_team_when_incident_has_no_roles(
    store: Store, aiohttp_client: Callable[[web.Application], Awaitable[Client]]
) -> None:
    app = web.Application()
    app[STORE] = store
    app[SPEC] = parse_spec("teams:\n  data-platform: {commander: ana, sme: [dev]}\n")
    add_routes(app)
    client = await aiohttp_client(app)
    incident = await persist(store, escalated_incident())
    text = await (await client.get(f"/incidents/{incident.id}/postmortem")).text()
    assert "| ana | commander |" in text and "| dev | sme | escalation |" in text


async def test_page_lists_incidents_with_timeline_and_postmortem(
    client: Client, store: Store
) -> None:
    seeded = await _seed(store)
    response = await client.get("/")
    assert response.status == 200 and response.content_type == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = await response.text()
    recovered = seeded["recovered"]
    section = page[page.index(f'id="incident-{recovered.id}"') :]
    section = section[: section.index("</section>")]
    assert "etl_orders" in section and "resolved" in section and "SEV2" in section
    assert "lasted 9m 00s" in section
    assert section.count("<tr>") == 1 + len(recovered.timeline)  # header + one per entry
    assert "## Root cause" in section and "Post-mortem draft" in section
    assert f'href="/incidents/{recovered.id}/postmortem"' in section


async def test_page_escapes_every_hostile_value(client: Client, store: Store) -> None:
    await _seed(store)
    page = await (await client.get("/")).text()
    assert HOSTILE not in page and HOSTILE_ATTR not in page
    assert "<script" not in page and "<img" not in page
    assert html_escaped(HOSTILE) in page and html_escaped(HOSTILE_ATTR) in page


async def test_page_filter_and_pager_links(client: Client, store: Store) -> None:
    for n in range(3):
        await persist(store, escalated_incident(pipeline=f"pipe_{n}"))
    page = await (await client.get("/?limit=1&offset=1&state=escalated")).text()
    assert re.findall(r'id="incident-\d+"', page) == ['id="incident-2"']
    assert 'href="/?state=escalated&amp;limit=1&amp;offset=0"' in page
    assert 'href="/?state=escalated&amp;limit=1&amp;offset=2"' in page
    assert "<option selected>escalated</option>" in page


def test_render_page_duration_of_open_incident_uses_now() -> None:
    incident = escalated_incident()
    html = render_page([incident], {}, now=T0 + timedelta(hours=3, minutes=7), query=PageQuery())
    assert "<td>ongoing for 3h 07m</td>" in html


def test_render_page_without_incidents() -> None:
    html = render_page([], {}, now=T0, query=PageQuery())
    assert "No incidents." in html


def test_unknown_state_or_sev_never_becomes_a_css_class() -> None:
    incident = recovered_incident()
    incident.state, incident.sev = 'x" onclick="y', "SEV<1>"
    html = render_page([incident], {}, now=T0, query=PageQuery())
    assert 'class="badge st-unknown"' in html and 'class="badge sev-unknown"' in html
    assert 'onclick="y' not in html


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


async def test_hostile_filter_value_is_escaped_in_the_form(client: Client, store: Store) -> None:
    await _seed(store)
    response = await client.get("/", params={"pipeline": HOSTILE_ATTR})
    page = await response.text()
    assert response.status == 200 and "<img" not in page
    assert f'name="pipeline" value="{html_escaped(HOSTILE_ATTR)}"' in page
    assert "No incidents." in page
