"""The worker pool: its bounds, its leases, giving up, takeovers and draining on SIGTERM.

Stores are real (SQLite, and PostgreSQL where replicas matter); diagnosis
and recovery are plain seams except where the real ``Recoverer`` is the
point (a dead worker's running step). The SIGTERM test runs a real
``pipemedic receiver`` process whose recovery action is an HTTP call to a
local server that holds its answer until the test lets it go.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from core_helpers import (
    FakeDiagnose,
    FakeFiring,
    FakeRecover,
    FakeResult,
    alert_doc,
    notification_doc,
    until,
)

from pipemedic.stack import PrometheusServer, free_port
from receiver.diagnosis.prometheus import PrometheusAPI
from receiver.incidents.lifecycle import Lifecycle
from receiver.metrics import ReceiverMetrics
from receiver.models import ActionRecord, Alert, Diagnosis, Incident, Notification
from receiver.recovery import Recoverer, RecoveryConfig
from receiver.store import Store, open_store
from receiver.store.sqlite.store import SqliteStore
from receiver.worker.pool import WorkerPool
from receiver.worker.stages import RecoveryRequest
from rules.spec import PipelineSpec, Spec, parse_spec

SPEC = parse_spec("pipelines: {}\n", "spec.yml")
Opener = Callable[[], Awaitable[Store]]


# fixtures and helpers -------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
async def replica(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Return ``open()`` for a replica's store on one shared database.

    SQLite belongs to one process, so its "replicas" share one store object;
    PostgreSQL replicas each get their own store (their own pools), like processes.
    """
    opened: list[Store] = []
    if request.param == "sqlite":
        shared = await SqliteStore.open(tmp_path / "receiver.db")
        opened.append(shared)

        async def open_sqlite() -> Store:
            return shared

        yield open_sqlite
    else:
        dsn = request.getfixturevalue("postgres_server")()

        async def open_postgres() -> Store:
            store = await open_store(dsn)
            opened.append(store)
            return store

        yield open_postgres
    for store in opened:
        await store.close()


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(tmp_path / "receiver.db")
    yield store
    await store.close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """An empty real Prometheus: verification finds no symptom there."""
    with PrometheusServer("global: {}\n", workdir=tmp_path_factory.mktemp("worker-prom")) as p:
        yield p


def notification(*alerts: dict[str, Any]) -> Notification:
    return Notification.from_json(notification_doc(*alerts))


@dataclass
class GatedRecover:
    """A recovery stage that holds every call until ``gate`` opens; counts who is inside."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    calls: list[str] = field(default_factory=list)
    active: dict[str, int] = field(default_factory=dict)
    most: dict[str, int] = field(default_factory=dict)
    most_total: int = 0

    async def __call__(self, request: RecoveryRequest) -> FakeResult:
        await self.hold(request.incident.pipeline)
        # skipped, not recovered: the incident stays in work, so every joining alert acts
        return FakeResult("skipped", "retry_with_backoff", (), "gated")

    async def diagnose(self, alert: Alert, spec: PipelineSpec) -> Diagnosis:
        """The same gate as a diagnosis stage (the part the ``concurrency`` bound covers)."""
        await self.hold(alert.pipeline)
        return Diagnosis("network_timeout", "gated", "gated")

    async def hold(self, p: str) -> None:
        self.calls.append(p)
        self.active[p] = self.active.get(p, 0) + 1
        self.most[p] = max(self.most.get(p, 0), self.active[p])
        self.most_total = max(self.most_total, self.total)
        try:
            await self.gate.wait()
        finally:
            self.active[p] -= 1

    @property
    def total(self) -> int:
        return sum(self.active.values())


def pool(
    store: Store,
    recover: Any,
    *,
    worker_id: str = "w1",
    diagnose: Any = None,
    metrics: ReceiverMetrics | None = None,
    spec: Spec = SPEC,
    **kwargs: Any,
) -> WorkerPool:
    settings: dict[str, Any] = {"concurrency": 4, "lease_seconds": 60.0, "poll_interval": 0.05}
    settings.update(kwargs)
    return WorkerPool(
        store,
        Lifecycle(store, spec, metrics=metrics),
        diagnose=diagnose or FakeDiagnose(),
        recover=recover,
        firing=FakeFiring(None),
        metrics=metrics,
        worker_id=worker_id,
        **settings,
    )


# bounds ---------------------------------------------------------------------------
async def test_no_more_events_run_at_once_than_the_concurrency_bound(sqlite: SqliteStore) -> None:
    recover = GatedRecover()  # gates the diagnosis: actions have slots of their own
    workers = pool(sqlite, FakeRecover(), concurrency=2, batch_size=1, diagnose=recover.diagnose)
    await sqlite.ingest(notification(*(alert_doc(f"etl_{i}") for i in range(6))))
    await workers.start()
    try:
        await until(lambda: recover.total == 2, "two events in flight")
        await asyncio.sleep(0.3)  # room for a third to start, were the bound not kept
        assert recover.total == 2
        recover.gate.set()
        await workers.run_until_idle()
    finally:
        await workers.stop()
    assert sorted(recover.calls) == [f"etl_{i}" for i in range(6)]
    assert recover.most_total == 2


async def test_a_slot_runs_a_batch_of_pipelines_and_frees_when_all_left_diagnosis(
    sqlite: SqliteStore,
) -> None:
    """One slot, batches of three: three pipelines diagnose together, the next three after."""
    recover = GatedRecover()
    workers = pool(sqlite, FakeRecover(), concurrency=1, batch_size=3, diagnose=recover.diagnose)
    await sqlite.ingest(notification(*(alert_doc(f"etl_{i}") for i in range(7))))
    await workers.start()
    try:
        await until(lambda: recover.total == 3, "a batch of three in flight")
        await asyncio.sleep(0.3)  # room for a fourth to start, were the bound not kept
        assert recover.total == 3 and sorted(recover.active) == ["etl_0", "etl_1", "etl_2"]
        recover.gate.set()
        await workers.run_until_idle()
    finally:
        await workers.stop()
    assert sorted(recover.calls) == sorted(f"etl_{i}" for i in range(7))
    assert recover.most_total == 3


async def test_work_for_one_pipeline_is_serialised(sqlite: SqliteStore) -> None:
    recover = GatedRecover()
    workers = pool(sqlite, recover, concurrency=4)
    orders = [alert_doc("etl_orders", name=f"Alert{i}", fingerprint=f"o{i}") for i in range(4)]
    # etl_orders' backlog first: its waiting events hold no slot, so etl_users still runs
    await sqlite.ingest(notification(*orders, alert_doc("etl_users", fingerprint="u1")))
    await workers.start()
    try:
        # Another pipeline runs alongside, so the pool is not simply idle.
        await until(lambda: recover.active.get("etl_users") == 1, "etl_users in flight")
        await until(lambda: recover.active.get("etl_orders") == 1, "etl_orders in flight")
        await asyncio.sleep(0.3)  # room for a second etl_orders event, were it not serialised
        recover.gate.set()
        await workers.run_until_idle()
    finally:
        await workers.stop()
    assert recover.calls.count("etl_orders") == 4  # every alert joined and was worked on
    assert recover.most == {"etl_orders": 1, "etl_users": 1}


@dataclass
class SteppedRecover:
    """A recovery stage that runs one call at a time, each when the test lets it."""

    calls: list[str] = field(default_factory=list)
    go: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(0))

    async def __call__(self, request: RecoveryRequest) -> FakeResult:
        self.calls.append(request.incident.pipeline)
        await self.go.acquire()
        return FakeResult("skipped", "retry_with_backoff", (), "stepped")  # stays in work


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_a_backlog_on_one_pipeline_delays_another_by_at_most_one_event(
    sqlite: SqliteStore, concurrency: int
) -> None:
    recover = SteppedRecover()
    workers = pool(sqlite, recover, concurrency=concurrency)
    backlog = [alert_doc("etl_orders", name=f"Alert{i}", fingerprint=f"o{i}") for i in range(8)]
    # One notification: the backlog is older in the queue than etl_users' alert.
    await sqlite.ingest(notification(*backlog, alert_doc("etl_users", fingerprint="u1")))
    await workers.start()
    try:
        await until(lambda: recover.calls, "the first event in its slot")
        # etl_orders' event holds an action slot; its diagnosis slot (even the only one)
        # serves etl_users meanwhile
        await until(lambda: "etl_users" in recover.calls, "etl_users alongside")
        assert recover.calls[:2] == ["etl_orders", "etl_users"]
        for _ in range(20):
            recover.go.release()
        await workers.run_until_idle()
    finally:
        for _ in range(20):
            recover.go.release()
        await workers.stop()
    assert sorted(recover.calls) == ["etl_orders"] * 8 + ["etl_users"]


async def test_an_event_that_keeps_failing_is_given_up_and_says_so(
    sqlite: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(FakeDiagnose):
        async def __call__(self, alert: Alert, spec: PipelineSpec) -> Diagnosis:
            self.calls.append(alert)
            raise RuntimeError("diagnosis exploded")

    diagnose = Broken()
    metrics = ReceiverMetrics()
    workers = pool(
        sqlite,
        GatedRecover(),
        diagnose=diagnose,
        metrics=metrics,
        max_attempts=2,
        lease_seconds=0.2,
    )
    await sqlite.ingest(notification(alert_doc("etl_orders")))
    caplog.set_level(logging.ERROR, logger="receiver.worker.pool")
    await workers.start()
    try:
        await workers.run_until_idle()
    finally:
        await workers.stop()

    assert len(diagnose.calls) == 2  # two attempts, then no third
    assert await sqlite.event_counts() == {"pending": 0, "processed": 1}

    def processed(result: str) -> float | None:
        return metrics.registry.get_sample_value(
            "pipemedic_receiver_events_processed_total", {"result": result}
        )

    assert (processed("error"), processed("abandoned")) == (2.0, 1.0)
    assert any("giving up on event" in r.getMessage() for r in caplog.records)
    incident = await sqlite.open_incident("etl_orders")
    assert incident is not None
    (note,) = [t.detail for t in incident.timeline if t.event == "event_abandoned"]
    assert (note["alert"], note["attempts"]) == ("PipelineDown", 2)


# leases ---------------------------------------------------------------------------
async def test_work_that_outlives_its_lease_is_not_claimed_by_another_worker(
    replica: Opener,
) -> None:
    first, second = await replica(), await replica()
    recover = GatedRecover()
    diagnose = FakeDiagnose()
    # replica-a does not poll again meanwhile: only its heartbeat may keep the lease.
    a = pool(first, recover, worker_id="replica-a", diagnose=diagnose, lease_seconds=0.3)
    a.poll_interval = 3600.0
    b = pool(second, recover, worker_id="replica-b", diagnose=diagnose, lease_seconds=0.3)
    await first.ingest(notification(alert_doc("etl_orders")))
    await a.start()
    try:
        await until(lambda: recover.calls, "replica-a working on the event")
        await b.start()
        await asyncio.sleep(2.0)  # several leases pass while replica-a is still at work
        recover.gate.set()
        await a.run_until_idle()
        await b.run_until_idle()
    finally:
        await b.stop()
        await a.stop()
    assert recover.calls == ["etl_orders"]  # worked on once
    assert len(diagnose.calls) == 1


async def test_events_queued_behind_their_pipeline_stay_leased_until_run(
    replica: Opener,
) -> None:
    first, second = await replica(), await replica()
    recover = GatedRecover()
    diagnose = FakeDiagnose()
    # replica-a runs one event at a time; the second waits in its queue, not in a slot.
    a = pool(first, recover, worker_id="replica-a", diagnose=diagnose, lease_seconds=0.3)
    a.concurrency, a.poll_interval = 1, 3600.0
    b = pool(second, recover, worker_id="replica-b", diagnose=diagnose, lease_seconds=0.3)
    await first.ingest(notification(alert_doc("etl_orders", fingerprint="o1")))
    await first.ingest(notification(alert_doc("etl_orders", name="Other", fingerprint="o2")))
    await a.start()
    try:
        await until(lambda: recover.calls, "replica-a working on the first event")
        await until(lambda: len(a._queue) == 2, "replica-a holding the second event")
        await b.start()
        await asyncio.sleep(2.0)  # several leases pass while the second event waits
        recover.gate.set()
        await a.run_until_idle()
        await b.run_until_idle()
    finally:
        await b.stop()
        await a.stop()
    assert len(diagnose.calls) == 2  # each event worked on once, by replica-a


async def test_stopping_hands_back_claimed_events_it_did_not_start(replica: Opener) -> None:
    first, second = await replica(), await replica()
    recover = GatedRecover()
    a = pool(first, recover, worker_id="replica-a", concurrency=1, lease_seconds=600)
    await first.ingest(notification(alert_doc("etl_orders", fingerprint="o1")))
    await first.ingest(notification(alert_doc("etl_orders", name="Other", fingerprint="o2")))
    await a.start()
    await until(lambda: recover.calls, "replica-a working on the first event")
    await until(lambda: len(a._queue) == 2, "replica-a holding the second event")
    stopping = asyncio.create_task(a.stop(drain_seconds=60))
    await until(lambda: len(a._queue) != 2, "the queued event handed back")
    recover.gate.set()
    await stopping
    # Its lease was ten minutes: only a hand-back lets another replica run it now.
    b = pool(second, recover, worker_id="replica-b")
    await b.start()
    try:
        await b.run_until_idle()
    finally:
        await b.stop()
    assert recover.calls == ["etl_orders", "etl_orders"]


async def test_a_dead_workers_running_step_is_taken_over_as_the_same_step(
    replica: Opener,
    prometheus: PrometheusServer,
    aiohttp_server: Callable[..., Any],
) -> None:
    store = await replica()
    calls: list[str] = []

    async def restart(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/restart", restart)
    target = await aiohttp_server(app, host="127.0.0.1")
    spec = parse_spec(
        textwrap.dedent(
            f"""
            pipelines:
              etl_orders:
                actions:
                  retry_with_backoff: {{http: {{url: "http://127.0.0.1:{target.port}/restart"}}}}
            """
        ),
        "spec.yml",
    )
    lease = 1.5
    now = datetime.now(UTC)
    firing = alert_doc("etl_orders", starts=now - timedelta(minutes=2))
    # The dead replica had correlated the alert, begun step #1 and died mid-action.
    incident = await store.create_incident(
        Incident(
            id=0,
            pipeline="etl_orders",
            state="recovering",
            sev="SEV2",
            opened_at=now - timedelta(minutes=2),
            alerts=[Alert.from_json(firing).to_json()],
        )
    )
    await store.ingest(notification(firing))
    assert await store.claim_events("dead-replica", 10, lease_seconds=0.2)
    dead_step = ActionRecord(
        incident_id=incident.id,
        step="retry_with_backoff#1",
        pipeline="etl_orders",
        strategy="retry_with_backoff",
        action="http",
        target=f"http POST http://127.0.0.1:{target.port}/restart",
        started_at=datetime.now(UTC),
        worker="dead-replica",
    )
    assert await store.begin_action(dead_step, lease_seconds=lease)

    config = RecoveryConfig(
        lease_seconds=lease,
        verify_interval_seconds=0.2,
        verify_deadline_seconds=20,
        verify_window_seconds=2,
    )
    async with aiohttp.ClientSession() as session:
        prom = PrometheusAPI(prometheus.url, session)
        recoverer = Recoverer(config, store, prom, session, worker_id="survivor")
        workers = pool(store, recoverer.recover, worker_id="survivor", spec=spec)
        await workers.start()
        try:
            await workers.run_until_idle(deadline_seconds=60)
        finally:
            await workers.stop()

    got = await store.get_incident(incident.id)
    assert got is not None
    names = [t.event for t in got.timeline]
    assert "recovered" in names, names
    assert calls == ["/restart"]  # the step ran once, by the survivor
    assert [(a.step, a.worker, a.outcome) for a in got.actions] == [
        ("retry_with_backoff#1", "survivor", "success")
    ]
    (takeover,) = [t.detail for t in got.timeline if t.event == "action_taken_over"]
    assert takeover["step"] == "retry_with_backoff#1"
    assert (takeover["from_worker"], takeover["to_worker"]) == ("dead-replica", "survivor")
    assert names.index("action_taken_over") < names.index("action_started")


# SIGTERM --------------------------------------------------------------------------
class SlowTarget:
    """The pipeline's restart endpoint: answers only when the test releases it."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.answered = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.arrived.set()
        await self.release.wait()
        self.answered += 1
        return web.json_response({"ok": True})


async def test_sigterm_drains_in_flight_work_before_exit(
    tmp_path: Path, aiohttp_server: Callable[..., Any]
) -> None:
    target = SlowTarget()
    app = web.Application()
    app.router.add_post("/restart", target.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    spec = tmp_path / "pipelines.yml"
    spec.write_text(
        textwrap.dedent(
            f"""
            pipelines:
              etl_orders:
                max_attempts: 1
                recovery: {{unknown: retry_with_backoff}}
                actions:
                  retry_with_backoff:
                    http: {{url: "http://127.0.0.1:{server.port}/restart", timeout: 60s}}
            """
        )
    )
    port, closed = free_port(), free_port()  # nothing listens on ``closed``
    db = tmp_path / "receiver.db"
    config = tmp_path / "receiver.yml"
    config.write_text(
        textwrap.dedent(
            f"""
            store: "sqlite:///{db}"
            spec: "{spec}"
            prometheus_url: "http://127.0.0.1:{closed}"
            workers: {{poll_interval_seconds: 0.05}}
            recovery: {{verify_deadline_seconds: 0.5, verify_interval_seconds: 0.1}}
            """
        )
    )
    log = tmp_path / "receiver.log"
    pipemedic = str(Path(sys.executable).with_name("pipemedic"))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [pipemedic, "receiver", "--listen", f"127.0.0.1:{port}", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                assert proc.poll() is None, log.read_text()
                try:
                    async with session.get(f"{url}/-/ready") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await until(ready, "the receiver ready")
            body = notification_doc(alert_doc("etl_orders"))
            async with session.post(f"{url}/alerts", json=body) as resp:
                assert resp.status == 200, await resp.text()
        await asyncio.wait_for(target.arrived.wait(), 60)  # the action is in flight

        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert proc.poll() is None, "exited with an action in flight"
        target.release.set()
        code = await asyncio.wait_for(asyncio.to_thread(proc.wait), 60)
        assert code == 0, log.read_text()
    finally:
        target.release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert target.answered == 1
    store = await SqliteStore.open(db)
    try:
        assert await store.event_counts() == {"pending": 0, "processed": 1}
        incident = await store.open_incident("etl_orders")
        assert incident is not None
        assert [(a.step, a.outcome) for a in incident.actions] == [
            ("retry_with_backoff#1", "success")
        ]
        assert incident.state == "escalated"  # verification could not confirm it cleared
    finally:
        await store.close()


@dataclass
class HangingRecover:
    """Actions of ``hang_*`` pipelines hang until ``release``; the others finish at once."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    hanging: set[str] = field(default_factory=set)
    finished: list[str] = field(default_factory=list)

    async def __call__(self, request: RecoveryRequest) -> FakeResult:
        p = request.incident.pipeline
        if p.startswith("hang"):
            self.hanging.add(p)
            await self.release.wait()
        self.finished.append(p)
        return FakeResult("recovered", "retry_with_backoff", (), "done")


async def test_hanging_actions_delay_no_other_pipelines_diagnosis_or_action(
    sqlite: SqliteStore,
) -> None:
    recover = HangingRecover()
    diagnose = FakeDiagnose()
    # more hanging actions than diagnosis slots: with one shared pool nothing else would run
    workers = pool(sqlite, recover, concurrency=2, action_concurrency=8, diagnose=diagnose)
    hanging = [alert_doc(f"hang_{i}", fingerprint=f"h{i}") for i in range(3)]
    healthy = [alert_doc(f"ok_{i}", fingerprint=f"k{i}") for i in range(4)]
    await sqlite.ingest(notification(*hanging, *healthy))  # the hanging ones first in the queue
    await workers.start()
    try:
        await until(lambda: len(recover.hanging) == 3, "three actions hanging")
        await until(
            lambda: sorted(recover.finished) == [f"ok_{i}" for i in range(4)],
            "every healthy pipeline diagnosed and recovered while three actions hang",
        )
        assert len(diagnose.calls) == 7 and not recover.release.is_set()
        recover.release.set()
        await workers.run_until_idle()
    finally:
        recover.release.set()
        await workers.stop()
    assert sorted(recover.finished) == sorted(
        [f"hang_{i}" for i in range(3)] + [f"ok_{i}" for i in range(4)]
    )


async def test_action_slots_bound_the_actions_running_at_once(sqlite: SqliteStore) -> None:
    recover = GatedRecover()
    workers = pool(sqlite, recover, concurrency=4, action_concurrency=2)
    await sqlite.ingest(notification(*(alert_doc(f"etl_{i}") for i in range(6))))
    await workers.start()
    try:
        await until(lambda: recover.total == 2, "two actions running")
        await asyncio.sleep(0.3)  # room for a third to start, were the bound not kept
        assert recover.total == 2
        recover.gate.set()
        await workers.run_until_idle()
    finally:
        recover.gate.set()
        await workers.stop()
    assert recover.most_total == 2 and len(recover.calls) == 6
