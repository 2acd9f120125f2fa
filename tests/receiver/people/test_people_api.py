"""People's JSON API: every action's 200, 400, 404 and 409, timeline entries with ``by``,
and how people and automation interleave on one incident."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from core_helpers import FakeRecover, FakeResult, alert_doc, notification_doc
from people_helpers import GOOD, Client, act, open_incident, receiver, wait_until

from receiver.keys import METRICS, STORE, WORKER
from receiver.models import Alert, TimelineEntry, utcnow
from receiver.people.actions import ACTIONS
from receiver.worker.stages import RecoveryRequest

# one body per action that is refused, and the field the 400 names
BAD: dict[str, tuple[dict[str, Any], str]] = {
    "roles": ({"role": "janitor", "person": "x"}, "role"),
    "notes": ({}, "text"),
    "status-updates": ({"text": "   "}, "text"),
    "severity": ({"sev": "SEV9", "why": "x"}, "sev"),
    "handoff": ({"role": "scribe", "to": "x"}, "note"),
    "approve": ({"why": 5}, "why"),
    "reject": ({"why": ["no"]}, "why"),
    "resolve": ({}, "how"),
    "close": ({}, "review"),
}


def events(doc: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(t["event"], t.get("by")) for t in doc["timeline"]]


async def test_a_person_works_an_incident_from_acknowledgement_to_closed_review(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await receiver(aiohttp_client, tmp_path, stage_kwargs={})
    incident_id = await open_incident(client)
    before = await (await client.get(f"/incidents/{incident_id}")).json()
    # the webhook's receipt is not a person's acknowledgement
    assert ("received", None) in events(before) and before["acknowledged_by"] is None
    assert before["state"] == "recovered"  # FakeRecover "recovered": waits for the resolution

    doc = await act(client, incident_id, "acknowledge")
    assert doc["acknowledged_by"] == "local" and doc["acknowledged_at"]
    assert doc["state"] == "recovered"  # acknowledging changes no state
    metrics = client.app[METRICS].render().decode()
    assert 'pipemedic_incident_time_to_acknowledge_seconds_count{sev="SEV1"} 1.0' in metrics

    for action in ("roles", "notes", "status-updates", "severity", "handoff"):
        doc = await act(client, incident_id, action, GOOD[action])
    assert doc["roles"]["commander"] == "frank"  # erin, then handed to frank
    assert doc["sev"] == "SEV2"
    doc = await act(client, incident_id, "roles", {"role": "sme", "person": "gus"})
    assert doc["roles"]["sme"] == ["dev", "gus"]
    doc = await act(client, incident_id, "resolve", GOOD["resolve"])
    assert doc["state"] == "resolved" and doc["resolved_at"]
    doc = await act(client, incident_id, "close", GOOD["close"])
    assert doc["state"] == "closed" and doc["review"]["by"] == "local"
    assert doc["review"]["action_items"][0]["owner"] == "bob"

    human = [e for e in events(doc) if e[1] is not None]
    assert human == [
        ("acknowledged", "local"),
        ("role_assigned", "local"),
        ("note", "local"),
        ("status_update", "local"),
        ("sev_changed", "local"),
        ("handoff", "local"),
        ("role_assigned", "local"),
        ("resolved", "local"),
        ("closed", "local"),
    ]
    handoff = next(t for t in doc["timeline"] if t["event"] == "handoff")
    assert handoff["detail"] == {
        "role": "commander",
        "from": "erin",
        "to": "frank",
        "note": "end of my shift",
    }
    # the post-mortem has the people, their actions and the review
    text = await (await client.get(f"/incidents/{incident_id}/postmortem")).text()
    assert "- **commander:** frank" in text and "**Acknowledged by:** local" in text
    assert "restarted the Airflow scheduler" in text and "## Review" in text
    assert "| 1 | add a unit test for the limiter | bob | 2026-02-01 |" in text

    items = await (await client.get("/action-items")).json()
    assert [(i["owner"], i["due"], i["incident"]) for i in items["action_items"]] == [
        ("alice", "2026-01-15", incident_id),
        ("bob", "2026-02-01", incident_id),
    ]
    only_bob = await (await client.get("/action-items?owner=bob")).json()
    assert [i["action"] for i in only_bob["action_items"]] == ["add a unit test for the limiter"]


async def test_every_action_answers_400_naming_the_field(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await receiver(aiohttp_client, tmp_path)
    incident_id = await open_incident(client)
    for action, (body, name) in BAD.items():
        doc = await act(client, incident_id, action, body, status=400)
        assert doc["field"] == name, (action, doc)
    bad_items = {
        "review": {
            "preventive_measures": ["x"],
            "action_items": [{"action": "a", "owner": "b", "due": "next week"}],
        }
    }
    doc = await act(client, incident_id, "close", bad_items, status=400)
    assert doc["field"] == "review.action_items[0].due"
    doc = await act(client, incident_id, "close", {"review": {"action_items": []}}, status=400)
    assert doc["field"] == "review.preventive_measures"
    resp = await client.post(f"/incidents/{incident_id}/notes", data=b"{not json")
    assert resp.status == 415  # not application/json, not a form
    resp = await client.post(
        f"/incidents/{incident_id}/notes",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 400 and "not JSON" in (await resp.json())["error"]
    resp = await client.post(f"/incidents/{incident_id}/notes", json=["text"])
    assert resp.status == 400


async def test_every_action_answers_404_for_an_unknown_incident(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await receiver(aiohttp_client, tmp_path)
    for action in ACTIONS:
        doc = await act(client, 999, action, GOOD[action], status=404)
        assert "999" in doc["error"]
    for path in ("/incidents/abc/notes", "/incidents/1/explode", "/incidents/99999/live"):
        resp = await client.post(path, json={"text": "x"})
        assert resp.status in (404, 405), path
    assert (await client.get("/incidents/42", headers={"Accept": "text/html"})).status == 404


async def test_every_action_answers_409_with_the_current_state(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await receiver(aiohttp_client, tmp_path)
    incident_id = await open_incident(client)
    # nothing waits for approval; a recovering incident cannot be closed
    for action in ("approve", "reject", "close"):
        doc = await act(client, incident_id, action, GOOD[action], status=409)
        assert doc["state"] == "recovered" and doc["incident"] == incident_id
    await act(client, incident_id, "acknowledge")
    doc = await act(client, incident_id, "acknowledge", status=409)
    assert "acknowledged by local" in doc["error"]
    await act(client, incident_id, "severity", {"sev": "SEV3", "why": "fewer users than feared"})
    doc = await act(client, incident_id, "severity", {"sev": "SEV3", "why": "again"}, status=409)
    await act(client, incident_id, "resolve", GOOD["resolve"])
    assert (await act(client, incident_id, "resolve", GOOD["resolve"], status=409))["state"] == (
        "resolved"
    )
    assert (await act(client, incident_id, "acknowledge", status=409))["state"] == "resolved"
    await act(client, incident_id, "close", GOOD["close"])
    for action in ("roles", "status-updates", "severity", "handoff", "resolve", "close"):
        doc = await act(client, incident_id, action, GOOD[action], status=409)
        assert doc["state"] == "closed", action
    # a note on a closed incident is still welcome (the review goes on)
    await act(client, incident_id, "notes", {"text": "review held on Monday"})


@dataclass
class SlowRecover:
    """A recovery that keeps attempting while ``still_firing`` says so, counting attempts."""

    attempts: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, request: RecoveryRequest) -> FakeResult:
        entries = []
        while await request.still_firing():
            self.attempts += 1
            entries.append(TimelineEntry(utcnow(), "recovery_attempt", {"attempt": self.attempts}))
            self.started.set()
            await asyncio.sleep(0.02)
        self.stopped.set()
        return FakeResult("skipped", "retry_with_backoff", (), "the alert resolved", tuple(entries))


@dataclass
class AlwaysFiring:
    async def __call__(self, alert: Alert) -> bool | None:
        return True


async def test_people_and_a_running_recovery_interleave(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    slow = SlowRecover()
    client = await receiver(
        aiohttp_client, tmp_path, stage_kwargs={"recover": slow, "firing": AlwaysFiring()}
    )
    resp = await client.post("/alerts", json=notification_doc(alert_doc("etl_orders")))
    assert resp.status == 200
    await asyncio.wait_for(slow.started.wait(), 30)
    incident_id = (await client.app[STORE].open_incident("etl_orders")).id  # type: ignore[union-attr]

    # acknowledging, noting and raising the SEV do not wait for, nor stop, the recovery
    await act(client, incident_id, "acknowledge")
    await act(client, incident_id, "notes", {"text": "watching it"})
    await act(client, incident_id, "severity", {"sev": "SEV1", "why": "x"}, status=409)
    await act(client, incident_id, "severity", {"sev": "SEV2", "why": "only finance is hit"})
    seen = slow.attempts
    await wait_until(lambda: _true(slow.attempts > seen + 2))
    assert not slow.stopped.is_set()

    # a person resolving stops the pending steps, and the recovery's saves keep it resolved
    await act(client, incident_id, "resolve", {"how": "fixed the credentials by hand"})
    await asyncio.wait_for(slow.stopped.wait(), 30)
    await client.app[WORKER].run_until_idle()
    doc = await (await client.get(f"/incidents/{incident_id}")).json()
    assert doc["state"] == "resolved" and doc["sev"] == "SEV2"
    assert doc["acknowledged_by"] == "local"
    kinds = [t["event"] for t in doc["timeline"]]
    assert {"acknowledged", "note", "sev_changed", "resolved", "recovery_finished"} <= set(kinds)
    assert kinds.count("acknowledged") == 1 and kinds.count("note") == 1

    # a reopened incident keeps its people
    again = alert_doc("etl_orders", name="PipelineHighErrorRate", fingerprint="other")
    assert (await client.post("/alerts", json=notification_doc(again))).status == 200
    await wait_until(lambda: _reopened(client, incident_id))
    doc = await (await client.get(f"/incidents/{incident_id}")).json()
    assert doc["acknowledged_by"] == "local" and doc["roles"]["commander"] == "alice"
    await act(client, incident_id, "resolve", {"how": "again by hand"})


async def _true(value: bool) -> bool:
    return value


async def _reopened(client: Client, incident_id: int) -> bool:
    doc = await (await client.get(f"/incidents/{incident_id}")).json()
    return any(t["event"] == "reopened" for t in doc["timeline"])


@pytest.mark.parametrize("hostile", ['<script>alert("x")</script>', "javascript:alert(1)"])
async def test_status_page_shows_consumers_only_public_fields(
    aiohttp_client: Any, tmp_path: Path, hostile: str
) -> None:
    escalates = FakeRecover(outcome="escalated")
    client = await receiver(aiohttp_client, tmp_path, stage_kwargs={"recover": escalates})
    incident_id = await open_incident(client, labels={"secret_label": "s3cr3t-label"})
    await act(client, incident_id, "roles", {"role": "liaison", "person": "carol-the-liaison"})
    update = f"{hostile} [click](javascript:alert(2)) dashboards stale"
    await act(client, incident_id, "status-updates", {"text": update})
    await act(client, incident_id, "notes", {"text": "internal: s3cr3t-note"})
    doc = await (await client.get("/status")).json()
    (row,) = doc["pipelines"]
    assert set(row) == {"pipeline", "state", "since", "feeds", "users_affected", "update"}
    assert row["state"] == "outage"  # SEV1 unresolved
    assert row["feeds"] == "orders for the finance dashboard" and row["users_affected"] == "most"
    assert row["update"]["text"] == update
    page = await (await client.get("/status", headers={"Accept": "text/html"})).text()
    for leak in ("s3cr3t", "carol-the-liaison", "href", "/incidents", str(incident_id) + "<"):
        assert leak not in page, leak
    assert "<script" not in page
    if "<" in hostile:
        assert "&lt;script&gt;" in page
    await act(client, incident_id, "resolve", {"how": "x"})
    (row,) = (await (await client.get("/status")).json())["pipelines"]
    assert row["state"] == "operational"
