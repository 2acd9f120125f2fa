"""An alert storm of one failing source and twenty downstream pipelines is one incident.

Real servers end to end: the project's exporter (spec ``upstream: [src]`` on
each downstream pipeline, so it exports ``pipeline_upstream_info``), a real
Prometheus scraping it and evaluating two alerting rules, a real Alertmanager
grouping by pipeline, and the receiver with its real diagnosis and firing
check (its recovery is a counting seam: which incidents recover is the
question). The source fails first; once its alert fires in Prometheus the
twenty downstream pipelines go stale. The receiver opens one incident, on the
source, recovers it once, lists the twenty as its blast radius, and resolves it
only when the downstream alerts resolve too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from core_helpers import until
from lineage_stack import start_lineage_stack
from recovery_evidence import EvidenceExporter, wait_for

from pipemedic.stack import AlertmanagerServer, PrometheusServer
from receiver.diagnosis.prometheus import PrometheusAPI

pytestmark = pytest.mark.slow

DOWNSTREAM = [f"d_{i:02d}" for i in range(20)]
SPEC = (
    "pipelines:\n  src: {impact: some, team: ingest}\n"
    + "".join(f"  {n}: {{upstream: [src], impact: many, team: analytics}}\n" for n in DOWNSTREAM)
    + "teams:\n  ingest: {commander: ana}\n  analytics: {commander: bo}\n"
)
RULES = """
groups:
  - name: lineage-e2e
    interval: 500ms
    rules:
      - alert: PipelineHighErrorRate
        expr: sum by (pipeline) (increase(pipeline_errors_total[10s])) > 0
        labels: {severity: critical, category: data}
      - alert: PipelineDataStale
        expr: time() - max by (pipeline) (pipeline_last_update_timestamp_seconds) > 300
        labels: {severity: warning, category: data}
"""


@pytest.fixture
def exporter() -> Iterator[EvidenceExporter]:
    found = EvidenceExporter(lambda _: SPEC).start()
    yield found
    found.stop()


async def test_one_failing_source_with_twenty_downstream_is_one_incident(
    tmp_path: Path,
    exporter: EvidenceExporter,
    prometheus_server: Callable[..., PrometheusServer],
    alertmanager_server: Callable[..., AlertmanagerServer],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    now = time.time()
    exporter.send({"pipeline": "src", "event": "data_updated", "timestamp": now - 10})
    (tmp_path / "lineage.rules.yml").write_text(RULES)
    stack = await start_lineage_stack(
        tmp_path,
        exporter,
        f"{tmp_path}/lineage.rules.yml",
        prometheus_server,
        alertmanager_server,
        aiohttp_server,
    )
    receiver, server, recover = stack.receiver, stack.prometheus, stack.recover
    async with aiohttp.ClientSession() as http:
        prom = PrometheusAPI(server.url, http)
        edges = await wait_for(prom, "pipeline_upstream_info", lambda rows: len(rows) == 20)
        assert {r["metric"]["upstream"] for r in edges} == {"src"}

        # the source fails; its alert fires in Prometheus before anything downstream
        exporter.break_("src", "data", "schema_change")
        await wait_for(prom, 'ALERTS{pipeline="src", alertstate="firing"}', timeout=60)
        # then the twenty downstream pipelines report data older than the rule allows
        old = time.time() - 900
        exporter.send(
            *({"pipeline": n, "event": "data_updated", "timestamp": old} for n in DOWNSTREAM)
        )

        async def incidents() -> list[dict[str, Any]]:
            async with http.get(receiver.make_url("/incidents?limit=100")) as r:
                return list((await r.json())["incidents"])

        async def storm_joined() -> list[dict[str, Any]] | None:
            found = await incidents()
            joined = sum(len(i.get("blast_radius") or []) for i in found)
            return found if joined == 20 and recover.calls else None

        try:
            found = await until(storm_joined, "the twenty downstream alerts joining")
        except AssertionError as exc:
            seen = [(i["pipeline"], i["state"], len(i["blast_radius"])) for i in await incidents()]
            raise AssertionError(f"{exc}; incidents: {seen}; recoveries {recover.calls}") from None
        assert [i["pipeline"] for i in found] == ["src"], found  # one incident, on the source
        incident = found[0]
        assert sorted(r["pipeline"] for r in incident["blast_radius"]) == DOWNSTREAM
        assert {r["team"] for r in incident["blast_radius"]} == {"analytics"}
        assert len(recover.calls) == 1 and recover.calls[0][0] == incident["id"]  # upstream only
        causes = {
            t["detail"]["cause"] for t in incident["timeline"] if t["event"] == "downstream_impact"
        }
        assert causes == {"upstream_failure"}
        first = next(t for t in incident["timeline"] if t["event"] == "sev_set")
        assert incident["sev"] <= first["detail"]["sev"]  # the downstream impact only raises it

        # the source is fixed; the downstream pipelines refresh their data
        exporter.fix("src")
        fresh = time.time()
        exporter.send(
            *({"pipeline": n, "event": "data_updated", "timestamp": fresh} for n in DOWNSTREAM)
        )

        async def resolved() -> dict[str, Any] | None:
            async with http.get(receiver.make_url(f"/incidents/{incident['id']}")) as r:
                doc: dict[str, Any] = await r.json()
            return doc if doc["state"] == "resolved" else None

        done = await until(resolved, "the incident resolving with its downstream alerts", 120)
        assert all(r["alerts"]["firing"] == 0 for r in done["blast_radius"])
        async with http.get(receiver.make_url(f"/incidents/{incident['id']}/postmortem")) as r:
            text = await r.text()
        assert "## Blast radius" in text and "20 downstream pipelines alerted" in text
        assert [i["pipeline"] for i in await incidents()] == ["src"]
        assert len(recover.calls) == 1
