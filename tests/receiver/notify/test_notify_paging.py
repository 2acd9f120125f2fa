"""Paging through a real Alertmanager: the repository's routing sends PipelineIncident to paging."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from notify_helpers import incident, spec_with

from pipemedic.sinks import ChatSink
from pipemedic.stack import AlertmanagerServer
from receiver.models import TimelineEntry
from receiver.notify.messages import render
from receiver.notify.mobilize import Mobilizer
from receiver.notify.paging import AlertmanagerPager, PageRenewer
from receiver.store.sqlite.store import SqliteStore
from rules.spec import parse_spec


def _active(am: AlertmanagerServer) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{am.url}/api/v2/alerts?active=true", timeout=10) as r:
        return list(json.loads(r.read()))


def _paging_config(repo_root: Path, pager_sink: ChatSink, trap: ChatSink) -> str:
    """The repository's alertmanager.yml, its paging receiver a local webhook."""
    config = (repo_root / "alertmanager.yml").read_text()
    config = config.replace("http://127.0.0.1:9099/alerts", f"http://{trap.address}/alerts")
    return config.replace(
        "  - name: paging\n",
        f"  - name: paging\n    webhook_configs: [{{url: 'http://{pager_sink.address}/page'}}]\n",
    )


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(3000):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never: {what}")


@pytest.mark.slow
async def test_pipeline_incident_pages_through_alertmanager_and_resolves(
    repo_root: Path, alertmanager_server: Callable[..., AlertmanagerServer]
) -> None:
    with ChatSink() as pager_sink, ChatSink() as trap:
        am = alertmanager_server(_paging_config(repo_root, pager_sink, trap))
        pager = AlertmanagerPager(am.url, external_url="https://pm.example.com")
        inc = incident()
        team = spec_with('      - {url: "json://127.0.0.1:1/x"}').team("data-platform")
        try:
            fired = await pager.send("alertmanager", render("escalated", inc, team), inc)
            assert fired.outcome == "sent", fired
            firing: list[dict[str, Any]] = []
            for _ in range(3000):  # Alertmanager may flush the group more than once
                firing = [
                    a
                    for p in list(pager_sink.posts)
                    for a in p.get("alerts", [])
                    if a["status"] == "firing"
                ]
                if firing:
                    break
                await asyncio.sleep(0.02)
            # one firing label set; the earlier ones (state open) were posted resolved
            assert firing, "Alertmanager never notified the paging receiver"
            alert = firing[0]
            assert {a["labels"]["state"] for a in firing} == {"escalated"}
            assert set(pager_sink.paths) == {"/page"}
            assert alert["labels"] == {
                "alertname": "PipelineIncident",
                "pipeline": "etl_orders",
                "sev": "SEV2",
                "team": "data-platform",
                "incident": "7",
                "state": "escalated",
            }
            assert alert["annotations"]["incident_url"] == "https://pm.example.com/incidents/7"
            assert trap.posts == []  # never back to pipemedic's webhook
            resolved = await pager.send("alertmanager", render("resolved", inc, team), inc)
            assert resolved.outcome == "sent"
            assert _active(am) == []
        finally:
            await pager.close()


@pytest.mark.slow
async def test_an_open_page_is_posted_again_and_stays_up_until_the_incident_resolves(
    repo_root: Path, alertmanager_server: Callable[..., AlertmanagerServer], tmp_path: Path
) -> None:
    # each post holds the page 4 s (4 resend intervals of 1 s); without the
    # re-posts Alertmanager would end it once the first endsAt has passed
    spec = parse_spec("teams:\n  data-platform:\n    commander: A\n    page_sev: SEV2\n")
    with ChatSink() as pager_sink, ChatSink() as trap:
        am = alertmanager_server(_paging_config(repo_root, pager_sink, trap))
        store = await SqliteStore.open(tmp_path / "pages.db")
        pager = AlertmanagerPager(am.url, resend_seconds=1.0)
        renewer = PageRenewer(store, pager, spec, Mobilizer(spec, paging=True), resend_seconds=1.0)
        paged = incident()
        paged.id = 0
        paged = await store.create_incident(paged)
        quiet = incident(pipeline="etl_quiet")  # below page_sev: never paged
        quiet.id, quiet.sev = 0, "SEV3"
        await store.create_incident(quiet)
        try:
            await renewer.start()
            await _until(lambda: bool(_active(am)), "the page is up")
            (first,) = _active(am)
            assert first["labels"]["incident"] == str(paged.id)
            assert first["labels"]["state"] == "escalated"
            first_end = datetime.fromisoformat(first["endsAt"])
            # the first post alone would have ended by now
            await _until(lambda: datetime.now(UTC) > first_end, "the first post's endsAt passed")
            (later,) = _active(am)
            assert later["fingerprint"] == first["fingerprint"]
            assert later["status"]["state"] == "active"
            assert datetime.fromisoformat(later["endsAt"]) > first_end
            assert renewer.posts >= 2
            assert trap.posts == []  # never back to pipemedic's webhook

            paged.state = "resolved"
            await store.save_incident(paged)
            await pager.send(
                "alertmanager", render("resolved", paged, spec.team("data-platform")), paged
            )
            rounds = renewer.rounds
            await _until(lambda: renewer.rounds >= rounds + 2, "two rounds after resolving")
            assert _active(am) == []
        finally:
            await renewer.stop()
            await pager.close()
            await store.close()


def test_pages_only_at_or_above_the_teams_page_sev() -> None:
    text = "teams:\n  t:\n    commander: A\n    page_sev: SEV2\n"
    mobilizer = Mobilizer(parse_spec(text), paging=True)
    inc = incident()
    inc.team = "t"
    entry = TimelineEntry(at=inc.opened_at, event="escalated", detail={})
    assert [m.destination for m in mobilizer.messages_for(inc, entry)] == ["alertmanager"]
    inc.sev = "SEV3"
    assert mobilizer.messages_for(inc, entry) == []
    resolved = TimelineEntry(at=inc.opened_at, event="resolved", detail={})
    assert [m.destination for m in mobilizer.messages_for(inc, resolved)] == ["alertmanager"]
    assert Mobilizer(parse_spec(text), paging=False).messages_for(inc, entry) == []


async def test_an_unreachable_alertmanager_is_a_retryable_failure() -> None:
    pager = AlertmanagerPager("http://127.0.0.1:9")
    inc = incident()
    try:
        result = await pager.send("alertmanager", render("opened", inc, None), inc)
    finally:
        await pager.close()
    assert (result.outcome, result.retryable) == ("failed", True)


async def test_a_renewal_round_reads_whole_only_the_incidents_whose_sev_can_page(
    tmp_path: Path,
) -> None:
    """A round lists ids and SEVs; below every team's page_sev nothing is read whole
    (10,000 open incidents must not be loaded at every resend interval)."""
    spec = parse_spec("teams:\n  data-platform:\n    commander: A\n    page_sev: SEV2\n")
    store = await SqliteStore.open(tmp_path / "pages.db")
    read: list[int] = []
    get_incident = store.get_incident

    async def counted(incident_id: int) -> Any:
        read.append(incident_id)
        return await get_incident(incident_id)

    try:
        ids: dict[str, int] = {}
        for pipeline, sev in [
            ("etl_a", "SEV1"),
            ("etl_b", "SEV2"),
            ("etl_c", "SEV3"),
            ("etl_d", "SEV4"),
        ]:
            made = incident(pipeline=pipeline)
            made.id, made.sev = 0, sev
            ids[sev] = (await store.create_incident(made)).id
        store.get_incident = counted  # type: ignore[method-assign]
        renewer = PageRenewer(
            store, AlertmanagerPager("http://127.0.0.1:9"), spec, Mobilizer(spec, paging=True)
        )
        assert [i.pipeline async for i in renewer.paged()] == ["etl_a", "etl_b"]
        assert sorted(read) == sorted([ids["SEV1"], ids["SEV2"]])
        off = PageRenewer(store, renewer.pager, spec, Mobilizer(spec, paging=False))
        assert [i async for i in off.paged()] == []
    finally:
        await renewer.pager.close()
        await store.close()
