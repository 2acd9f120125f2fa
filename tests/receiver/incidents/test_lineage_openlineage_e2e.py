"""Lineage learned from OpenLineage events drives one incident (issue 19 item 5).

Nothing declares the edge: the official ``openlineage-python`` client's HTTP
transport posts runs to the project's exporter (``POST /api/v1/lineage``),
where ``orders_mart`` reads the dataset ``orders_raw`` writes. The exporter
learns the edge and exports ``pipeline_upstream_info`` and the datasets each
pipeline writes; a real Prometheus scrapes it and evaluates the rules
generated from the same spec (``for: 0s``); a real Alertmanager posts to the
receiver. ``orders_raw`` fails (a FAIL with an ``errorMessage``); then
``orders_mart`` reports its last run, two hours old, so its data is stale. One
incident, on ``orders_raw``; one recovery (the counting seam of core_helpers,
on the upstream only); ``orders_mart`` in the blast radius with the datasets
it writes; once its next run refreshes its data, it is verified
(``downstream_verified``) by its own alert's condition. In the other order
(``orders_mart`` stale while ``orders_raw`` is still healthy) its own incident
opens, and is merged into ``orders_raw``'s when that fails.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from core_helpers import until
from lineage_stack import LineageStack, start_lineage_stack
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run
from openlineage.client.transport.http import HttpConfig, HttpTransport
from recovery_evidence import EvidenceExporter, wait_for

from pipemedic.stack import AlertmanagerServer, PrometheusServer
from receiver.diagnosis.prometheus import PrometheusAPI
from rules.generate import generate
from rules.output import render_all, write_files

pytestmark = pytest.mark.slow

NS = "airflow://prod"
WAREHOUSE = "postgres://warehouse:5432"
SPEC = """
defaults:
  for: {error_rate: 0s, staleness: 0s, down: 1h}
  keep_firing_for: {error_rate: 0s}
openlineage:
  pipelines:
    - {namespace: "airflow://*", job: orders_raw_dag, pipeline: orders_raw}
    - {namespace: "airflow://*", job: orders_mart_dag, pipeline: orders_mart}
pipelines:
  orders_raw: {team: ingest, impact: some}
  orders_mart: {team: analytics, impact: many, max_staleness: 1h}
teams:
  ingest: {commander: ana}
  analytics: {commander: bo}
"""
MART_OUTPUTS = ["shop.orders_mart", "shop.revenue_daily"]


@pytest.fixture
def exporter() -> Iterator[EvidenceExporter]:
    found = EvidenceExporter(lambda _: SPEC).start()
    yield found
    found.stop()


def iso(seconds_ago: float) -> str:
    at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds_ago)
    return at.isoformat()


def run(
    state: RunState,
    job: str,
    run_id: str,
    seconds_ago: float,
    *,
    reads: list[str] | None = None,
    writes: list[str] | None = None,
    facets: dict[str, Any] | None = None,
) -> RunEvent:
    return RunEvent(
        eventType=state,
        eventTime=iso(seconds_ago),
        run=Run(runId=run_id, facets=facets or {}),
        job=Job(namespace=NS, name=job),
        producer="https://github.com/apache/airflow/tree/providers-openlineage/2.0.0",
        inputs=[InputDataset(namespace=WAREHOUSE, name=n) for n in reads or []],
        outputs=[OutputDataset(namespace=WAREHOUSE, name=n) for n in writes or []],
    )


def emit(client: OpenLineageClient, *events: RunEvent) -> None:
    for event in events:
        client.emit(event)


class Stack:
    """The started stack, the OpenLineage client and what the tests ask of the receiver."""

    def __init__(self, stack: LineageStack, exporter: EvidenceExporter) -> None:
        self.receiver, self.recover = stack.receiver, stack.recover
        self.client = OpenLineageClient(
            transport=HttpTransport(
                HttpConfig(url=f"http://{exporter.address}", retry={"total": 0})
            )
        )
        self.http = aiohttp.ClientSession()
        self.prom = PrometheusAPI(stack.prometheus.url, self.http)

    async def incidents(self) -> list[dict[str, Any]]:
        async with self.http.get(self.receiver.make_url("/incidents?limit=100")) as r:
            return list((await r.json())["incidents"])

    async def incident(self, number: int) -> dict[str, Any]:
        async with self.http.get(self.receiver.make_url(f"/incidents/{number}")) as r:
            doc: dict[str, Any] = await r.json()
            return doc

    async def raw_ran_well(self) -> None:
        """orders_raw ran well ten minutes ago, writing shop.orders; Prometheus saw it with no
        failed run (a rate needs a sample before the failure)."""
        run_id = str(uuid.uuid4())
        await asyncio.to_thread(
            emit,
            self.client,
            run(RunState.START, "orders_raw_dag", run_id, 660),
            run(RunState.COMPLETE, "orders_raw_dag", run_id, 600, writes=["shop.orders"]),
        )
        query = 'pipeline_runs_total{pipeline="orders_raw",status="failure"} == 0'
        await wait_for(self.prom, query)

    async def raw_fails(self) -> None:
        """orders_raw fails: the client's FAIL carries the task's exception."""
        run_id = str(uuid.uuid4())
        error = error_message_run.ErrorMessageRunFacet(
            message="java.net.SocketTimeoutException: Read timed out", programmingLanguage="JAVA"
        )
        await asyncio.to_thread(
            emit,
            self.client,
            run(RunState.START, "orders_raw_dag", run_id, 5),
            run(RunState.FAIL, "orders_raw_dag", run_id, 1, facets={"errorMessage": error}),
        )

    async def mart_run(self, ended_seconds_ago: float) -> None:
        """One orders_mart run (a minute long): it reads shop.orders and writes its tables."""
        run_id = str(uuid.uuid4())
        finished = run(
            RunState.COMPLETE,
            "orders_mart_dag",
            run_id,
            ended_seconds_ago,
            reads=["shop.orders"],
            writes=MART_OUTPUTS,
        )
        started = run(RunState.START, "orders_mart_dag", run_id, ended_seconds_ago + 60)
        await asyncio.to_thread(emit, self.client, started, finished)
        edges = await wait_for(self.prom, "pipeline_upstream_info", lambda rows: len(rows) == 1)
        assert edges[0]["metric"]["upstream"] == "orders_raw"
        assert edges[0]["metric"]["pipeline"] == "orders_mart"

    async def wait(self, check: Callable[[], Awaitable[Any]], what: str) -> Any:
        """``until``, saying on failure which incidents and alerts there were."""
        try:
            return await until(check, what)
        except AssertionError as exc:
            alerts = [r["metric"] for r in await self.prom.query("ALERTS")]
            seen = [(i["pipeline"], i["state"]) for i in await self.incidents()]
            raise AssertionError(f"{exc}; incidents {seen}; ALERTS {alerts}") from None

    def datasets(self, row: dict[str, Any]) -> list[str]:
        return sorted(d["name"] for d in row["datasets"])


MART_DATASETS = [f"{WAREHOUSE}/{name}" for name in sorted(MART_OUTPUTS)]


@pytest.fixture
async def stack(
    tmp_path: Path,
    exporter: EvidenceExporter,
    prometheus_server: Callable[..., PrometheusServer],
    alertmanager_server: Callable[..., AlertmanagerServer],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> AsyncIterator[Stack]:
    rules_dir = tmp_path / "rules"
    write_files(rules_dir, render_all(generate(exporter.spec), exporter.spec.source))
    started = await start_lineage_stack(
        tmp_path,
        exporter,
        f"{rules_dir}/*.rules.yml",
        prometheus_server,
        alertmanager_server,
        aiohttp_server,
        lineage={"ttl": 0.5},
        recovery={"verify_interval_seconds": 0.5},
    )
    found = Stack(started, exporter)
    yield found
    await found.http.close()


async def test_openlineage_learned_lineage_makes_one_incident_with_its_blast_radius(
    stack: Stack,
) -> None:
    await stack.raw_ran_well()
    await stack.raw_fails()

    async def recovered() -> list[dict[str, Any]]:
        return [i for i in await stack.incidents() if i["state"] == "recovered"]

    opened = await stack.wait(recovered, "the receiver's incident on orders_raw, recovered")
    assert [i["pipeline"] for i in opened] == ["orders_raw"]

    # orders_mart reports its last run: two hours ago, reading shop.orders (the edge)
    await stack.mart_run(7200)

    async def joined() -> dict[str, Any] | None:
        doc = await stack.incident(opened[0]["id"])
        return doc if doc["blast_radius"] else None

    doc = await stack.wait(joined, "orders_mart's stale alert joining orders_raw's incident")
    assert [i["pipeline"] for i in await stack.incidents()] == ["orders_raw"]  # one incident
    recover = stack.recover
    assert recover.calls == [(doc["id"], recover.calls[0][1])]  # one recovery, upstream's
    (row,) = doc["blast_radius"]
    assert row["pipeline"] == "orders_mart" and row["team"] == "analytics"
    assert row["cause"] == "upstream_failure" and row["hops"] == 1
    assert stack.datasets(row) == MART_DATASETS
    stale = [
        a["labels"]["alertname"] for a in doc["alerts"] if a["labels"]["pipeline"] == "orders_mart"
    ]
    assert "PipelineDataStale" in stale

    # orders_mart's next run refreshes its data: it is verified by its own alert's condition
    await stack.mart_run(0)

    async def verified() -> list[dict[str, Any]]:
        doc = await stack.incident(opened[0]["id"])
        return [t for t in doc["timeline"] if t["event"] == "downstream_verified"]

    (entry,) = await stack.wait(verified, "orders_mart verified once orders_raw recovered")
    assert entry["detail"]["pipeline"] == "orders_mart"
    assert entry["detail"]["upstream"] == "orders_raw"
    assert len(recover.calls) == 1


async def test_a_downstream_incident_opened_first_is_merged_when_the_upstream_fails(
    stack: Stack,
) -> None:
    """The other order: orders_mart's stale alert comes while orders_raw is healthy."""
    await stack.raw_ran_well()
    await stack.mart_run(7200)

    async def own() -> list[dict[str, Any]]:
        return [i for i in await stack.incidents() if i["pipeline"] == "orders_mart"]

    (mart,) = await stack.wait(own, "orders_mart's own incident (its upstream healthy)")
    await stack.raw_fails()

    async def merged() -> dict[str, Any] | None:
        doc = await stack.incident(mart["id"])
        return doc if doc["merged_into"] is not None else None

    closed = await stack.wait(merged, "orders_mart's incident merged into orders_raw's")
    assert closed["state"] == "closed"
    upstream = await stack.incident(closed["merged_into"])
    assert upstream["pipeline"] == "orders_raw" and upstream["merged_from"] == [mart["id"]]
    (row,) = upstream["blast_radius"]
    assert row["pipeline"] == "orders_mart" and stack.datasets(row) == MART_DATASETS
    assert any(a["labels"]["pipeline"] == "orders_mart" for a in upstream["alerts"])
    still_open = [i["pipeline"] for i in await stack.incidents() if i["state"] != "closed"]
    assert still_open == ["orders_raw"]
    # orders_mart's own recovery ran before anything said its upstream failed; not again
    assert [i for i, _ in stack.recover.calls].count(mart["id"]) == 1
