"""Shared set-up of the people tests: a receiver with users, incidents to act on."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from core_helpers import alert_doc, config, notification_doc, stages

from receiver.app import create_app
from receiver.keys import STORE, WORKER
from receiver.people.access import hash_password
from rules.spec import parse_spec

Client = TestClient[web.Request, web.Application]

PASSWORDS = {"alice": "alice-pw-1", "dana": "dana-pw-2"}
# hashing is deliberately slow: hash once per test session
_HASHES: dict[str, str] = {}

REVIEW = {
    "preventive_measures": ["rate-limit the API client"],
    "action_items": [
        {"action": "add a unit test for the limiter", "owner": "bob", "due": "2026-02-01"},
        {"action": "alert on 429s", "owner": "alice", "due": "2026-01-15"},
    ],
}
# a body each action accepts (close needs its review)
GOOD: dict[str, dict[str, Any]] = {
    "acknowledge": {},
    "roles": {"role": "commander", "person": "erin"},
    "notes": {"text": "looking at the S3 bucket"},
    "status-updates": {"text": "orders dashboard is stale since 12:00"},
    "severity": {"sev": "SEV2", "why": "finance closes the month today"},
    "handoff": {"role": "commander", "to": "frank", "note": "end of my shift"},
    "approve": {},
    "reject": {"why": "not during the month end"},
    "resolve": {"how": "restarted the Airflow scheduler"},
    "close": {"review": REVIEW},
}
SPEC = {
    "pipelines": {
        "etl_orders": {
            "description": "orders for the finance dashboard",
            "impact": "most",
            "runbook_url": "https://runbooks.example.com/etl_orders",
        }
    },
    "teams": {
        "data-platform": {"commander": "alice", "scribe": "bob", "liaison": "carol", "sme": ["dev"]}
    },
}


_APPEND = "import sys; open(sys.argv[1], 'a').write('ran\\n')"


class AlwaysFiring:
    async def __call__(self, alert: Any) -> bool | None:
        return True


def approval_spec(marker: Path, **pipeline: Any) -> str:
    """A spec whose etl_orders needs approval; its rollback appends a line to ``marker``."""
    action = {"command": {"argv": [sys.executable, "-c", _APPEND, str(marker)], "timeout": "20s"}}
    doc = {
        "pipelines": {
            "etl_orders": {
                "impact": "most",
                "max_attempts": 1,
                "approval": "required",
                "actions": {"rollback_to_checkpoint": action},
                **pipeline,
            }
        }
    }
    return json.dumps(doc)


def runs(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def users() -> list[dict[str, str]]:
    if not _HASHES:
        _HASHES.update({name: hash_password(pw) for name, pw in PASSWORDS.items()})
    return [
        {"name": "alice", "role": "responder", "password_hash": _HASHES["alice"]},
        {"name": "dana", "role": "viewer", "password_hash": _HASHES["dana"]},
    ]


def basic(name: str, password: str | None = None) -> dict[str, str]:
    raw = f"{name}:{password if password is not None else PASSWORDS[name]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def receiver(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    tmp_path: Path,
    *,
    spec: dict[str, Any] | None = None,
    stage_kwargs: dict[str, Any] | None = None,
    **raw: Any,
) -> Client:
    app = create_app(
        config(tmp_path, **raw),
        spec=parse_spec(json.dumps(spec or SPEC)),
        **stages(**(stage_kwargs or {})),
    )
    return await aiohttp_client(app)


async def open_incident(
    client: Client,
    pipeline: str = "etl_orders",
    headers: dict[str, str] | None = None,
    **alert: Any,
) -> int:
    """Send one firing alert; return the id of the incident it opened once worked on."""
    resp = await client.post("/alerts", json=notification_doc(alert_doc(pipeline, **alert)))
    assert resp.status == 200, await resp.text()
    await client.app[WORKER].run_until_idle()
    incident = await client.app[STORE].open_incident(pipeline)
    assert incident is not None
    return incident.id


async def act(
    client: Client,
    incident_id: int,
    action: str,
    body: dict[str, Any] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    resp = await client.post(
        f"/incidents/{incident_id}/{action}", json=body or {}, headers=headers or {}
    )
    text = await resp.text()
    assert resp.status == status, text
    doc: dict[str, Any] = json.loads(text)
    return doc


async def wait_until(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    """Poll ``check`` until it holds; fail after ``seconds`` (a bound, not a timing claim)."""
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")
