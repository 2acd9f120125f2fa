"""Notification delivery: outbox latency vs a bare apprise send, and whether it slows actions.

(a) 100 incidents escalate at once. Measured: from each ``escalated``
timeline entry to the chat sink receiving its message, through the whole
path (outbox row written with the entry on SQLite, the delivery worker's
claim, render, apprise's Mattermost plugin, the local sink), p50/p99.
Baseline, same run: the same 100 rendered messages sent at once straight
through apprise's plugin on a pool of the same size (4 threads: the
delivery worker's default; 8 delivered sooner but made recovery actions'
tail latency worse, see (b)), from the start to the sink receiving each.
Goal: p99 ratio <= 2x.

(b) Recovery actions while that happens: 200 ``HttpAction.run`` calls to a
local endpoint, 10 ms apart (about 2 s, longer than the deliveries), timed
each, while the 100 escalations are saved and (with notifications)
delivered; against the same without notifications (no outbox rows, no
delivery worker). Ratio of p90 and p99. The noise floor is measured in the
same run: a second round without notifications, whose ratio to the first
(A/A) says how much two identical rounds differ on this machine. Every
round runs the variants in a rotated order (no variant always runs first
or last); the summary is the median over rounds. "Never slows recovery"
holds when with/without stays within the A/A spread.

The chat sink runs in a process of its own (a real chat server is
elsewhere): in the bench's process its HTTP threads would take the GIL
from the actions, with notifications only.

Loopback only: a real SQLite store, real apprise, a real HTTP sink.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
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
from receiver.incidents.lifecycle import Lifecycle
from receiver.models import Incident, OutboxMessage, TimelineEntry
from receiver.notify.delivery import DeliveryWorker
from receiver.notify.messages import render
from receiver.notify.mobilize import Mobilizer
from receiver.notify.send import AppriseSender
from receiver.store.sqlite.store import SqliteStore
from rules.people import build_plugin
from rules.spec import Spec, parse_spec

N = 100
ROUNDS = 7
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
    workdir: Path, sink: RemoteSink, notify: bool, url: str, session: aiohttp.ClientSession
) -> tuple[list[float], list[float]]:
    """Escalate N incidents at once; return (delivery latencies, action latencies)."""
    spec = _spec(sink.address)
    store = await SqliteStore.open(workdir / f"bench-{time.monotonic_ns()}.db")
    worker: DeliveryWorker | None = None
    mobilizer = Mobilizer(spec)

    def mobilize(incident: Incident, entry: TimelineEntry) -> list[OutboxMessage]:
        found = mobilizer.messages_for(incident, entry)
        if found and worker is not None:
            worker.wake()
        return found

    lifecycle = Lifecycle(store, spec, mobilize=mobilize if notify else None)
    if notify:
        worker = DeliveryWorker(
            store, {"*": AppriseSender.prepare(spec, threads=SENDS)}, spec, concurrency=SENDS
        )
        await worker.start()
    incidents = await _incidents(store, "n" if notify else "q")
    await asyncio.to_thread(sink.clear)
    escalations = asyncio.gather(*(lifecycle.escalate(i, "bench") for i in incidents))
    action_times = await _actions(url, session)
    await escalations
    texts: list[str] = []
    received: list[float] = []
    while notify and len(texts) < N:
        await asyncio.sleep(0.05)
        texts, received = await asyncio.to_thread(sink.take)
    at = {i.id: next(t.at for t in i.timeline if t.event == "escalated") for i in incidents}
    latencies = []
    for text, when in zip(texts, received, strict=True):
        found = _ID.search(text)
        assert found is not None, text
        latencies.append(when - at[int(found.group(1))].timestamp())
    if worker is not None:
        await worker.stop()
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


Ratios = dict[str, float]


def ms(values: list[float], q: float) -> str:
    return f"{_pct(values, q) * 1000:.2f}"


def _ratios(with_notify: list[float], without_a: list[float], without_b: list[float]) -> Ratios:
    out: Ratios = {}
    for q in (0.5, 0.9, 0.99):
        name = f"p{round(q * 100)}"
        out[f"with/without {name}"] = _pct(with_notify, q) / _pct(without_a, q)
        out[f"A/A {name}"] = _pct(without_b, q) / _pct(without_a, q)
    return out


async def _bench(workdir: Path) -> None:
    runner, port = await serve_action_endpoint()
    url = f"http://127.0.0.1:{port}/act"
    sink = await asyncio.to_thread(RemoteSink)
    delivery_ratios: list[float] = []
    action_ratios: list[Ratios] = []
    try:
        spec = _spec(sink.address)
        async with aiohttp.ClientSession() as session:
            for n in range(1, ROUNDS + 1):
                bare = await asyncio.to_thread(_bare, sink, spec)
                # rotate which variant runs first: no variant always follows another
                variants: list[tuple[str, bool]] = [("with", True), ("a", False), ("b", False)]
                shift = (n - 1) % len(variants)
                order = variants[shift:] + variants[:shift]
                got: dict[str, tuple[list[float], list[float]]] = {}
                for name, notify in order:
                    got[name] = await _round(workdir, sink, notify, url, session)
                delivered, with_notify = got["with"]
                without_a, without_b = got["a"][1], got["b"][1]
                ratio = _pct(delivered, 0.99) / _pct(bare, 0.99)
                delivery_ratios.append(ratio)
                r = _ratios(with_notify, without_a, without_b)
                action_ratios.append(r)
                print(
                    f"round {n} ({'/'.join(k for k, _ in order)}): delivery p99 "
                    f"{_pct(delivered, 0.99) * 1000:.0f} ms vs bare apprise "
                    f"{_pct(bare, 0.99) * 1000:.0f} ms = {ratio:.2f}x | action ms "
                    f"p50 {ms(with_notify, 0.5)}/{ms(without_a, 0.5)}/{ms(without_b, 0.5)} "
                    f"p90 {ms(with_notify, 0.9)}/{ms(without_a, 0.9)}/{ms(without_b, 0.9)} "
                    f"p99 {ms(with_notify, 0.99)}/{ms(without_a, 0.99)}/"
                    f"{ms(without_b, 0.99)} (with/without/without again)",
                    flush=True,
                )
    finally:
        await asyncio.to_thread(sink.close)
        await runner.cleanup()
    print(
        f"delivery p99 vs bare apprise, median of {ROUNDS} rounds: "
        f"{statistics.median(delivery_ratios):.2f}x "
        f"({min(delivery_ratios):.2f}-{max(delivery_ratios):.2f}x; goal <= 2x)"
    )
    for key in action_ratios[0]:
        values = [r[key] for r in action_ratios]
        print(
            f"action latency {key}: median {statistics.median(values):.2f}x "
            f"({min(values):.2f}-{max(values):.2f}x)"
        )


def main() -> None:
    logging.getLogger("receiver").setLevel(logging.ERROR)  # no line per escalation
    sys.setswitchinterval(0.0005)  # as `pipemedic receiver` runs (receiver/cli.py)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_bench(Path(tmp)))


if __name__ == "__main__":
    main()
