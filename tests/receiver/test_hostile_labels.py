"""Hostile alert labels change nothing they must not: PromQL, argv, URL hosts, paths.

Every value below goes through the whole path (diagnosis against a real
Prometheus, then recovery running a real command and a real HTTP request)
as the pipeline label, the alert name, an extra label and the generatorURL.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import promql_parser
import pytest
from aiohttp import web
from ledger_fake import InMemoryLedger
from recovery_evidence import EvidenceExporter, evidence_stack, wait_for

from pipemedic.stack import PrometheusServer
from receiver.diagnosis import diagnose, queries
from receiver.diagnosis.prometheus import PrometheusAPI
from receiver.models import Alert, Diagnosis, Incident
from receiver.recovery import Recoverer, RecoveryConfig
from receiver.worker.stages import RecoveryRequest
from rules.spec import parse_spec

HOSTILE = [
    "; rm -rf /",
    "$(id)",
    "`id`",
    "../../etc/passwd",
    "http://evil.example",
    'x"} or pipeline_errors_total{pipeline=~".+',
    "a\nb",
]


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EvidenceExporter, PrometheusServer]]:
    yield from evidence_stack(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def trap(aiohttp_server: Callable[..., Any]) -> AsyncIterator[tuple[list[str], int]]:
    """A local server that must never be asked anything (stands in for evil.example)."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(str(request.rel_url))
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield hits, server.port


def hostile_alert(value: str, trap_port: int) -> Alert:
    return Alert(
        status="firing",
        labels={
            "alertname": value,
            "pipeline": value,
            "category": "connectivity",
            "url": f"http://127.0.0.1:{trap_port}/via-label",
            "argv": value,
        },
        annotations={"runbook_url": f"http://127.0.0.1:{trap_port}/via-annotation"},
        starts_at=datetime.now(UTC),
        ends_at=None,
        fingerprint="hostile",
        generator_url=f"http://127.0.0.1:{trap_port}/graph?g0.expr=up",
    )


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_labels_reach_promql_only_as_escaped_literals(
    value: str,
    stack: tuple[EvidenceExporter, PrometheusServer],
    session: aiohttp.ClientSession,
    trap: tuple[list[str], int],
) -> None:
    exporter, server = stack
    prom = PrometheusAPI(server.url, session)
    exporter.healthy("victim")
    exporter.break_("victim", "connectivity", "timeout")
    await wait_for(prom, queries.errors_by_reason("victim", "15m"))
    a = hostile_alert(value, trap[1])
    d = await diagnose(a, parse_spec("{}").pipeline(value), prom)
    # another pipeline's errors are there, and a broken escape would pick them up
    assert (d.cause, d.error) == ("unknown", None)
    assert d.evidence
    for item in d.evidence:
        parsed = repr(promql_parser.parse(item.query))
        assert parsed, item.query
        assert item.result == [] or all(
            r["labels"].get("pipeline") in (None, value) for r in item.result
        )
    assert trap[0] == []  # the generatorURL host is never asked


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_labels_reach_commands_only_as_environment_data(
    value: str,
    stack: tuple[EvidenceExporter, PrometheusServer],
    session: aiohttp.ClientSession,
    trap: tuple[list[str], int],
    tmp_path: Path,
) -> None:
    out = tmp_path / "seen.json"
    script = (
        "import json, os, sys; json.dump({'argv': sys.argv[1:], 'cwd': os.getcwd(), "
        "'env': {k: v for k, v in os.environ.items() if k.startswith('PIPEMEDIC_')}}, "
        "open(sys.argv[1], 'w'))"
    )
    argv = [sys.executable, "-c", script, str(out), "--fixed"]
    spec = parse_spec(
        json.dumps(
            {
                "defaults": {
                    "actions": {
                        "retry_with_backoff": {"command": {"argv": argv, "cwd": str(tmp_path)}},
                        "rollback_to_checkpoint": {
                            "http": {
                                "url": f"http://127.0.0.1:{trap[1]}/never",
                                "body_labels": ["pipeline"],
                            }
                        },
                    }
                }
            }
        )
    )
    _, server = stack
    prom = PrometheusAPI(server.url, session)
    a = hostile_alert(value, trap[1])
    diagnosis = Diagnosis("network_timeout", "check_infrastructure", "test")
    recoverer = Recoverer(
        RecoveryConfig(verify_deadline_seconds=0), InMemoryLedger(), prom, session
    )

    async def firing() -> bool:
        return True

    incident = Incident(5, value, "recovering", "SEV2", datetime.now(UTC))
    result = await recoverer.recover(
        RecoveryRequest(incident, a, diagnosis, spec.pipeline(value), firing)
    )
    assert result.outcome == "recovered", result.reason
    json.dumps([e.detail for e in result.entries])  # every detail is storable as JSON
    seen = json.loads(out.read_text())
    assert seen["argv"] == [str(out), "--fixed"]  # argv exactly as configured
    assert Path(seen["cwd"]) == tmp_path
    assert seen["env"]["PIPEMEDIC_PIPELINE"] == value  # literal, never evaluated
    assert seen["env"]["PIPEMEDIC_ALERTNAME"] == value
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seen.json"]
    assert trap[0] == []


async def test_hostile_labels_never_choose_an_http_host(
    stack: tuple[EvidenceExporter, PrometheusServer],
    session: aiohttp.ClientSession,
    trap: tuple[list[str], int],
    aiohttp_server: Callable[..., Any],
) -> None:
    bodies: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append((request.host, request.path, await request.json()))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/retry", handle)
    good = await aiohttp_server(app, host="127.0.0.1")
    spec = parse_spec(
        f"defaults:\n  actions:\n    retry_with_backoff:\n"
        f'      http: {{url: "http://127.0.0.1:{good.port}/retry", body_labels: [pipeline]}}\n'
    )
    _, server = stack
    prom = PrometheusAPI(server.url, session)
    for n, value in enumerate(HOSTILE):
        recoverer = Recoverer(
            RecoveryConfig(verify_deadline_seconds=0), InMemoryLedger(), prom, session
        )

        async def firing() -> bool:
            return True

        result = await recoverer.recover(
            RecoveryRequest(
                Incident(n, value, "recovering", "SEV2", datetime.now(UTC)),
                hostile_alert(value, trap[1]),
                Diagnosis("network_timeout", "check_infrastructure", "test"),
                spec.pipeline(value),
                firing,
            )
        )
        assert result.outcome == "recovered"
    assert [(h, p) for h, p, _ in bodies] == [(f"127.0.0.1:{good.port}", "/retry")] * len(HOSTILE)
    assert [b["labels"] for _, _, b in bodies] == [{"pipeline": v} for v in HOSTILE]
    assert trap[0] == []
