"""Lineage-aware incidents: a downstream alert joins its upstream's incident (issue 19 item 5).

The lineage graph comes from ``StaticPrometheus`` answering the lifecycle's own
queries (``queries.lineage_edges``, ``queries.firing_pipelines``); the store is
real SQLite, diagnosis and recovery are the counting stand-ins of core_helpers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from core_helpers import Clock, FakeDiagnose, FakeFiring, FakeRecover, alert_doc, later

from receiver.diagnosis import queries
from receiver.errors import PrometheusError
from receiver.incidents.lifecycle import Lifecycle
from receiver.incidents.lineage import UpstreamGraph
from receiver.models import Alert, AlertEvent, Incident
from receiver.notify.mobilize import Mobilizer
from receiver.report.postmortem import render_postmortem
from receiver.store.sqlite.store import SqliteStore
from receiver.testing import StaticPrometheus, row
from receiver.worker.pool import WorkerPool
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

    def __init__(self, store: SqliteStore, prom: StaticPrometheus) -> None:
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
