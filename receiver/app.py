"""Build the receiver's aiohttp application: one factory, resources in ``cleanup_ctx``.

``create_app(config)`` wires the flow of README.md's diagram::

    POST /alerts: authenticate -> validate -> persist -> ack      (receiver.intake.handler)
    worker pool:  correlate -> diagnose -> recover -> verify -> record  (receiver.worker.pool)
    notify:       outbox rows (written with their timeline entries) -> render -> send
                  (receiver.notify.delivery, its own task)

Everything with a lifetime (the store, the HTTP client session, the
Prometheus client, the worker tasks) is opened and closed in ``cleanup_ctx``,
in that order and its reverse: on SIGTERM the workers drain first, then the
session and the store close. Diagnosis, recovery, the firing check and the
post-mortem renderer can be replaced through keyword arguments (tests use
this seam instead of patching). Installed plugins (``receiver.plugins``) are
loaded here, once, and their tables passed down to diagnosis and recovery; a
broken plugin, or a spec naming one that is not installed, stops start-up.

Example::

    web.run_app(create_app(load_config("receiver.yml")), host="127.0.0.1", port=9099)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from receiver.config import ReceiverConfig
from receiver.diagnosis import HANDLERS, Handler
from receiver.diagnosis import diagnose as prometheus_diagnose
from receiver.diagnosis.batching import BatchedQueries
from receiver.diagnosis.prometheus import PrometheusAPI, PrometheusError, PrometheusQuery
from receiver.incidents.lifecycle import Lifecycle, RenderPostmortem
from receiver.incidents.lineage import UpstreamGraph
from receiver.intake.auth import Authenticator
from receiver.intake.handler import Intake
from receiver.keys import CONFIG, HTTP_SESSION, INTAKE, METRICS, NOTIFY, SPEC, STORE, WORKER
from receiver.metrics import ReceiverMetrics, metrics_handler
from receiver.models import Alert, Diagnosis, Incident, OutboxMessage, TimelineEntry, utcnow
from receiver.notify.delivery import DeliveryRunner, DeliveryWorker, build_senders, pager_for
from receiver.notify.metrics import NotifyMetrics
from receiver.notify.mobilize import Mobilizer
from receiver.notify.paging import PageRenewer
from receiver.notify.process import DeliveryProcess
from receiver.people.access import ACCESS, Access, access_middleware
from receiver.people.actions import HumanActions
from receiver.people.routes import HUMAN, add_people_routes
from receiver.plugins import Tables, check_spec, load_plugins
from receiver.recovery import Recoverer
from receiver.recovery.downstream import DownstreamVerifier
from receiver.recovery.metrics import RecoveryMetrics
from receiver.recovery.verify import Verifier
from receiver.report.postmortem import render_postmortem
from receiver.report.web import add_routes
from receiver.store import open_store
from receiver.store.base import Store, StoreError
from receiver.store.sqlite.checkpoint import CheckpointObserver
from receiver.store.sqlite.groupcommit import CommitObserver
from receiver.worker.pool import Diagnose, FiringCheck, Recover, WorkerPool, default_worker_id
from rules.promql import selector
from rules.spec import PipelineSpec, Spec, load_spec

__all__ = ["PrometheusDiagnose", "PrometheusFiringCheck", "create_app"]

log = logging.getLogger(__name__)

_UNSET: Any = object()
# Builds the recovery stage once the store, the Prometheus client and the session exist.
RecoverFactory = Callable[
    [ReceiverConfig, Store, PrometheusQuery, aiohttp.ClientSession, str, CollectorRegistry], Recover
]


class StoreOpener(Protocol):
    """Open the store a URL names (``receiver.store.open_store``)."""

    def __call__(
        self,
        url: str,
        *,
        on_commit: CommitObserver | None = None,
        on_checkpoint: CheckpointObserver | None = None,
    ) -> Awaitable[Store]: ...


class PrometheusDiagnose:
    """The diagnosis stage on the real handlers (``receiver.diagnosis``).

    Diagnoses running together (a batch of the worker pool) share their
    Prometheus questions (``BatchedQueries``).
    """

    def __init__(self, prom: PrometheusQuery, handlers: Mapping[str, Handler] = HANDLERS) -> None:
        self.prom = BatchedQueries(prom)
        self.handlers = handlers

    async def __call__(self, alert: Alert, spec: PipelineSpec) -> Diagnosis:
        return await prometheus_diagnose(alert, spec, self.prom, handlers=self.handlers)


class PrometheusFiringCheck:
    """Ask Prometheus whether the alert is still firing (``ALERTS`` series)."""

    def __init__(self, prom: PrometheusQuery) -> None:
        self.prom = prom

    async def __call__(self, alert: Alert) -> bool | None:
        labels = {"alertname": alert.name, "alertstate": "firing"}
        if alert.pipeline:
            labels["pipeline"] = alert.pipeline
        try:
            return bool(await self.prom.query(selector("ALERTS", None, **labels)))
        except (PrometheusError, ValueError):
            return None


def recover_with(tables: Tables) -> RecoverFactory:
    """Return the factory of the guarded ``Recoverer`` using ``tables``' strategies and actions."""

    def build(
        config: ReceiverConfig,
        store: Store,
        prom: PrometheusQuery,
        session: aiohttp.ClientSession,
        worker_id: str,
        registry: CollectorRegistry,
    ) -> Recover:
        recoverer = Recoverer(
            config.recovery,
            store,  # the shared store is the action ledger
            prom,
            session,
            worker_id=worker_id,
            metrics=RecoveryMetrics(registry),
            strategies=tables.strategies,
            action_kinds=tables.actions,
        )
        recover: Recover = recoverer.recover
        return recover

    return build


def create_app(
    config: ReceiverConfig,
    *,
    spec: Spec | None = None,
    diagnose: Diagnose | None = None,
    recover: RecoverFactory | None = _UNSET,
    firing: FiringCheck | None = None,
    postmortem: RenderPostmortem | None = render_postmortem,
    worker_id: str | None = None,
    drain_seconds: float = 30.0,
    plugins: Tables | None = None,
    store_opener: StoreOpener = open_store,
) -> web.Application:
    """Return the receiver app for ``config``; nothing is opened until it starts.

    ``plugins``: the extension tables; by default the installed entry points
    are loaded now (``PluginError`` for a broken one). ``store_opener`` opens
    ``config.store_url`` (the benchmarks' ceiling passes a store that keeps nothing).
    """
    app = web.Application(client_max_size=config.body_limit_bytes, middlewares=[access_middleware])
    metrics = ReceiverMetrics()
    app[CONFIG] = config
    app[ACCESS] = Access(config.people)
    app[METRICS] = metrics
    app[SPEC] = spec if spec is not None else load_spec(config.spec_path)
    tables = plugins if plugins is not None else load_plugins()
    check_spec(app[SPEC], tables)
    recover_factory: RecoverFactory | None = recover_with(tables) if recover is _UNSET else recover
    # Destinations are expanded and checked now: a missing ${VAR} stops start-up (the
    # delivery process builds its own from the same spec and environment).
    senders = build_senders(app[SPEC], config)
    pager = pager_for(config)  # the page renewer's, in this process
    mobilizer = Mobilizer(app[SPEC], paging=pager is not None)
    # No child process when there is nothing to send (no destination, no paging: the idle
    # worker only gives up rows a former spec left), or the store is in-memory SQLite
    # (another process cannot open it).
    in_process = (
        config.notify.isolation == "task"
        or config.store_url.endswith(":memory:")
        or (pager is None and not any(t.notify for t in app[SPEC].teams.values()))
    )

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        store = await store_opener(
            config.store_url,
            on_commit=metrics.observe_commit,
            on_checkpoint=metrics.observe_checkpoint,
        )
        app[STORE] = store
        app[INTAKE] = Intake(
            store,
            Authenticator(config.auth),
            metrics,
            body_limit=config.body_limit_bytes,
            max_alerts=config.max_alerts,
            queue_max_depth=config.queue_max_depth,
        )
        metrics.queue_depth.set(await store.queue_depth())
        yield
        await store.close()

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            app[HTTP_SESSION] = session
            yield

    async def notify_ctx(app: web.Application) -> AsyncIterator[None]:
        notify_id = f"{worker_id}:notify" if worker_id else None
        delivery: DeliveryRunner = (
            DeliveryWorker(
                app[STORE],
                senders,
                app[SPEC],
                metrics=NotifyMetrics(metrics.registry),
                external_url=config.external_url,
                worker_id=notify_id,
                concurrency=max(config.notify.concurrency, 1),
                lease_seconds=config.notify.lease_seconds,
                max_age_seconds=config.notify.max_age_seconds,
            )
            if in_process
            else DeliveryProcess(config, app[SPEC], registry=metrics.registry, worker_id=notify_id)
        )
        app[NOTIFY] = delivery
        renewer = (
            PageRenewer(
                app[STORE],
                pager,
                app[SPEC],
                mobilizer,
                resend_seconds=config.notify.page_resend_seconds,
            )
            if pager is not None and config.notify.concurrency > 0
            else None
        )
        if config.notify.concurrency > 0:
            await delivery.start()
        if renewer is not None:
            await renewer.start()
        yield
        if renewer is not None:
            await renewer.stop()
        if pager is not None:
            await pager.close()
        await delivery.stop()  # the worker closes its senders; the child builds its own
        if not in_process:
            for sender in senders.values():
                await sender.close()

    def mobilize(incident: Incident, entry: TimelineEntry) -> list[OutboxMessage]:
        found = mobilizer.messages_for(incident, entry)
        if found:
            app[NOTIFY].wake()  # it polls again shortly, after the commit
        return found

    async def worker_ctx(app: web.Application) -> AsyncIterator[None]:
        store, session = app[STORE], app[HTTP_SESSION]
        prom = PrometheusAPI(config.prometheus_url, session)
        lifecycle = Lifecycle(
            store,
            app[SPEC],
            reopen_window_seconds=config.reopen_window_seconds,
            metrics=metrics,
            render_postmortem=postmortem,
            mobilize=mobilize,
            lineage=UpstreamGraph(
                prom,
                ttl_seconds=config.lineage_ttl_seconds,
                max_depth=config.lineage_max_depth,
                max_datasets=config.lineage_max_datasets,
            )
            if config.lineage_max_depth > 0
            else None,
            merge_window_seconds=config.lineage_merge_window_seconds,
        )
        worker = worker_id or default_worker_id()
        recover_stage = (
            recover_factory(config, store, prom, session, worker, metrics.registry)
            if recover_factory is not None
            else None
        )
        pool = WorkerPool(
            store,
            lifecycle,
            diagnose=diagnose or PrometheusDiagnose(prom, tables.handlers),
            recover=recover_stage,
            firing=firing or PrometheusFiringCheck(prom),
            concurrency=config.worker_concurrency,
            action_concurrency=config.action_concurrency,
            lease_seconds=config.lease_seconds,
            poll_interval=config.poll_interval_seconds,
            metrics=metrics,
            worker_id=worker,
            downstream=DownstreamVerifier(
                Verifier(
                    prom,
                    deadline_seconds=config.recovery.verify_deadline_seconds,
                    interval_seconds=config.recovery.verify_interval_seconds,
                    window_seconds=config.recovery.verify_window_seconds,
                    clock=utcnow,
                    sleep=asyncio.sleep,
                ),
                app[SPEC],
                deadline_seconds=config.lineage_verify_deadline_seconds,
                clock=utcnow,
            )
            if lifecycle.lineage is not None
            else None,
            downstream_poll_seconds=config.recovery.verify_interval_seconds,
        )
        app[WORKER] = pool
        app[HUMAN] = HumanActions(lifecycle)  # people act through the same lifecycle
        if config.worker_concurrency == 0:  # intake-only replica
            yield
            return
        app[INTAKE].on_commit = pool.wake
        await pool.start()
        yield
        await pool.stop(drain_seconds)

    app.cleanup_ctx.extend([store_ctx, session_ctx, notify_ctx, worker_ctx])
    app.router.add_post("/alerts", _post_alerts, name="alerts")
    app.router.add_get("/metrics", metrics_handler(metrics), name="metrics")
    app.router.add_get("/-/healthy", _healthy, name="healthy")
    app.router.add_get("/-/ready", _ready, name="ready")
    add_routes(app)
    add_people_routes(app)
    return app


async def _post_alerts(request: web.Request) -> web.Response:
    return await request.app[INTAKE].handle(request)


async def _healthy(request: web.Request) -> web.Response:
    return web.Response(text="OK\n")


async def _ready(request: web.Request) -> web.Response:
    """Answer 200 only while the store can commit a write."""
    try:
        await request.app[STORE].ping()
    except StoreError as exc:
        return web.json_response({"ready": False, "error": str(exc)}, status=503)
    return web.Response(text="OK\n")
