"""Who may do what: users with argon2 passwords, oauth2-proxy headers, loopback-only without
users, 401/403/429 JSON, the page's login, CSRF, and the incident page's content."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from core_helpers import alert_doc, notification_doc
from people_helpers import GOOD, PASSWORDS, Client, act, basic, open_incident, receiver, users

from receiver.config import parse_config
from receiver.errors import ConfigError
from receiver.keys import WORKER
from receiver.people.access import CSRF_COOKIE, SESSION_COOKIE, Access, Refused
from receiver.people.actions import ACTIONS


async def _with_users(aiohttp_client: Any, tmp_path: Path, **people: Any) -> Client:
    return await receiver(
        aiohttp_client,
        tmp_path,
        people={"users": users(), "login": {"max_failures": 3, "window": "10m"}, **people},
    )


async def _incident(client: Client) -> int:
    return await open_incident(client)


async def test_roles_decide_who_reads_and_who_acts(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await _with_users(aiohttp_client, tmp_path)
    incident_id = await _incident(client)  # Alertmanager's webhook needs no person
    for path in ("/incidents", f"/incidents/{incident_id}", "/", "/action-items"):
        resp = await client.get(path)
        assert resp.status == 401, path
        assert resp.headers["WWW-Authenticate"].startswith("Basic")
        assert "sign in" in (await resp.json())["error"]
        assert (await client.get(path, headers=basic("dana"))).status == 200, path
    # the status page is for data consumers: no sign-in
    assert (await client.get("/status")).status == 200

    doc = await act(client, incident_id, "notes", {"text": "x"}, status=401)
    doc = await act(client, incident_id, "notes", {"text": "x"}, 403, basic("dana"))
    assert "dana is a viewer" in doc["error"]
    doc = await act(client, incident_id, "acknowledge", {}, 200, basic("alice"))
    assert doc["acknowledged_by"] == "alice" and doc["timeline"][-1]["by"] == "alice"
    # a browser without a session is sent to the login page, back here afterwards
    resp = await client.get(
        f"/incidents/{incident_id}", headers={"Accept": "text/html"}, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == f"/login?next=/incidents/{incident_id}"


async def test_failed_logins_are_rate_limited_per_client(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await _with_users(aiohttp_client, tmp_path)
    for _ in range(3):
        resp = await client.get("/incidents", headers=basic("alice", "wrong"))
        assert resp.status == 401
    resp = await client.get("/incidents", headers=basic("nobody", "x"))
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    # even the right password waits now: no more guesses are checked
    resp = await client.get("/incidents", headers=basic("alice"))
    assert resp.status == 429
    assert "too many failed logins" in (await resp.json())["error"]


async def test_proxy_headers_count_only_from_the_proxy(aiohttp_client: Any, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    trusted = await receiver(
        aiohttp_client,
        tmp_path / "a",
        people={
            "proxy": {"addresses": ["127.0.0.1/32"], "responders": ["erin@example.com"]},
        },
    )
    incident_id = await _incident(trusted)
    viewer = {"X-Forwarded-User": "frank", "X-Forwarded-Email": "frank@example.com"}
    await act(trusted, incident_id, "notes", {"text": "x"}, 403, viewer)
    assert (await trusted.get("/incidents", headers=viewer)).status == 200
    doc = await act(
        trusted, incident_id, "notes", {"text": "x"}, 200, {"X-Forwarded-Email": "erin@example.com"}
    )
    assert doc["timeline"][-1]["by"] == "erin@example.com"

    untrusted = await receiver(
        aiohttp_client, tmp_path / "b", people={"proxy": {"addresses": ["10.0.0.0/8"]}}
    )
    other = await _incident(untrusted)
    forged = {"X-Forwarded-User": "erin@example.com"}
    await act(untrusted, other, "notes", {"text": "x"}, 401, forged)
    assert (await untrusted.get("/incidents", headers=forged)).status == 401


class _Peer:
    """The transport of a request that came from ``peer`` (what aiohttp reads as remote)."""

    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.peer, 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


async def test_without_users_only_loopback_may_use_the_people_routes() -> None:
    access = Access(parse_config({}, "test").people)
    app = web.Application()
    remote = make_mocked_request("GET", "/incidents", app=app, transport=_Peer("192.0.2.10"))
    with pytest.raises(Refused) as refused:
        await access.authorize(remote, "viewer")
    assert refused.value.status == 403 and "loopback" in str(refused.value)
    for peer in ("127.0.0.1", "::1"):
        local = make_mocked_request("POST", "/x", app=app, transport=_Peer(peer))
        person = await access.authorize(local, "responder")
        assert (person.name, person.role) == ("local", "responder")


def test_people_config_errors_name_the_field() -> None:
    cases = [
        ({"users": [{"name": "a", "role": "admin", "password_hash": "$argon2id$x"}]}, "role"),
        ({"users": [{"name": "a", "password_hash": "plaintext"}]}, "password_hash"),
        ({"proxy": {"addresses": ["not-an-ip"]}}, "proxy.addresses[0]"),
        ({"prometheus_external_url": "javascript:x"}, "prometheus_external_url"),
    ]
    for people, path in cases:
        with pytest.raises(ConfigError, match=re.escape(path)):
            parse_config({"people": people}, "receiver.yml")


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def test_login_session_and_csrf_protect_the_forms(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await _with_users(aiohttp_client, tmp_path)
    incident_id = await _incident(client)
    page = await (await client.get("/login?next=/incidents/1")).text()
    token = _csrf(page)
    assert client.session.cookie_jar.filter_cookies(client.make_url("/"))[CSRF_COOKIE]
    form = {"csrf": token, "next": f"/incidents/{incident_id}", "user": "alice"}
    wrong = await client.post("/login", data={**form, "password": "nope"})
    assert wrong.status == 401 and "wrong user name or password" in await wrong.text()
    resp = await client.post(
        "/login", data={**form, "password": PASSWORDS["alice"]}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == f"/incidents/{incident_id}"
    assert SESSION_COOKIE in resp.cookies and resp.cookies[SESSION_COOKIE]["httponly"]

    html = await (
        await client.get(f"/incidents/{incident_id}", headers={"Accept": "text/html"})
    ).text()
    assert "signed in as alice (responder)" in html
    token = _csrf(html)
    done = await client.post(
        f"/incidents/{incident_id}/notes",
        data={"csrf": token, "text": "from the page"},
        allow_redirects=False,
    )
    assert done.status == 303 and done.headers["Location"] == f"/incidents/{incident_id}"
    # a forged cross-site post: no token, or a foreign Origin, is refused
    forged = await client.post(f"/incidents/{incident_id}/resolve", data={"how": "evil"})
    assert forged.status == 403 and "CSRF" in await forged.text()
    foreign = await client.post(
        f"/incidents/{incident_id}/resolve",
        data={"csrf": token, "how": "evil"},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status == 403 and "cross-site" in await foreign.text()
    doc = await (await client.get(f"/incidents/{incident_id}", headers=basic("alice"))).json()
    assert doc["state"] != "resolved"
    assert [t["by"] for t in doc["timeline"] if t["event"] == "note"] == ["alice"]
    # an open redirect through next= is not possible
    resp = await client.post(
        "/login",
        data={"csrf": token, "next": "//evil.example/", "user": "alice", "password": "alice-pw-1"},
        allow_redirects=False,
    )
    assert resp.headers["Location"] == "/"


HOSTILE = [
    '<script>document.title="pwned"</script>',
    "javascript:alert(1)",
    "[click me](javascript:alert(2)) <img src=x onerror=alert(3)>",
]


async def test_incident_page_keeps_hostile_text_inert_and_links_only_safe_hosts(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await receiver(
        aiohttp_client,
        tmp_path,
        people={"prometheus_external_url": "https://prom.example.com"},
    )
    good = alert_doc("etl_orders", fingerprint="g")
    good["generatorURL"] = "https://prom.example.com/graph?g0.expr=pipeline_up"
    evil = alert_doc("etl_orders", name="PipelineDataStale", fingerprint="e")
    evil["generatorURL"] = "https://evil.example/graph?g0.expr=x"
    evil["annotations"]["runbook_url"] = "javascript:alert(4)"
    await client.post("/alerts", json=notification_doc(good, evil))
    await client.app[WORKER].run_until_idle()
    incident_id = 1
    for text in HOSTILE:
        await act(client, incident_id, "notes", {"text": text})
        await act(client, incident_id, "status-updates", {"text": text})
    page = await (
        await client.get(f"/incidents/{incident_id}", headers={"Accept": "text/html"})
    ).text()
    live = await (await client.get(f"/incidents/{incident_id}/live")).text()
    pm = await (await client.get(f"/incidents/{incident_id}/postmortem")).text()
    for html in (page, live):
        assert "<script" not in html and "<img" not in html
        assert 'href="javascript' not in html.lower()
        hrefs = re.findall(r'href="([^"]+)"', html)
        assert all(
            h.startswith(("/", "https://prom.example.com/", "https://runbooks.")) for h in hrefs
        )
    assert "https://prom.example.com/graph?g0.expr=pipeline_up" in page
    assert "evil.example" not in page
    assert "https://runbooks.example.com/etl_orders" in page
    assert "No users are configured" in page  # the loopback-only banner
    assert "&lt;script&gt;" in live and 'http-equiv="refresh"' in live
    # Markdown: every bracket and angle escaped, so no link and no tag survives
    assert not re.search(r"(?<!\\)\]\(javascript", pm) and not re.search(r"(?<!\\)<script", pm)
    assert re.search(
        r"<time datetime=\"[^\"]+\" title=\"[^\"]+\">\d\d:\d\d:\d\d</time>|"
        r"<time datetime=\"[^\"]+\" title=\"[^\"]+\">[A-Z][a-z]{2} \d\d \d\d:\d\d</time>",
        live,
    )
    for form in (
        "acknowledge",
        "roles",
        "notes",
        "status-updates",
        "severity",
        "handoff",
        "approve",
        "reject",
        "resolve",
        "close",
    ):
        assert f'action="/incidents/{incident_id}/{form}"' in page, form
    assert page.count('name="csrf"') == 10
    listing = await (await client.get("/", headers={"Accept": "text/html"})).text()
    assert f'href="/incidents/{incident_id}"' in listing


async def test_every_action_answers_401_without_and_403_for_a_viewer(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await _with_users(aiohttp_client, tmp_path)
    incident_id = await _incident(client)
    for action in ACTIONS:
        doc = await act(client, incident_id, action, GOOD[action], status=401)
        assert "sign in" in doc["error"], action
        doc = await act(client, incident_id, action, GOOD[action], 403, basic("dana"))
        assert "needs a responder" in doc["error"], action
    page = await client.get(f"/incidents/{incident_id}/live")
    assert page.status == 401
    assert (await client.get(f"/incidents/{incident_id}/live", headers=basic("dana"))).status == 200
