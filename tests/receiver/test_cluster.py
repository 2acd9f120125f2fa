"""Two Alertmanager peers, each routed to its own receiver replica, one PostgreSQL.

Both peers get the alert (as Prometheus sends to every Alertmanager) and,
with receivers of different names, both deliver it: each replica ingests
the same notification. The replicas are real processes (``create_app`` with
a fixed diagnosis as seam) sharing one database; the recovery action is an
HTTP call to a local target that counts its calls. Verification asks a real
(empty) Prometheus, so the condition clears after the first action.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from core_helpers import ReceiverProcess, until

from pipemedic.stack import AlertmanagerServer, PrometheusServer, free_port
from receiver.models import Incident
from receiver.store.postgres.store import RETAKEN_EVENT, PostgresStore

pytestmark = pytest.mark.slow

_REPLICA = textwrap.dedent(
    """
    import sys
    from aiohttp import web
    from receiver.app import create_app
    from receiver.config import load_config
    from receiver.models import Diagnosis

    async def diagnose(alert, spec):
        return Diagnosis(cause="network_timeout", handler="cluster_test", summary="timeout")

    async def firing(alert):
        return None   # cannot tell: recovery goes ahead, verification decides

    config = load_config(sys.argv[1])
    app = create_app(config, diagnose=diagnose, firing=firing, worker_id=sys.argv[2],
                     drain_seconds=1.0)
    host, port = config.listen.rsplit(":", 1)
    web.run_app(app, host=host, port=int(port), print=None)
    """
)


class Target:
    """The pipeline's restart endpoint: counts calls; can hang the first one."""

    def __init__(self, hang_first: bool = False) -> None:
        self.arrived = 0
        self.completed = 0
        self.hang_first = hang_first
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.arrived += 1
        if self.hang_first and self.arrived == 1:
            await self.release.wait()
            return web.json_response({"ok": False}, status=503)
        self.completed += 1
        return web.json_response({"ok": True})


class Replica(ReceiverProcess):
    """A replica whose diagnosis is fixed (``_REPLICA``); ``kill`` is a crash."""

    def prepare(self) -> None:
        self.config_path.write_text(self.config.replace("LISTEN", self.address))

    def argv(self) -> list[str]:
        return [sys.executable, "-c", _REPLICA, str(self.config_path), self.name]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)


@pytest.fixture
def spawned() -> Iterator[list[Replica]]:
    replicas: list[Replica] = []
    yield replicas
    for replica in replicas:
        replica.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _notifications(session: aiohttp.ClientSession, replica: Replica) -> float:
    async with session.get(f"{replica.url}/metrics") as resp:
        text = await resp.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("pipemedic_receiver_notifications_total")
    )


async def _cluster(
    tmp_path: Path,
    dsn: str,
    target: TestServer,
    prometheus: PrometheusServer,
    alertmanager_server: Callable[..., AlertmanagerServer],
    spawned: list[Replica],
    lease_seconds: float,
) -> tuple[list[Replica], list[AlertmanagerServer]]:
    spec = tmp_path / "pipelines.yml"
    spec.write_text(
        textwrap.dedent(
            f"""
            pipelines:
              etl_orders:
                actions:
                  retry_with_backoff:
                    http:
                      url: "http://127.0.0.1:{target.port}/restart"
            """
        )
    )
    config = textwrap.dedent(
        f"""
        listen: LISTEN
        store: "{dsn}"
        spec: "{spec}"
        prometheus_url: "{prometheus.url}"
        workers: {{concurrency: 2, lease_seconds: {lease_seconds}, poll_interval_seconds: 0.1}}
        recovery:
          lease_seconds: {lease_seconds}
          verify_interval_seconds: 0.2
          verify_deadline_seconds: 10
          backoff_base_seconds: 0.1
        """
    )
    replicas = [Replica(f"replica-{n}", tmp_path, config) for n in ("a", "b")]
    for replica in replicas:
        spawned.append(replica)
        replica.start()

    def am_config(replica: Replica) -> str:
        return textwrap.dedent(
            f"""
            route:
              receiver: pipemedic-{replica.name}
              group_by: [pipeline]
              group_wait: 0s
              group_interval: 1s
              repeat_interval: 1h
            receivers:
              - name: pipemedic-{replica.name}
                webhook_configs:
                  - url: {replica.url}/alerts
                    send_resolved: true
            """
        )

    first = alertmanager_server(am_config(replicas[0]), cluster_port=free_port())
    second = alertmanager_server(
        am_config(replicas[1]), cluster_port=free_port(), peers=[first.cluster_address]
    )
    return replicas, [first, second]


async def _fire(session: aiohttp.ClientSession, peers: list[AlertmanagerServer]) -> None:
    alert = {
        "labels": {
            "alertname": "PipelineHighErrorRate",
            "pipeline": "etl_orders",
            "severity": "critical",
            "sev": "SEV2",
            "category": "connectivity",
            "team": "data-platform",
        },
        "annotations": {"summary": "etl_orders fails"},
        "startsAt": datetime.now(UTC).isoformat(),
    }
    for peer in peers:  # Prometheus sends every alert to every Alertmanager
        async with session.post(f"{peer.url}/api/v2/alerts", json=[alert]) as resp:
            assert resp.status == 200, await resp.text()


async def _drained(store: PostgresStore) -> bool:
    return await store.queue_depth() == 0


async def _incidents(store: PostgresStore) -> list[Incident]:
    return await store.list_incidents(pipeline="etl_orders")


async def test_a_fault_gives_one_incident_and_each_action_runs_once(
    tmp_path: Path,
    postgres_server: Callable[[], str],
    aiohttp_server: Callable[..., Any],
    prometheus_server: Callable[..., PrometheusServer],
    alertmanager_server: Callable[..., AlertmanagerServer],
    spawned: list[Replica],
    session: aiohttp.ClientSession,
) -> None:
    dsn = postgres_server()
    target = Target()
    app = web.Application()
    app.router.add_post("/restart", target.handle)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    replicas, peers = await _cluster(
        tmp_path, dsn, server, prometheus_server(), alertmanager_server, spawned, 30
    )
    store = await PostgresStore.open(dsn)
    try:
        await _fire(session, peers)
        # Both peers delivered, each to its own replica.
        for replica in replicas:
            await until(
                lambda r=replica: _notifications(session, r), f"a notification at {replica.name}"
            )

        async def recovered() -> Incident | None:
            found = await _incidents(store)
            done = [i for i in found if any(e.event == "recovered" for e in i.timeline)]
            return done[0] if done else None

        incident = await until(recovered, "the incident recovered")
        await until(lambda: _drained(store), "the queue drained")
        assert len(await _incidents(store)) == 1
        assert (target.arrived, target.completed) == (1, 1)
        real = [a for a in incident.actions if a.outcome != "dry_run"]
        assert [(a.step, a.outcome) for a in real] == [("retry_with_backoff#1", "success")]
    finally:
        await store.close()
    for replica in replicas:
        assert replica.proc is not None and replica.proc.poll() is None, replica.log_tail()


async def test_killing_a_replica_mid_action_leaves_the_other_to_finish(
    tmp_path: Path,
    postgres_server: Callable[[], str],
    aiohttp_server: Callable[..., Any],
    prometheus_server: Callable[..., PrometheusServer],
    alertmanager_server: Callable[..., AlertmanagerServer],
    spawned: list[Replica],
    session: aiohttp.ClientSession,
) -> None:
    dsn = postgres_server()
    target = Target(hang_first=True)
    app = web.Application()
    app.router.add_post("/restart", target.handle)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    replicas, peers = await _cluster(
        tmp_path, dsn, server, prometheus_server(), alertmanager_server, spawned, 3
    )
    store = await PostgresStore.open(dsn)
    try:
        await _fire(session, peers)
        await until(lambda: target.arrived >= 1, "the first action call")

        async def running_worker() -> str | None:
            found = await _incidents(store)
            running = [a.worker for i in found for a in i.actions if a.outcome == "running"]
            return running[0] if running else None

        dead_name = await until(running_worker, "a running step in the ledger")
        (dead,) = [r for r in replicas if r.name == dead_name]
        (survivor,) = [r for r in replicas if r is not dead]
        dead.kill()

        async def finished() -> Incident | None:
            found = await _incidents(store)
            done = [i for i in found if any(e.event == "recovered" for e in i.timeline)]
            return done[0] if done else None

        incident = await until(finished, f"{survivor.name} finished the incident")
        assert len(await _incidents(store)) == 1
        assert target.completed == 1  # the dead replica's call never completed
        retaken = [e.detail for e in incident.timeline if e.event == RETAKEN_EVENT]
        assert retaken, [e.event for e in incident.timeline]
        assert retaken[0]["from_worker"] == dead.name
        assert retaken[0]["to_worker"] == survivor.name
        succeeded = [a for a in incident.actions if a.outcome == "success"]
        assert [a.worker for a in succeeded] == [survivor.name]
    finally:
        target.release.set()
        await store.close()
    assert survivor.proc is not None and survivor.proc.poll() is None, survivor.log_tail()
