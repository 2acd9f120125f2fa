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
(``downstream_verified``) by its own alert's condition.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from core_helpers import ALERTMANAGER_TO_RECEIVER, FakeRecover
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run
from openlineage.client.transport.http import HttpConfig, HttpTransport
from recovery_evidence import SCRAPE, EvidenceExporter, wait_for

from pipemedic.stack import AlertmanagerServer, PrometheusServer, free_port
from receiver.app import create_app
from receiver.config import parse_config
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


async def until(check: Callable[[], Awaitable[Any]], what: str, deadline: float = 90.0) -> Any:
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"not reached within {deadline:.0f}s: {what}; last: {last}")


async def test_openlineage_learned_lineage_makes_one_incident_with_its_blast_radius(
    tmp_path: Path,
    exporter: EvidenceExporter,
    prometheus_server: Callable[..., PrometheusServer],
    alertmanager_server: Callable[..., AlertmanagerServer],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    client = OpenLineageClient(
        transport=HttpTransport(HttpConfig(url=f"http://{exporter.address}", retry={"total": 0}))
    )
    # orders_raw ran well ten minutes ago, writing shop.orders
    raw_ok = str(uuid.uuid4())
    await asyncio.to_thread(
        emit,
        client,
        run(RunState.START, "orders_raw_dag", raw_ok, 660),
        run(RunState.COMPLETE, "orders_raw_dag", raw_ok, 600, writes=["shop.orders"]),
    )
    prom_port = free_port()
    recover = FakeRecover("recovered")
    config = parse_config(
        {
            "store": f"sqlite:///{tmp_path / 'receiver.db'}",
            "prometheus_url": f"http://127.0.0.1:{prom_port}",
            "workers": {"poll_interval_seconds": 0.1, "concurrency": 4},
            "lineage": {"ttl": 0.5},
            "recovery": {"verify_interval_seconds": 0.5},
        }
    )
    receiver = await aiohttp_server(
        create_app(config, spec=exporter.spec, recover=lambda *_: recover), host="127.0.0.1"
    )
    am = await asyncio.to_thread(
        alertmanager_server, ALERTMANAGER_TO_RECEIVER.format(url=receiver.make_url("/alerts"))
    )
    rules_dir = tmp_path / "rules"
    write_files(rules_dir, render_all(generate(exporter.spec), exporter.spec.source))
    prom_config = (
        f"global: {{scrape_interval: {SCRAPE}, scrape_timeout: 400ms, "
        "evaluation_interval: 500ms}\n"
        f"rule_files: ['{rules_dir}/*.rules.yml']\n"
        f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['{am.address}']}}]}}]}}\n"
        "scrape_configs:\n"
        f"  - job_name: pipelines\n    static_configs: [{{targets: ['{exporter.address}']}}]\n"
    )
    server = await asyncio.to_thread(prometheus_server, prom_config, port=prom_port)
    async with aiohttp.ClientSession() as http:
        prom = PrometheusAPI(server.url, http)

        async def incidents() -> list[dict[str, Any]]:
            async with http.get(receiver.make_url("/incidents?limit=100")) as r:
                return list((await r.json())["incidents"])

        async def incident(number: int) -> dict[str, Any]:
            async with http.get(receiver.make_url(f"/incidents/{number}")) as r:
                doc: dict[str, Any] = await r.json()
                return doc

        # Prometheus has seen orders_raw with no failed run (a rate needs a sample before)
        await wait_for(prom, 'pipeline_runs_total{pipeline="orders_raw",status="failure"} == 0')
        # orders_raw fails: the client's FAIL carries the task's exception
        raw_bad = str(uuid.uuid4())
        error = error_message_run.ErrorMessageRunFacet(
            message="java.net.SocketTimeoutException: Read timed out", programmingLanguage="JAVA"
        )
        await asyncio.to_thread(
            emit,
            client,
            run(RunState.START, "orders_raw_dag", raw_bad, 5),
            run(RunState.FAIL, "orders_raw_dag", raw_bad, 1, facets={"errorMessage": error}),
        )

        async def recovered() -> list[dict[str, Any]]:
            return [i for i in await incidents() if i["state"] == "recovered"]

        try:
            opened = await until(recovered, "the receiver's incident on orders_raw, recovered")
        except AssertionError as exc:
            alerts = [r["metric"] for r in await prom.query("ALERTS")]
            seen = [(i["pipeline"], i["state"]) for i in await incidents()]
            raise AssertionError(f"{exc}; incidents {seen}; ALERTS {alerts}") from None
        assert [i["pipeline"] for i in opened] == ["orders_raw"]

        # orders_mart reports its last run: two hours ago, reading shop.orders (the edge)
        mart = str(uuid.uuid4())
        await asyncio.to_thread(
            emit,
            client,
            run(RunState.START, "orders_mart_dag", mart, 7260),
            run(
                RunState.COMPLETE,
                "orders_mart_dag",
                mart,
                7200,
                reads=["shop.orders"],
                writes=MART_OUTPUTS,
            ),
        )
        edges = await wait_for(prom, "pipeline_upstream_info", lambda rows: len(rows) == 1)
        assert edges[0]["metric"]["upstream"] == "orders_raw"
        assert edges[0]["metric"]["pipeline"] == "orders_mart"

        async def joined() -> dict[str, Any] | None:
            doc = await incident(opened[0]["id"])
            return doc if doc["blast_radius"] else None

        try:
            doc = await until(joined, "orders_mart's stale alert joining orders_raw's incident")
        except AssertionError as exc:
            seen = [(i["pipeline"], i["state"]) for i in await incidents()]
            raise AssertionError(f"{exc}; incidents: {seen}") from None
        assert [i["pipeline"] for i in await incidents()] == ["orders_raw"]  # one incident
        assert recover.calls == [(doc["id"], recover.calls[0][1])]  # one recovery, upstream's
        (row,) = doc["blast_radius"]
        assert row["pipeline"] == "orders_mart" and row["team"] == "analytics"
        assert row["cause"] == "upstream_failure" and row["hops"] == 1
        assert sorted(d["name"] for d in row["datasets"]) == [
            f"{WAREHOUSE}/{name}" for name in sorted(MART_OUTPUTS)
        ]
        stale = [
            a["labels"]["alertname"]
            for a in doc["alerts"]
            if a["labels"]["pipeline"] == "orders_mart"
        ]
        assert "PipelineDataStale" in stale

        # orders_mart's next run refreshes its data: it is verified by its own alert's condition
        again = str(uuid.uuid4())
        await asyncio.to_thread(
            emit,
            client,
            run(RunState.START, "orders_mart_dag", again, 2),
            run(
                RunState.COMPLETE,
                "orders_mart_dag",
                again,
                0,
                reads=["shop.orders"],
                writes=MART_OUTPUTS,
            ),
        )

        async def verified() -> list[dict[str, Any]]:
            doc = await incident(opened[0]["id"])
            return [t for t in doc["timeline"] if t["event"] == "downstream_verified"]

        (entry,) = await until(verified, "orders_mart verified once orders_raw recovered")
        assert entry["detail"]["pipeline"] == "orders_mart"
        assert entry["detail"]["upstream"] == "orders_raw"
        assert len(recover.calls) == 1
