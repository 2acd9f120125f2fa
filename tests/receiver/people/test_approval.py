"""The approval gate: a step of a strategy that needs approval waits for a person.

The real recoverer runs a real command (it appends a line to a file, so the
file counts the runs); verification asks a Prometheus that is not there, so
the one allowed attempt does not clear and the incident escalates afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from core_helpers import FakeDiagnose, alert_doc, config, notification_doc
from people_helpers import AlwaysFiring, Client, act, approval_spec, runs, wait_until

from receiver.app import create_app
from rules.spec import parse_spec


async def _receiver(
    aiohttp_client: Any, tmp_path: Path, marker: Path, *, timeout: str = "1h", **raw: Any
) -> Client:
    recovery = {
        "verify_deadline_seconds": 0.2,
        "verify_interval_seconds": 0.05,
        "backoff_base_seconds": 0.01,
        "approval_timeout_seconds": timeout,
    }
    spec = raw.pop("spec_overrides", {})
    app = create_app(
        config(tmp_path, recovery=recovery, **raw),
        spec=parse_spec(approval_spec(marker, **spec)),
        diagnose=FakeDiagnose(cause="data_corruption"),
        firing=AlwaysFiring(),
    )
    client: Client = await aiohttp_client(app)
    return client


async def _incident(client: Client) -> dict[str, Any]:
    doc: dict[str, Any] = await (await client.get("/incidents/1")).json()
    return doc


async def _waiting(client: Client) -> dict[str, Any]:
    resp = await client.post(
        "/alerts", json=notification_doc(alert_doc("etl_orders", name="PipelineHighErrorRate"))
    )
    assert resp.status == 200

    async def asked() -> bool:
        return (await client.get("/incidents/1")).status == 200 and bool(
            (await _incident(client))["pending_approval"]
        )

    await wait_until(asked)
    return await _incident(client)


def _state(client: Client, state: str) -> Callable[[], Any]:
    async def check() -> bool:
        return bool((await _incident(client))["state"] == state)

    return check


async def test_an_approved_step_runs_once(aiohttp_client: Any, tmp_path: Path) -> None:
    marker = tmp_path / "runs.txt"
    client = await _receiver(aiohttp_client, tmp_path, marker)
    doc = await _waiting(client)
    assert doc["state"] == "recovering"
    pending = doc["pending_approval"]
    assert pending["strategy"] == "rollback_to_checkpoint" and "decision" not in pending
    asked = [t for t in doc["timeline"] if t["event"] == "approval_needed"]
    assert len(asked) == 1 and asked[0]["detail"]["step"] == "rollback_to_checkpoint"
    assert runs(marker) == 0  # nothing runs before a person says so

    await act(client, 1, "approve", {"why": "checkpoint is from before the bad load"})
    await wait_until(_state(client, "escalated"))  # ran once; verification could not confirm
    doc = await _incident(client)
    assert runs(marker) == 1 and doc["pending_approval"] is None
    events = [(t["event"], t.get("by")) for t in doc["timeline"]]
    assert ("approved", "local") in events
    assert [e for e, _ in events].count("action_started") == 1
    assert len(doc["actions"]) == 1 and doc["actions"][0]["strategy"] == "rollback_to_checkpoint"
    await act(client, 1, "approve", {}, status=409)


async def test_a_rejected_step_escalates_at_once_and_never_runs(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "runs.txt"
    client = await _receiver(aiohttp_client, tmp_path, marker)
    await _waiting(client)
    doc = await act(client, 1, "reject", {"why": "month-end close"})
    assert doc["state"] == "escalated" and doc["pending_approval"] is None
    escalated = next(t for t in doc["timeline"] if t["event"] == "escalated")
    assert (
        escalated["by"] == "local"
        and "rejected rollback_to_checkpoint" in (escalated["detail"]["reason"])
    )
    assert doc["has_postmortem"]
    await act(client, 1, "approve", {}, status=409)
    assert runs(marker) == 0


async def test_a_step_nobody_approves_escalates_after_the_timeout(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "runs.txt"
    client = await _receiver(aiohttp_client, tmp_path, marker, timeout="1s")
    await _waiting(client)
    await wait_until(_state(client, "escalated"))
    doc = await _incident(client)
    kinds = [t["event"] for t in doc["timeline"]]
    assert "approval_timed_out" in kinds and doc["pending_approval"] is None
    assert runs(marker) == 0


async def test_dry_run_still_applies_to_an_approved_step(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "runs.txt"
    client = await _receiver(aiohttp_client, tmp_path, marker, spec_overrides={"dry_run": True})
    await _waiting(client)
    await act(client, 1, "approve")

    async def dry() -> bool:
        return any(t["event"] == "dry_run" for t in (await _incident(client))["timeline"])

    await wait_until(dry)
    assert runs(marker) == 0


async def test_the_wait_survives_a_restart(aiohttp_client: Any, tmp_path: Path) -> None:
    marker = tmp_path / "runs.txt"
    first = await _receiver(aiohttp_client, tmp_path, marker)
    await _waiting(first)
    await first.close()  # the receiver stops; the wait is in the store
    second = await _receiver(aiohttp_client, tmp_path, marker)
    assert (await _incident(second))["pending_approval"]["strategy"] == "rollback_to_checkpoint"
    await act(second, 1, "approve")
    await wait_until(_state(second, "escalated"))
    assert runs(marker) == 1


@pytest.mark.slow
async def test_two_replicas_on_postgresql_run_the_approved_step_once(
    aiohttp_client: Any, tmp_path: Path, postgres_server: Callable[[], str]
) -> None:
    marker = tmp_path / "runs.txt"
    dsn = postgres_server()
    replicas = [
        await _receiver(aiohttp_client, tmp_path, marker, store=dsn, workers=workers)
        for workers in (
            {"poll_interval_seconds": 0.05},
            {"poll_interval_seconds": 0.05},
        )
    ]
    a, b = replicas
    await _waiting(a)
    assert (await _incident(b))["pending_approval"] is not None  # one store, one wait
    await act(b, 1, "approve")  # decided on one replica, both look for decided waits
    await wait_until(_state(a, "escalated"))
    assert runs(marker) == 1
    doc = await _incident(b)
    assert [t["event"] for t in doc["timeline"]].count("action_started") == 1
    assert len(doc["actions"]) == 1
    assert (await (await a.get("/incidents/1")).json())["pending_approval"] is None
