"""Lineage-aware incidents: a downstream alert joins its upstream's incident (issue 19 item 5).

The lineage graph comes from ``StaticPrometheus`` answering the lifecycle's own
queries (``queries.lineage_edges``, ``queries.firing_pipelines``); the store is
real SQLite, diagnosis and recovery are the counting stand-ins of core_helpers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from core_helpers import Clock, FakeDiagnose, FakeFiring, FakeRecover, alert_doc, later

from pipemedic.vocabulary import ALERT_KINDS
from receiver.diagnosis import queries
from receiver.errors import PrometheusError
from receiver.incidents.lifecycle import Lifecycle
from receiver.incidents.lineage import UpstreamGraph
from receiver.models import Alert, AlertEvent, Incident
from receiver.notify.messages import render
from receiver.notify.mobilize import Mobilizer
from receiver.people.incident_page import PageView, render_live
from receiver.recovery.downstream import DownstreamVerifier, awaiting
from receiver.recovery.verify import Verifier, alert_symptoms
from receiver.report.postmortem import render_postmortem
from receiver.store.postgres.store import PostgresStore
from receiver.store.sqlite.store import SqliteStore
from receiver.testing import StaticPrometheus, row
from receiver.worker.pool import WorkerPool
from receiver.worker.stages import StageResult
from rules.spec import Spec, parse_spec

SPEC_YAML = """
defaults: {impact: none, team: ingest}
pipelines:
  raw_orders: {impact: none, team: ingest}
  orders_mart: {impact: most, team: analytics}
  revenue_report: {impact: some, team: finance}
  lonely: {impact: none, team: ingest}
teams:
  ingest:
    commander: alice
    notify: [{url: "json://127.0.0.1:9/ingest"}]
  analytics:
    commander: bob
    notify: [{url: "json://127.0.0.1:9/analytics"}]
  finance:
    commander: carol
    notify: [{url: "json://127.0.0.1:9/finance"}]
"""

# raw_orders -> orders_mart -> revenue_report
EDGES = [
    row(1, pipeline="orders_mart", upstream="raw_orders"),
    row(1, pipeline="revenue_report", upstream="orders_mart"),
]


class World:
    """A store, a lifecycle with the lineage graph, a pool; events handed over one by one."""

    def __init__(self, store: SqliteStore | PostgresStore, prom: StaticPrometheus) -> None:
        self.store = store
        self.prom = prom
        self.spec: Spec = parse_spec(SPEC_YAML, "spec.yml")
        self.clock = Clock(later(30))
        self.lineage = UpstreamGraph(prom, ttl_seconds=3600)
        self.lifecycle = Lifecycle(
            store,
            self.spec,
            render_postmortem=render_postmortem,
            clock=self.clock,
            mobilize=Mobilizer(self.spec).messages_for,
            lineage=self.lineage,
        )
        self.diagnose = FakeDiagnose()
        self.recover = FakeRecover("recovered", clock=self.clock)
        self.pool = WorkerPool(
            store,
            self.lifecycle,
            diagnose=self.diagnose,
            recover=self.recover,
            firing=FakeFiring(False),
            clock=self.clock,
        )
        self._ids = 0

    async def send(self, doc: dict[str, Any]) -> Incident | None:
        """Run one alert through the stages; return the incident it landed in."""
        self._ids += 1
        event = AlertEvent(id=self._ids, alert=Alert.from_json(doc), received_at=self.clock())
        async with self.store.pipeline_lock(event.alert.pipeline):
            await self.pool.handle(event)
        return await self.holding(doc)

    async def holding(self, doc: dict[str, Any]) -> Incident | None:
        for incident in await self.store.list_incidents(limit=1000):
            if any(a["fingerprint"] == doc["fingerprint"] for a in incident.alerts):
                return incident
        return None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await SqliteStore.open(tmp_path / "incidents.db")
    yield s
    await s.close()


def failing(pipeline: str, name: str = "PipelineDown", **kw: Any) -> dict[str, Any]:
    return alert_doc(pipeline, name=name, fingerprint=f"{pipeline}-{name}", **kw)


async def test_a_downstream_alert_joins_the_upstream_incident_without_recovering(
    store: SqliteStore,
) -> None:
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    up = await w.send(failing("raw_orders"))
    assert up is not None and w.recover.calls == [(up.id, "raw_orders-PipelineDown")]
    down = await w.send(failing("orders_mart", "PipelineDataStale", labels={"severity": "warning"}))
    assert down is not None and down.id == up.id  # one incident
    assert await store.open_incident("orders_mart") is None
    assert len(w.diagnose.calls) == 1 and len(w.recover.calls) == 1  # nothing ran for B
    entry = next(t for t in down.timeline if t.event == "downstream_impact")
    assert entry.detail["cause"] == "upstream_failure"
    assert entry.detail["pipeline"] == "orders_mart" and entry.detail["hops"] == 1
    assert entry.detail["evidence"][0]["result"]["upstream"] == "raw_orders"
    assert [r["pipeline"] for r in down.to_json()["blast_radius"]] == ["orders_mart"]
    assert down.blast_radius()[0]["team"] == "analytics"


async def test_the_walk_is_transitive_and_the_sev_only_rises_with_downstream_impact(
    store: SqliteStore,
) -> None:
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    up = await w.send(failing("raw_orders", labels={"severity": "warning"}))
    assert up is not None
    sev_before = up.sev
    report = await w.send(failing("revenue_report", labels={"severity": "critical"}))
    assert report is not None and report.id == up.id
    assert report.blast_radius()[0]["hops"] == 2  # via orders_mart, which has no incident
    assert report.sev <= sev_before  # "SEV1" < "SEV3": a rise or the same, never lower
    changed = [t for t in report.timeline if t.event == "sev_changed"]
    assert changed and "downstream revenue_report" in changed[-1].detail["why"]
    lower = await w.send(failing("orders_mart", "PipelineDataStale", labels={"sev": "SEV4"}))
    assert lower is not None and lower.sev == report.sev  # a lesser impact never lowers it


async def test_a_healthy_upstream_leaves_the_pipeline_on_its_own(store: SqliteStore) -> None:
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    own = await w.send(failing("orders_mart"))
    assert own is not None and own.pipeline == "orders_mart"
    assert len(w.diagnose.calls) == 1 and w.recover.calls == [(own.id, "orders_mart-PipelineDown")]
    assert own.blast_radius() == []
    assert queries.firing_pipelines(["raw_orders"]).text in w.prom.asked


async def test_an_upstream_firing_without_incident_yet_gets_it_opened_and_joins_it(
    store: SqliteStore,
) -> None:
    prom = StaticPrometheus(
        {
            queries.lineage_edges(): EDGES,
            queries.firing_pipelines(["raw_orders"]): [row(1, pipeline="raw_orders")],
        }
    )
    w = World(store, prom)
    # the downstream alert is handled first (its pipeline's slot was free)
    down = await w.send(failing("orders_mart", "PipelineDataStale"))
    assert down is not None and down.pipeline == "raw_orders" and down.team == "ingest"
    assert w.diagnose.calls == [] and w.recover.calls == []
    up = await w.send(failing("raw_orders"))
    assert up is not None and up.id == down.id
    assert w.recover.calls == [(up.id, "raw_orders-PipelineDown")]  # the upstream recovers
    assert len(await store.list_incidents(limit=100)) == 1


async def test_the_incident_resolves_when_the_downstream_alerts_resolve_too(
    store: SqliteStore,
) -> None:
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    await w.send(failing("raw_orders"))
    await w.send(failing("orders_mart", "PipelineDataStale"))
    w.clock.now = later(300)
    after_up = await w.send(failing("raw_orders", status="resolved", ends=later(290)))
    assert after_up is not None and after_up.state == "recovered"  # B's alert still fires
    done = await w.send(failing("orders_mart", "PipelineDataStale", status="resolved"))
    assert done is not None and done.state == "resolved"
    assert done.blast_radius()[0]["alerts"] == {"firing": 0, "resolved": 1}
    assert done.postmortem is not None and "## Blast radius" in done.postmortem
    assert "orders\\_mart" in done.postmortem or "orders_mart" in done.postmortem
    assert await store.last_incident("orders_mart") is None  # never an incident of its own


async def test_an_alert_storm_of_one_source_is_one_incident_and_one_graph_lookup(
    store: SqliteStore,
) -> None:
    downstream = [f"consumer_{i:02d}" for i in range(20)]
    edges = [row(1, pipeline=name, upstream="raw_orders") for name in downstream]
    w = World(store, StaticPrometheus({queries.lineage_edges(): edges}))
    await w.send(failing("raw_orders"))
    for name in downstream:
        await w.send(failing(name, "PipelineDataStale"))
    incidents = await store.list_incidents(limit=100)
    assert len(incidents) == 1 and len(incidents[0].blast_radius()) == 20
    assert len(w.recover.calls) == 1 and len(w.diagnose.calls) == 1
    assert w.lineage.lookups == 1
    assert w.prom.asked.count(queries.lineage_edges().text) == 1


async def test_cycles_and_depth_bound_the_walk() -> None:
    edges = [
        row(1, pipeline="b", upstream="a"),
        row(1, pipeline="a", upstream="b"),  # a learned cycle
        row(1, pipeline="c", upstream="b"),
        row(1, pipeline="d", upstream="c"),
    ]
    graph = UpstreamGraph(StaticPrometheus({queries.lineage_edges(): edges}), max_depth=2)
    assert await graph.upstreams("a") == [("b", 1)]
    assert await graph.upstreams("d") == [("c", 1), ("b", 2)]
    wide = UpstreamGraph(StaticPrometheus({queries.lineage_edges(): edges}), max_upstreams=1)
    assert await wide.upstreams("d") == [("c", 1)]


async def test_prometheus_down_keeps_the_last_graph_and_costs_one_query_per_ttl() -> None:
    now = [0.0]
    prom = StaticPrometheus({queries.lineage_edges(): EDGES})
    graph = UpstreamGraph(prom, ttl_seconds=30, clock=lambda: now[0])
    assert await graph.upstreams("orders_mart") == [("raw_orders", 1)]
    prom.answers[queries.lineage_edges().text] = PrometheusError("down")
    now[0] = 10.0
    assert await graph.upstreams("orders_mart") == [("raw_orders", 1)]
    assert graph.lookups == 1
    now[0] = 40.0
    assert await graph.upstreams("orders_mart") == [("raw_orders", 1)]  # kept
    assert graph.lookups == 2
    assert await graph.firing(["raw_orders"]) == set()  # unanswered: none known to fire


async def test_hostile_pipeline_names_stay_literal_in_the_firing_query() -> None:
    name = 'a.b|.*"} or vector(1) #'
    text = queries.firing_pipelines([name]).text
    assert "vector(1)" not in text and text.count("ALERTS") == 1  # one selector, name escaped
    graph = UpstreamGraph(StaticPrometheus({}))
    assert await graph.firing([name]) == set()


async def test_downstream_teams_are_told(store: SqliteStore) -> None:
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    mobilizer = Mobilizer(w.spec)
    up = await w.send(failing("raw_orders"))
    down = await w.send(failing("orders_mart", "PipelineDataStale"))
    assert up is not None and down is not None
    joined = next(t for t in down.timeline if t.event == "downstream_impact")
    told = mobilizer.messages_for(down, joined)
    assert [(m.event, m.destination) for m in told] == [("opened", "teams.analytics.notify[0]")]
    detected = next(t for t in down.timeline if t.event == "detected")
    everyone = {m.destination for m in mobilizer.messages_for(down, detected)}
    assert everyone == {"teams.ingest.notify[0]", "teams.analytics.notify[0]"}


async def test_a_held_copy_saved_later_keeps_the_downstream_alert(store: SqliteStore) -> None:
    """The upstream's worker holds its copy through a recovery while B joins: B stays."""
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    up = await w.send(failing("raw_orders"))
    assert up is not None
    held = await store.get_incident(up.id)
    assert held is not None
    await w.send(failing("orders_mart", "PipelineDataStale"))
    await w.lifecycle.escalate(held, "a person must look")
    after = await store.get_incident(up.id)
    assert after is not None and after.state == "escalated"
    assert [r["pipeline"] for r in after.blast_radius()] == ["orders_mart"]
    assert any(a["fingerprint"] == "orders_mart-PipelineDataStale" for a in after.alerts)


# the blast radius lists the datasets each downstream pipeline writes ----------------------
HOSTILE_DATASET = 'warehouse/<script>alert("x")</script> @channel https://evil.example'
DATASETS = [
    row(1_765_000_000, pipeline="orders_mart", dataset="warehouse/orders_mart"),
    row(1_765_000_100, pipeline="orders_mart", dataset=HOSTILE_DATASET),
    row(1_765_000_200, pipeline="revenue_report", dataset="s3://finance/revenue"),
]


def with_datasets(**more: Any) -> StaticPrometheus:
    return StaticPrometheus(
        {queries.lineage_edges(): EDGES, queries.downstream_datasets(10): DATASETS, **more}
    )


async def test_the_blast_radius_lists_the_datasets_downstream_pipelines_write(
    store: SqliteStore,
) -> None:
    w = World(store, with_datasets())
    await w.send(failing("raw_orders"))
    await w.send(failing("orders_mart", "PipelineDataStale"))
    down = await w.send(failing("revenue_report", "PipelineDataStale"))
    assert down is not None
    radius = {r["pipeline"]: r for r in down.to_json()["blast_radius"]}
    # newest first, with the time the exporter last saw each written
    assert [d["name"] for d in radius["orders_mart"]["datasets"]] == [
        HOSTILE_DATASET,
        "warehouse/orders_mart",
    ]
    assert radius["orders_mart"]["datasets"][1]["updated_at"] == "2025-12-06T05:46:40.000Z"
    assert [d["name"] for d in radius["revenue_report"]["datasets"]] == ["s3://finance/revenue"]
    # one query of the datasets per graph refresh, for the whole storm
    assert w.prom.asked.count(queries.downstream_datasets(10).text) == 1

    page = render_live(down, PageView("alice", "responder", "t", None), w.clock())
    assert "s3://finance/revenue" in page
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)" in page
    text = render_postmortem(down, w.spec)
    assert "`s3://finance/revenue`" in text and "| Datasets |" in text
    message = render("opened", down, w.spec.team("ingest"))
    assert "Blast radius (2 downstream)" in message.markdown
    assert "s3://finance/revenue" not in message.markdown  # links are defused in chat
    assert "@channel" not in message.markdown and "@channel" not in message.html
    assert "<script>" not in message.html


async def test_a_pipeline_without_reported_outputs_has_no_datasets(store: SqliteStore) -> None:
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    await w.send(failing("raw_orders"))
    down = await w.send(failing("orders_mart", "PipelineDataStale"))
    assert down is not None and down.blast_radius()[0]["datasets"] == []
    assert "| - |" in render_postmortem(down, w.spec)


# either order: a downstream incident opened first is merged into its upstream's ------------
async def test_a_downstream_incident_opened_first_is_merged_when_the_upstream_opens(
    store: SqliteStore,
) -> None:
    w = World(store, with_datasets())
    own = await w.send(failing("orders_mart", "PipelineDataStale"))  # upstream healthy yet
    assert own is not None and own.pipeline == "orders_mart"
    assert w.recover.calls == [(own.id, "orders_mart-PipelineDataStale")]
    up = await w.send(failing("raw_orders"))
    assert up is not None and up.pipeline == "raw_orders"
    merged = await store.get_incident(own.id)
    assert merged is not None and merged.state == "closed" and merged.closed_at is not None
    closing = next(t for t in merged.timeline if t.event == "closed")
    assert closing.detail["merged_into"] == up.id and closing.detail["upstream"] == "raw_orders"
    assert merged.to_json()["merged_into"] == up.id
    assert up.to_json()["merged_from"] == [own.id]
    pointer = next(t for t in up.timeline if t.event == "merged_from")
    assert pointer.detail["incident"] == own.id and pointer.detail["actions"] == 0
    assert [r["pipeline"] for r in up.blast_radius()] == ["orders_mart"]
    assert up.blast_radius()[0]["datasets"][0]["name"] == HOSTILE_DATASET
    assert any(a["fingerprint"] == "orders_mart-PipelineDataStale" for a in up.alerts)
    assert await store.open_incident("orders_mart") is None
    view = PageView("alice", "responder", "t", None)
    assert f'merged into the upstream\'s <a href="/incidents/{up.id}">' in render_live(
        merged, view, w.clock()
    )
    assert f'<a href="/incidents/{own.id}">#{own.id}</a>' in render_live(up, view, w.clock())
    assert f"merged into it: #{own.id}" in render_postmortem(up, w.spec)
    # the moved alert's resolution lands on the upstream's incident
    w.clock.now = later(300)
    await w.send(failing("raw_orders", status="resolved", ends=later(290)))
    done = await w.send(failing("orders_mart", "PipelineDataStale", status="resolved"))
    assert done is not None and done.id == up.id and done.state == "resolved"
    # and a repeat of its firing notification is a repeat, not a new incident
    await w.send(failing("orders_mart", "PipelineDataStale"))
    assert [i.pipeline for i in await store.list_incidents(state="open", limit=10)] == []


async def test_the_upstream_first_order_gives_the_same_incident(store: SqliteStore) -> None:
    w = World(store, with_datasets())
    up = await w.send(failing("raw_orders"))
    down = await w.send(failing("orders_mart", "PipelineDataStale"))
    assert up is not None and down is not None and down.id == up.id
    assert [i.pipeline for i in await store.list_incidents(limit=10)] == ["raw_orders"]


async def test_a_merge_cancels_the_waiting_approval_and_runs_once(store: SqliteStore) -> None:
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    own = await w.send(failing("orders_mart", "PipelineDataStale"))
    assert own is not None
    held = await store.get_incident(own.id)
    assert held is not None
    w.lifecycle.request_approval(held, {"step": "rerun", "strategy": "rerun"})
    await w.lifecycle.apply(held, StageResult(entries=()))  # empty: the request rides on the
    await w.lifecycle.escalate(held, "a person must look")  # next save (escalated: mergeable)
    up = await w.send(failing("raw_orders"))
    assert up is not None
    merged = await store.get_incident(own.id)
    assert merged is not None and merged.pending_approval is None
    cancelled = next(t for t in merged.timeline if t.event == "approval_cancelled")
    assert f"incident {up.id}" in cancelled.detail["why"]
    # a second replica racing the same merge changes nothing
    assert await w.lifecycle.merge(own.id, up.id, 1) is None
    again = await store.get_incident(up.id)
    assert again is not None and again.to_json()["merged_from"] == [own.id]
    assert sum(1 for t in again.timeline if t.event == "downstream_impact") == 1


async def test_concurrent_merges_of_one_incident_happen_once(store: SqliteStore) -> None:
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    own = await w.send(failing("orders_mart", "PipelineDataStale"))
    assert own is not None
    w.lifecycle.lineage = None  # the upstream opens without looking downstream: replicas merge
    up = await w.send(failing("raw_orders"))
    assert up is not None and up.to_json()["merged_from"] == []
    done = await asyncio.gather(*(w.lifecycle.merge(own.id, up.id, 1) for _ in range(5)))
    assert sum(1 for d in done if d is not None) == 1
    after = await store.get_incident(up.id)
    assert after is not None and after.to_json()["merged_from"] == [own.id]
    assert len([a for a in after.alerts if a["fingerprint"].startswith("orders_mart")]) == 1


async def test_an_incident_outside_the_merge_window_or_escalated_stays_apart(
    store: SqliteStore,
) -> None:
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    w.lifecycle.merge_window = timedelta(seconds=60)
    own = await w.send(failing("orders_mart", "PipelineDataStale", starts=later(-3600)))
    assert own is not None
    up = await w.send(failing("raw_orders"))
    assert up is not None and up.id != own.id
    stays = await store.get_incident(own.id)
    assert stays is not None and stays.state != "closed"


async def test_an_incident_a_person_acknowledged_stays_theirs(store: SqliteStore) -> None:
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    own = await w.send(failing("orders_mart", "PipelineDataStale"))
    assert own is not None

    def take(incident: Incident) -> None:
        incident.acknowledged_by, incident.acknowledged_at = "bob", w.clock()

    await w.lifecycle.act(own.id, take)
    up = await w.send(failing("raw_orders"))
    assert up is not None and up.id != own.id and up.to_json()["merged_from"] == []
    stays = await store.get_incident(own.id)
    assert stays is not None and stays.state != "closed"


# once the upstream recovered, each downstream pipeline is verified ----------------------
def verifying(w: World, deadline_seconds: float = 600) -> list[str]:
    """Give the pool a downstream verifier on ``w.prom``; return the stale-data queries."""
    verifier = Verifier(
        w.prom,
        deadline_seconds=60,
        interval_seconds=1,
        window_seconds=60,
        clock=w.clock,
        sleep=asyncio.sleep,
    )
    w.pool.downstream = DownstreamVerifier(
        verifier, w.spec, deadline_seconds=deadline_seconds, clock=w.clock
    )
    checks = alert_symptoms("PipelineDataStale", w.spec.pipeline("orders_mart"), 60)
    return [s.query for s in checks]


async def test_a_downstream_pipeline_is_verified_after_its_upstream_recovered(
    store: SqliteStore,
) -> None:
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    stale_query = verifying(w)[1]
    assert "pipeline_last_update_timestamp_seconds" in stale_query and "14400" in stale_query
    w.prom.answers[stale_query] = [row(20000, pipeline="orders_mart")]  # still stale
    up = await w.send(failing("raw_orders"))
    await w.send(failing("orders_mart", "PipelineDataStale"))
    assert up is not None
    await w.pool.verify_downstream()  # still stale, within the deadline: nothing said yet
    held = await store.get_incident(up.id)
    assert held is not None and held.state == "recovered"
    assert awaiting(held) == {"orders_mart": ["PipelineDataStale"]}
    judged = {"downstream_verified", "downstream_still_failing"}
    assert not any(t.event in judged for t in held.timeline)
    del w.prom.answers[stale_query]  # its next run refreshed the data
    await w.pool.verify_downstream()
    await w.pool.verify_downstream()  # judged once per recovery
    after = await store.get_incident(up.id)
    assert after is not None and after.state == "recovered"
    verified = [t for t in after.timeline if t.event == "downstream_verified"]
    assert len(verified) == 1 and verified[0].detail["pipeline"] == "orders_mart"
    assert "its output data still older than max_staleness" in verified[0].detail["checks"]
    assert awaiting(after) == {}
    assert len(w.recover.calls) == 1  # no recovery of its own
    # the upstream's and the downstream's alerts resolving close it out
    w.clock.now = later(300)
    await w.send(failing("raw_orders", status="resolved", ends=later(290)))
    done = await w.send(failing("orders_mart", "PipelineDataStale", status="resolved"))
    assert done is not None and done.state == "resolved"


async def test_a_downstream_pipeline_still_failing_after_the_deadline_escalates(
    store: SqliteStore,
) -> None:
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    stale_query = verifying(w, deadline_seconds=600)[1]
    w.prom.answers[stale_query] = [row(20000, pipeline="orders_mart")]
    up = await w.send(failing("raw_orders"))
    await w.send(failing("orders_mart", "PipelineDataStale"))
    assert up is not None
    w.clock.now = later(30 + 601)
    await w.pool.verify_downstream()
    after = await store.get_incident(up.id)
    assert after is not None and after.state == "escalated"
    still = next(t for t in after.timeline if t.event == "downstream_still_failing")
    assert still.detail["pipeline"] == "orders_mart" and still.detail["waited_seconds"] >= 600
    assert still.detail["still"] == ["its output data still older than max_staleness"]
    escalated = next(t for t in after.timeline if t.event == "escalated")
    assert "downstream orders_mart still failing" in escalated.detail["reason"]
    assert after.postmortem is not None  # escalation drafts it in the same save
    await w.pool.verify_downstream()  # escalated: nothing more to judge
    again = await store.get_incident(up.id)
    assert again is not None
    assert [t.event for t in again.timeline].count("downstream_still_failing") == 1


async def test_prometheus_not_answering_judges_nothing(store: SqliteStore) -> None:
    w = World(store, StaticPrometheus({queries.lineage_edges(): EDGES}))
    for query in verifying(w, deadline_seconds=0):
        w.prom.answers[query] = PrometheusError("down")
    up = await w.send(failing("raw_orders"))
    await w.send(failing("orders_mart", "PipelineDataStale"))
    assert up is not None
    await w.pool.verify_downstream()
    after = await store.get_incident(up.id)
    assert after is not None and after.state == "recovered"
    assert awaiting(after) == {"orders_mart": ["PipelineDataStale"]}


@pytest.fixture
async def replicas(postgres_server: Callable[[], str]) -> AsyncIterator[list[PostgresStore]]:
    """Two replicas' stores on one fresh PostgreSQL database."""
    dsn = postgres_server()
    stores = [await PostgresStore.open(dsn) for _ in range(2)]
    yield stores
    for store in stores:
        await store.close()


async def test_replicas_on_postgresql_merge_an_incident_once(
    replicas: list[PostgresStore],
) -> None:
    """Two replicas (two stores on one PostgreSQL) race to merge the same incident."""
    stores = replicas
    w = World(stores[0], StaticPrometheus({queries.lineage_edges(): EDGES}))
    own = await w.send(failing("orders_mart", "PipelineDataStale"))
    w.lifecycle.lineage = None  # the upstream opens without merging: the replicas do
    up = await w.send(failing("raw_orders"))
    assert own is not None and up is not None and own.id != up.id
    lifecycles = [w.lifecycle, Lifecycle(stores[1], w.spec, clock=w.clock)]
    done = await asyncio.gather(*(r.merge(own.id, up.id, 1) for r in lifecycles * 3))
    assert sum(1 for d in done if d is not None) == 1
    after = await stores[1].get_incident(up.id)
    merged = await stores[1].get_incident(own.id)
    assert after is not None and merged is not None and merged.state == "closed"
    assert after.to_json()["merged_from"] == [own.id]
    assert [t.event for t in after.timeline].count("downstream_impact") == 1
    assert [a["fingerprint"] for a in after.alerts].count("orders_mart-PipelineDataStale") == 1


class ListingTogether:
    """A store whose ``list_incidents`` answers only once every caller has asked (a race)."""

    def __init__(self, store: PostgresStore, barrier: asyncio.Barrier) -> None:
        self._store, self._barrier = store, barrier

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def list_incidents(self, **kwargs: Any) -> list[Incident]:
        found = await self._store.list_incidents(**kwargs)
        await self._barrier.wait()
        return found


async def test_replicas_on_postgresql_verify_a_downstream_pipeline_once(
    replicas: list[PostgresStore],
) -> None:
    """Two replicas' pools judge the same recovered incident at once: one verdict."""
    stores = replicas
    w = World(stores[0], StaticPrometheus({queries.lineage_edges(): EDGES}))
    verifying(w)
    up = await w.send(failing("raw_orders"))
    await w.send(failing("orders_mart", "PipelineDataStale"))
    assert up is not None
    listed = asyncio.Barrier(4)  # every round has listed the incident before any judges
    w.pool.store = ListingTogether(stores[0], listed)
    other = WorkerPool(
        ListingTogether(stores[1], listed),
        Lifecycle(stores[1], w.spec, clock=w.clock),
        diagnose=FakeDiagnose(),
        recover=FakeRecover(),
        firing=FakeFiring(False),
        clock=w.clock,
        downstream=w.pool.downstream,
    )
    assert isinstance(w.pool.downstream, DownstreamVerifier)
    ticks = itertools.count(1)  # each verdict its own instant: equal entries would merge
    w.pool.downstream.clock = lambda: later(30 + next(ticks) / 1000)
    await asyncio.gather(*(p.verify_downstream() for p in [w.pool, other] * 2))
    after = await stores[1].get_incident(up.id)
    assert after is not None
    assert [t.event for t in after.timeline].count("downstream_verified") == 1


def test_every_alert_kind_gives_its_own_verification_with_the_spec_threshold() -> None:
    spec = parse_spec("defaults: {max_staleness: 2h, sla: 30m, max_error_rate: 0.2}\n", "s.yml")
    pipeline = spec.pipeline('a"b} or vector(1)')  # an alert's label: not in the spec
    for kind in ALERT_KINDS:
        found = alert_symptoms(kind.alert, pipeline, 60)
        assert found[0].note == "pipeline reported down"
        if kind.clears is None:
            assert len(found) == 1
            continue
        (own,) = found[1:]
        assert own.note == kind.clears.note
        assert 'pipeline="a\\"b} or vector(1)"' in own.query  # one escaped literal
    stale = alert_symptoms("PipelineDataStale", pipeline, 60)[1].query
    assert stale.endswith("> 7200")
    assert alert_symptoms("PipelineHighErrorRate", pipeline, 60)[1].query.endswith("> 0.2")
    assert len(alert_symptoms("SomeoneElsesAlert", pipeline, 60)) == 1
