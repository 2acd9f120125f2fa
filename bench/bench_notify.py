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
delivery worker). Ratio of p99 (and p90).

Loopback only: a real SQLite store, real apprise, a real HTTP sink.
"""

from __future__ import annotations

import asyncio
import logging
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
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
ROUNDS = 5
SENDS = 4  # sends at once, both sides (the receiver's default notify.concurrency)
ACTIONS = 200  # recovery actions timed while the escalations are saved and delivered
ACTION_GAP = 0.01
_ID = re.compile(r"#(\d+) ")


def _spec(chat: ChatSink) -> Spec:
    return parse_spec(
        "teams:\n  t:\n    commander: {name: Ada, chat: ada}\n    notify:\n"
        f'      - {{url: "mmost://{chat.address}/bench", events: [escalated]}}\n'
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _incidents(store: SqliteStore, lifecycle: Lifecycle, tag: str) -> list[Incident]:
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
    workdir: Path, chat: ChatSink, notify: bool, url: str, session: aiohttp.ClientSession
) -> tuple[list[float], list[float]]:
    """Escalate N incidents at once; return (delivery latencies, action latencies)."""
    spec = _spec(chat)
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
    incidents = await _incidents(store, lifecycle, "n" if notify else "q")
    chat.posts.clear()
    chat.received_at.clear()
    escalations = asyncio.gather(*(lifecycle.escalate(i, "bench") for i in incidents))
    action_times = await _actions(url, session)
    await escalations
    if notify:
        while len(chat.posts) < N:
            await asyncio.sleep(0.01)
    at = {i.id: next(t.at for t in i.timeline if t.event == "escalated") for i in incidents}
    latencies = []
    for post, received in zip(list(chat.posts), list(chat.received_at), strict=True):
        found = _ID.search(str(post.get("text", "")))
        assert found is not None, post
        latencies.append(received - at[int(found.group(1))].timestamp())
    if worker is not None:
        await worker.stop()
    await store.close()
    return latencies, action_times


def _bare(chat: ChatSink, spec: Spec) -> list[float]:
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
    plugin: Any = build_plugin(f"mmost://{chat.address}/bench")
    chat.posts.clear()
    chat.received_at.clear()
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
    return [r - started for r in chat.received_at]


async def _bench(workdir: Path) -> None:
    runner, port = await serve_action_endpoint()
    url = f"http://127.0.0.1:{port}/act"
    rows = []
    with ChatSink() as chat:
        spec = _spec(chat)
        async with aiohttp.ClientSession() as session:
            for _ in range(ROUNDS):
                bare = await asyncio.to_thread(_bare, chat, spec)
                delivered, with_notify = await _round(workdir, chat, True, url, session)
                _none, without = await _round(workdir, chat, False, url, session)
                rows.append((bare, delivered, with_notify, without))
    await runner.cleanup()
    ratios = []
    for n, (bare, delivered, with_notify, without) in enumerate(rows, 1):
        p99_bare, p99_ours = _pct(bare, 0.99), _pct(delivered, 0.99)
        ratio = p99_ours / p99_bare
        ratios.append(ratio)
        a99_with, a99_without = _pct(with_notify, 0.99), _pct(without, 0.99)
        a90 = _pct(with_notify, 0.9) / _pct(without, 0.9)
        print(
            f"round {n}: delivery p50 {statistics.median(delivered) * 1000:.1f} ms "
            f"p99 {p99_ours * 1000:.1f} ms vs bare apprise p50 "
            f"{statistics.median(bare) * 1000:.1f} ms p99 {p99_bare * 1000:.1f} ms "
            f"= {ratio:.2f}x | action p50 {statistics.median(with_notify) * 1000:.2f} / "
            f"{statistics.median(without) * 1000:.2f} ms, p99 {a99_with * 1000:.2f} / "
            f"{a99_without * 1000:.2f} ms with/without notifications "
            f"= {a99_with / a99_without:.2f}x (p90 {a90:.2f}x)",
            flush=True,
        )
    print(
        f"delivery p99 vs bare apprise, median of {ROUNDS} rounds: "
        f"{statistics.median(ratios):.2f}x (goal <= 2x)"
    )


def main() -> None:
    logging.getLogger("receiver").setLevel(logging.ERROR)  # no line per escalation
    sys.setswitchinterval(0.0005)  # as `pipemedic receiver` runs (receiver/cli.py)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_bench(Path(tmp)))


if __name__ == "__main__":
    main()
