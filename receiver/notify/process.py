"""Deliver notifications from a child process of its own, at the lowest CPU priority.

In the receiver's process, apprise's send threads, the rendering and the
recording of each message take the GIL and CPU from the event loop that
times recovery actions (bench/results/notify.md). ``DeliveryProcess`` runs
the whole ``DeliveryWorker`` in a long-lived child (``notify.isolation:
process``, the default): it opens the store itself and claims outbox rows
through the same leases replicas use (a second process is just another
claimant; on SQLite a ``secondary`` store that releases nothing and leaves
checkpoints to the receiver) and builds its own senders from the spec, so
the receiver's event loop never runs apprise code.

The child runs under ``SCHED_IDLE`` (and nice +10): it gets a core only when
nothing else wants one and is preempted at once when the receiver wakes up,
so it never delays a recovery action (with nice alone it still did, at the
tail). A child starved that way would tell people late while the receiver
is saturated, so when the oldest waiting message is older than
``STARVED_SECONDS`` it returns to normal scheduling at nice +10 (a tenth of
the receiver's share, never nothing) until the outbox has caught up.

The receiver wakes it with one byte on a pipe when the lifecycle wrote
rows (as it wakes the in-process worker); the child also polls. It sends
its metrics (``receiver.notify.metrics``) back when they changed, at most
four times a second; the receiver's ``/metrics`` shows the latest. If the
child dies it is started again (its leased rows run out and are delivered
again: at least once, as after any crash); on stop it finishes its sends
in flight.

Example::

    delivery = DeliveryProcess(config, spec, registry=metrics.registry, worker_id="r1:notify")
    await delivery.start(); delivery.wake(); await delivery.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
from collections.abc import Iterable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from receiver.config import ReceiverConfig
from receiver.notify.delivery import DeliveryWorker, build_senders
from receiver.notify.metrics import NotifyMetrics
from receiver.store import open_store
from rules.spec import Spec

__all__ = ["NICE", "STARVED_SECONDS", "DeliveryProcess", "run_idle"]

log = logging.getLogger(__name__)

NICE = 10  # added to the child's niceness: about a tenth of the CPU the receiver gets
# the oldest waiting message's age above which a SCHED_IDLE child takes its nice +10 share,
# and below which (caught up) it goes back to SCHED_IDLE
STARVED_SECONDS = 10.0
CAUGHT_UP_SECONDS = 1.0
_REPORT_SECONDS = 0.25  # the child's metrics, when they changed, at most this often
_RESTART_SECONDS = (1.0, 30.0)  # first wait before restarting a dead child, and the cap


class _Latest(Collector):
    """The child's metric families as last reported (zeros before the first report)."""

    def __init__(self) -> None:
        self.families: list[Metric] = list(NotifyMetrics().registry.collect())

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


class DeliveryProcess:
    """Run the delivery worker in a child process; ``wake``/``start``/``stop`` as the worker."""

    def __init__(
        self,
        config: ReceiverConfig,
        spec: Spec,
        *,
        registry: CollectorRegistry | None = None,
        worker_id: str | None = None,
        idle: bool = True,
    ) -> None:
        self.config = config
        self.idle = idle
        self.spec = spec
        self.worker_id = worker_id or f"{os.uname().nodename}:{os.getpid()}:notify"
        self.metrics = _Latest()
        if registry is not None:
            registry.register(self.metrics)
        self.starts = 0  # children started (a restart counts)
        self.reports = 0  # metric reports received (the first: a child is up and delivering)
        self._proc: BaseProcess | None = None
        self._wake_fd = -1
        self._reports: Connection | None = None
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The running child's process id (None before start and between restarts)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.is_alive() else None

    async def start(self) -> None:
        self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="pipemedic-notify-process")

    def wake(self) -> None:
        """Say rows were (or are about to be) committed; never blocks."""
        with contextlib.suppress(OSError):  # full pipe: wakes are pending anyway; closed: stopping
            os.write(self._wake_fd, b"w")

    async def stop(self) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.terminate()  # SIGTERM: the child finishes its sends in flight
        elif self._supervisor is not None:  # waiting to start a dead child again
            self._supervisor.cancel()
        if self._supervisor is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")
        wake_read, wake_write = context.Pipe(duplex=False)
        reports_read, reports_write = context.Pipe(duplex=False)
        root = logging.getLogger()
        json_logs = any(type(h.formatter).__name__ == "JsonFormatter" for h in root.handlers)
        proc = context.Process(
            target=_child,
            args=(
                self.config,
                self.spec,
                self.worker_id,
                wake_read,
                reports_write,
                logging.getLevelName(root.level).lower(),
                "json" if json_logs else "text",
                self.idle,
            ),
            name="pipemedic-notify",
            daemon=True,
        )
        proc.start()
        wake_read.close()
        reports_write.close()
        os.set_blocking(wake_write.fileno(), False)
        self._wake_fd = os.dup(wake_write.fileno())
        wake_write.close()
        self._reports = reports_read
        self._proc = proc
        self.starts += 1

    def _close_pipes(self) -> None:
        if self._wake_fd >= 0:
            os.close(self._wake_fd)
            self._wake_fd = -1
        if self._reports is not None:
            self._reports.close()
            self._reports = None

    async def _supervise(self) -> None:
        """Read the child's reports; start it again if it dies before ``stop``."""
        wait = _RESTART_SECONDS[0]
        try:
            while True:
                await self._read_reports()
                proc = self._proc
                assert proc is not None
                await asyncio.to_thread(proc.join, 30)
                if proc.is_alive():
                    proc.kill()
                    await asyncio.to_thread(proc.join, 5)
                self._close_pipes()
                if self._stopping:
                    return
                log.error(
                    "notification delivery process exited with code %s; "
                    "starting it again in %.0f s",
                    proc.exitcode,
                    wait,
                )
                await asyncio.sleep(wait)
                wait = min(wait * 2, _RESTART_SECONDS[1])
                self._spawn()
        finally:
            self._close_pipes()

    async def _read_reports(self) -> None:
        """Apply the child's metric reports until it closes its end (it exited)."""
        reports = self._reports
        assert reports is not None
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(reports.fileno(), readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                try:
                    while reports.poll():
                        snapshot = reports.recv_bytes()
                        self.metrics.families = pickle.loads(snapshot)  # noqa: S301 (our child's)
                        self.reports += 1
                except (EOFError, OSError):
                    return
        finally:
            loop.remove_reader(reports.fileno())


def _child(
    config: ReceiverConfig,
    spec: Spec,
    worker_id: str,
    wake: Connection,
    reports: Connection,
    log_level: str,
    log_format: str,
    idle: bool,
) -> None:
    """The child's main: deliver until SIGTERM or until the receiver is gone."""
    from pipemedic import log as logs

    os.nice(NICE)
    logs.configure(log_level, log_format)
    idle = _schedule(idle=True) if idle else False
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is the receiver's to handle
    asyncio.run(_deliver(config, spec, worker_id, wake, reports, idle))


async def _deliver(
    config: ReceiverConfig,
    spec: Spec,
    worker_id: str,
    wake: Connection,
    reports: Connection,
    idle: bool,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def woken() -> None:
        try:
            data = os.read(wake.fileno(), 4096)
        except BlockingIOError:
            return
        if not data:  # the receiver is gone: stop too
            stop.set()
        worker.wake()

    metrics = NotifyMetrics()
    store = await open_store(config.store_url, secondary=True)
    worker = DeliveryWorker(
        store,
        build_senders(spec, config),
        spec,
        metrics=metrics,
        external_url=config.external_url,
        worker_id=worker_id,
        concurrency=max(config.notify.concurrency, 1),
        lease_seconds=config.notify.lease_seconds,
        max_age_seconds=config.notify.max_age_seconds,
    )
    os.set_blocking(wake.fileno(), False)
    loop.add_reader(wake.fileno(), woken)
    await worker.start()
    last = b""

    def report() -> None:
        nonlocal last
        snapshot = pickle.dumps(list(metrics.registry.collect()))
        if snapshot != last:
            reports.send_bytes(snapshot)
            last = snapshot

    idle_now = idle
    try:
        report()  # the first: up and delivering
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _REPORT_SECONDS)
            report()
            oldest = metrics.registry.get_sample_value(
                "pipemedic_notification_outbox_oldest_age_seconds"
            )
            if idle and run_idle(idle_now, oldest or 0.0) != idle_now:
                idle_now = _schedule(idle=not idle_now, oldest=oldest or 0.0)
    finally:
        loop.remove_reader(wake.fileno())
        await worker.stop()
        await store.close()
        with contextlib.suppress(OSError):
            report()


def run_idle(idle_now: bool, oldest_age: float) -> bool:
    """Whether the child should run under SCHED_IDLE, given its oldest waiting message's age."""
    if idle_now:
        return oldest_age <= STARVED_SECONDS
    return oldest_age < CAUGHT_UP_SECONDS


def _schedule(*, idle: bool, oldest: float = 0.0) -> bool:
    """Switch this process to SCHED_IDLE or back to normal; return whether it is idle now."""
    try:
        if idle:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError as exc:  # e.g. not allowed back to normal: stay as we are
        log.warning("notification delivery: cannot change CPU scheduling: %s", exc)
        return not idle
    if not idle:
        log.warning(
            "notification delivery: the oldest message waits %.0f s; sending at nice +%d "
            "(normal scheduling) until caught up",
            oldest,
            NICE,
        )
    return idle
