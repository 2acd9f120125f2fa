"""Lineage learned from OpenLineage events explains a stale pipeline by its stale upstream.

No ``upstream:`` in the spec: the official OpenLineage client posts two
Airflow-like DAG runs to the real exporter, the source writing a table two
minutes ago and the consumer reading it a minute later; a real Prometheus
scrapes ``pipeline_upstream_info`` (learned) and the freshness gauges, and
the diagnosis of the consumer's ``PipelineDataStale`` names the source.
"""

from __future__ import annotations

import datetime
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.transport.http import HttpConfig, HttpTransport
from recovery_evidence import EvidenceExporter, evidence_stack, wait_for

from receiver.diagnosis import diagnose, queries
from receiver.diagnosis.prometheus import PrometheusAPI
from receiver.models import Alert

pytestmark = pytest.mark.slow

SPEC = """
pipelines:
  l_source: {max_staleness: 30s}
  l_fed: {sla: 10s, max_staleness: 30s}
"""
TABLE = ("postgres://warehouse:5432", "public.orders")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EvidenceExporter, str]]:
    yield from (
        (exporter, server.url)
        for exporter, server in evidence_stack(tmp_path_factory.mktemp("learned"), lambda _: SPEC)
    )


def emit(url: str, job: str, started: float, ended: float, **io: list[object]) -> None:
    client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=url, retry={"total": 0})))
    run_id = str(uuid.uuid4())
    for state, at in ((RunState.START, started), (RunState.COMPLETE, ended)):
        client.emit(
            RunEvent(
                eventType=state,
                eventTime=datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(),
                run=Run(runId=run_id),
                job=Job(namespace="airflow://prod", name=job),
                producer="https://github.com/apache/airflow",
                **io,  # type: ignore[arg-type]
            )
        )


@pytest.fixture
async def prom(stack: tuple[EvidenceExporter, str]) -> AsyncIterator[PrometheusAPI]:
    async with aiohttp.ClientSession() as session:
        yield PrometheusAPI(stack[1], session)


async def test_a_learned_stale_upstream_explains_a_stale_pipeline(
    stack: tuple[EvidenceExporter, str], prom: PrometheusAPI
) -> None:
    exporter = stack[0]
    url = f"http://{exporter.address}"
    now = time.time()
    emit(url, "l_source", now - 130, now - 120, outputs=[OutputDataset(*TABLE)])
    emit(
        url,
        "l_fed",
        now - 65,
        now - 60,
        inputs=[InputDataset(*TABLE)],
        outputs=[OutputDataset("s3://lake", "orders_daily")],
    )
    await wait_for(prom, queries.upstreams("l_fed"))
    await wait_for(prom, queries.staleness("l_source"))
    alert = Alert(
        status="firing",
        labels={"alertname": "PipelineDataStale", "pipeline": "l_fed", "category": "data"},
        annotations={},
        starts_at=datetime.datetime.now(datetime.UTC),
        ends_at=None,
        fingerprint="fl_fed",
        generator_url="",
    )
    d = await diagnose(alert, exporter.spec.pipeline("l_fed"), prom)
    assert (d.cause, d.handler) == ("upstream_stale", "check_data_integrity"), d
    assert re.search(r"l_source \(1[23]\ds\)", d.summary), d.summary
    upstream = [e for e in d.evidence if "pipeline_upstream_info" in e.query]
    assert upstream[0].result[0]["labels"] == {"upstream": "l_source"}
