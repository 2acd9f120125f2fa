"""Notification delivery: outbox latency vs a bare apprise send, and whether it slows actions.

(a) 100 incidents escalate at once. Measured: from each ``escalated``
timeline entry to the chat sink receiving its message, through the whole
path (outbox row written with the entry on SQLite, the delivery worker's
claim, render, apprise's Mattermost plugin, the local sink), p50/p99.
Baseline, same run: the same 100 rendered messages sent at once straight
through apprise's plugin on a pool of the same size (4 threads: the
delivery worker's default), from the start to the sink receiving each.
Goal: p99 ratio <= 2x. Every way of delivering is measured:
``notify.isolation: process`` (the default: ``DeliveryProcess``, a child
under SCHED_IDLE at nice +10 with its own store connection), the same child
at nice +10 only (``process-nice``), and ``task`` (``DeliveryWorker`` on the
receiver's event loop, apprise on its threads).

(b) Recovery actions while that happens: 200 ``HttpAction.run`` calls to a
local endpoint, 10 ms apart (about 2 s, longer than the deliveries), timed
each, while the 100 escalations are saved and delivered; against the same
without notifications (no outbox rows, no delivery). The noise floor is
measured in the same run: a second round without notifications, whose
ratio to the first (A/A) says how much two identical rounds differ on this
machine. Every round runs the five variants in a rotated order (no variant
always runs first or last). Summary: per-round ratios (median and range)
and the ratio of percentiles over all rounds' samples pooled (2,000 per
variant). "Never slows recovery" holds when with/without stays within
the A/A noise.

The chat sink runs in a process of its own (a real chat server is
elsewhere): in the bench's process its HTTP threads would take the GIL
from the actions, with notifications only.

Loopback only: a real SQLite store, real apprise, a real HTTP sink.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import apprise

from bench.bench_recovery import serve_action_endpoint
from pipemedic.sinks import ChatSink
from receiver.actions import ActionContext, HttpAction
from receiver.config import parse_config
from receiver.incidents.lifecycle import Lifecycle
from receiver.models import Incident, OutboxMessage, TimelineEntry
from receiver.notify.delivery import DeliveryRunner, DeliveryWorker
from receiver.notify.messages import render
from receiver.notify.mobilize import Mobilizer
from receiver.notify.process import DeliveryProcess
from receiver.notify.send import AppriseSender
from receiver.store.sqlite.store import SqliteStore
from rules.people import build_plugin
from rules.spec import Spec, parse_spec

N = 100
# a multiple of the 5 variants: each runs in each place twice (BENCH_NOTIFY_ROUNDS to vary)
ROUNDS = int(os.environ.get("BENCH_NOTIFY_ROUNDS", "10"))
SENDS = 4  # sends at once, both sides (the receiver's default notify.concurrency)
ACTIONS = 200  # recovery actions timed while the escalations are saved and delivered
ACTION_GAP = 0.01
_ID = re.compile(r"#(\d+) ")


def _spec(address: str) -> Spec:
    return parse_spec(
        "teams:\n  t:\n    commander: {name: Ada, chat: ada}\n    notify:\n"
        f'      - {{url: "mmost://{address}/bench", events: [escalated]}}\n'
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _serve_sink(conn: Connection) -> None:
    """Child process: run a ChatSink; answer "clear" and "take" (texts, receive times)."""
    with ChatSink() as chat:
        conn.send(chat.address)
        while True:
            command = conn.recv()
            if command == "clear":
                with chat.lock:
                    chat.posts.clear()
                    chat.received_at.clear()
                conn.send(None)
            elif command == "take":
                with chat.lock:
                    conn.send(
                        ([str(p.get("text", "")) for p in chat.posts], list(chat.received_at))
                    )
            else:
                return


class RemoteSink:
    """A ChatSink in a process of its own; its posts read on request."""

    def __init__(self) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._proc = multiprocessing.get_context("spawn").Process(
            target=_serve_sink, args=(child,), daemon=True
        )
        self._proc.start()
        self.address: str = self._conn.recv()

    def clear(self) -> None:
        self._conn.send("clear")
        self._conn.recv()

    def take(self) -> tuple[list[str], list[float]]:
        self._conn.send("take")
        texts, times = self._conn.recv()
        return texts, times

    def close(self) -> None:
        self._conn.send("stop")
        self._proc.join(10)


async def _incidents(store: SqliteStore, tag: str) -> list[Incident]:
    now = datetime.now(UTC)
    made = []
    for i in range(N):
        inc = Incident(
            0, f"{tag}_{i}", "recovering", "SEV2", now, team="t", roles={"commander": "Ada"}
        )
        made.append(await store.create_incident(inc))
    return made


async def _actions(url: str, session: aiohttp.ClientSession) -> list[float]:
    """Run ACTIONS actions ACTION_GAP apart (spanning the deliveries); time each."""
    action = HttpAction({"url": url})
    ctx = ActionContext(1, "p", "PipelineDown", "network_timeout", "r", 1, session)
    times = []
    for _ in range(ACTIONS):
        started = time.perf_counter()
        await action.run(ctx)
        times.append(time.perf_counter() - started)
        await asyncio.sleep(ACTION_GAP)
    return times


async def _round(
    workdir: Path, sink: RemoteSink, mode: str, url: str, session: aiohttp.ClientSession
) -> tuple[list[float], list[float]]:
    """Escalate N incidents at once; return (delivery latencies, action latencies).

    ``mode``: ``process`` or ``task`` (``notify.isolation``), ``process-nice`` (the child
    at nice +10 only, no SCHED_IDLE), or ``none`` (no notifications).
    """
    spec = _spec(sink.address)
    path = workdir / f"bench-{time.monotonic_ns()}.db"
    store = await SqliteStore.open(path)
    delivery: DeliveryRunner | None = None
    mobilizer = Mobilizer(spec)

    def mobilize(incident: Incident, entry: TimelineEntry) -> list[OutboxMessage]:
        found = mobilizer.messages_for(incident, entry)
        if found and delivery is not None:
            delivery.wake()
        return found

    lifecycle = Lifecycle(store, spec, mobilize=mobilize if mode != "none" else None)
    if mode == "task":
        delivery = DeliveryWorker(
            store, {"*": AppriseSender.prepare(spec, threads=SENDS)}, spec, concurrency=SENDS
        )
    elif mode.startswith("process"):
        config = parse_config(
            {"store": f"sqlite:///{path}", "notify": {"concurrency": SENDS}}, "bench"
        )
        delivery = DeliveryProcess(config, spec, idle=mode == "process")
    if delivery is not None:
        await delivery.start()
    incidents = await _incidents(store, mode)
    await asyncio.to_thread(sink.clear)
    if isinstance(delivery, DeliveryProcess):  # its start-up is not what is measured
        while delivery.reports == 0:  # its first report: it is up
            await asyncio.sleep(0.05)
    escalations = asyncio.gather(*(lifecycle.escalate(i, "bench") for i in incidents))
    action_times = await _actions(url, session)
    await escalations
    texts: list[str] = []
    received: list[float] = []
    while delivery is not None and len(texts) < N:
        await asyncio.sleep(0.05)
        texts, received = await asyncio.to_thread(sink.take)
    at = {i.id: next(t.at for t in i.timeline if t.event == "escalated") for i in incidents}
    latencies = []
    for text, when in zip(texts, received, strict=True):
        found = _ID.search(text)
        assert found is not None, text
        latencies.append(when - at[int(found.group(1))].timestamp())
    if delivery is not None:
        await delivery.stop()
    await store.close()
    return latencies, action_times


def _bare(sink: RemoteSink, spec: Spec) -> list[float]:
    """Send the same N messages at once straight through apprise; latency per message."""
    team = spec.team("t")
    now = datetime.now(UTC)
    bodies = [
        render(
            "escalated",
            Incident(
                i + 1, f"b_{i}", "escalated", "SEV2", now, team="t", roles={"commander": "Ada"}
            ),
            team,
        ).markdown
        for i in range(N)
    ]
    plugin: Any = build_plugin(f"mmost://{sink.address}/bench")
    sink.clear()
    started = time.time()
    with ThreadPoolExecutor(SENDS) as pool:
        list(
            pool.map(
                lambda b: plugin.notify(
                    body=b, title="", body_format=apprise.NotifyFormat.MARKDOWN
                ),
                bodies,
            )
        )
    return [r - started for r in sink.take()[1]]


def ms(values: list[float], q: float) -> str:
    return f"{_pct(values, q) * 1000:.2f}"


# the ways of delivering (notify.isolation; process-nice: the child without SCHED_IDLE),
# then twice without notifications: a, and b as the A/A noise floor
DELIVERING = ("process", "process-nice", "task")
VARIANTS = (*DELIVERING, "a", "b")
QUANTILES = (0.5, 0.9, 0.99)


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f}x)"


def _qs(values: list[float]) -> str:
    return "/".join(ms(values, q) for q in QUANTILES)


async def _bench(workdir: Path) -> None:
    runner, port = await serve_action_endpoint()
    url = f"http://127.0.0.1:{port}/act"
    sink = await asyncio.to_thread(RemoteSink)
    delivery: dict[str, list[float]] = {v: [] for v in DELIVERING}
    per_round: dict[tuple[float, str], list[float]] = {}
    pooled: dict[str, list[float]] = {v: [] for v in VARIANTS}
    try:
        spec = _spec(sink.address)
        async with aiohttp.ClientSession() as session:
            for n in range(1, ROUNDS + 1):
                bare = await asyncio.to_thread(_bare, sink, spec)
                shift = (n - 1) % len(VARIANTS)  # each variant first, second, ... in turn
                order = VARIANTS[shift:] + VARIANTS[:shift]
                got = {
                    v: await _round(workdir, sink, v if v in DELIVERING else "none", url, session)
                    for v in order
                }
                for v in VARIANTS:
                    pooled[v] += got[v][1]
                for mode in DELIVERING:
                    delivery[mode].append(_pct(got[mode][0], 0.99) / _pct(bare, 0.99))
                without = got["a"][1]
                for q in QUANTILES:
                    for v in (*DELIVERING, "b"):
                        ratio = _pct(got[v][1], q) / _pct(without, q)
                        per_round.setdefault((q, v), []).append(ratio)
                print(
                    f"round {n} ({'/'.join(order)}): delivery p99 "
                    + ", ".join(f"{v} {ms(got[v][0], 0.99)}" for v in DELIVERING)
                    + f", bare apprise {ms(bare, 0.99)} ms | action ms p50/p90/p99: "
                    + ", ".join(f"{v} {_qs(got[v][1])}" for v in VARIANTS),
                    flush=True,
                )
    finally:
        await asyncio.to_thread(sink.close)
        await runner.cleanup()
    for mode, ratios in delivery.items():
        print(f"delivery p99 vs bare apprise, {mode}: {_spread(ratios)} over {ROUNDS} rounds")
    for q in QUANTILES:
        name = f"p{round(q * 100)}"
        base = _pct(pooled["a"], q)
        print(f"action {name} vs without (b: without again, the A/A noise floor):")
        for v in (*DELIVERING, "b"):
            print(
                f"  {v}: per round {_spread(per_round[(q, v)])}, "
                f"pooled {_pct(pooled[v], q) / base:.2f}x"
            )


def main() -> None:
    logging.getLogger("receiver").setLevel(logging.ERROR)  # no line per escalation
    sys.setswitchinterval(0.0005)  # as `pipemedic receiver` runs (receiver/cli.py)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_bench(Path(tmp)))


if __name__ == "__main__":
    main()
