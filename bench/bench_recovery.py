"""What the guard stage and the evidence cost: guarded recovery vs the bare action.

Baseline: ``HttpAction.run`` against a local aiohttp endpoint, N times.
Measured: ``Recoverer.recover`` doing the same action through every
guardrail (cooldown, circuit, rate limit, concurrency reads of a real SQLite
ledger), the exactly-once claim and outcome write, and one verification
query against a real Prometheus. A second pair compares ``diagnose`` (all
evidence queries of a handler plus the fallback) with one instant query.
Loopback only; a few seconds.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from pipemedic.stack import PrometheusServer, free_port
from receiver.actions import ActionContext, HttpAction
from receiver.diagnosis import diagnose
from receiver.diagnosis.prometheus import PrometheusAPI
from receiver.models import ActionRecord, Alert, Diagnosis, Incident
from receiver.recovery import Recoverer, RecoveryConfig
from receiver.store.sqlite.store import SqliteStore
from receiver.worker.stages import RecoveryRequest
from rules.spec import parse_spec

N = 300
ROUNDS = 3


class _MemoryLedger:
    """The ledger contract in a dict: separates the guard logic from SQLite's commits."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, str], ActionRecord] = {}

    async def begin_action(self, record: ActionRecord, lease_seconds: float) -> bool:
        return self.rows.setdefault((record.incident_id, record.step), record) is record

    async def renew_action(self, record: ActionRecord, lease_seconds: float) -> bool:
        return self.rows.get((record.incident_id, record.step)) == record

    async def end_action(self, record: ActionRecord) -> None:
        self.rows[(record.incident_id, record.step)] = record

    async def actions_since(
        self, since: datetime, *, pipeline: str | None = None, target: str | None = None
    ) -> Sequence[ActionRecord]:
        return [
            r
            for r in self.rows.values()
            if r.started_at >= since
            and pipeline in (None, r.pipeline)
            and target in (None, r.target)
        ]


async def serve_action_endpoint() -> tuple[web.AppRunner, int]:
    """Serve ``POST /act`` answering 200 on a free loopback port (the action's target)."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/act", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def _bench(prom_url: str, workdir: Path) -> None:
    runner, port = await serve_action_endpoint()
    url = f"http://127.0.0.1:{port}/act"
    spec = parse_spec(
        "defaults:\n  cooldown: '0'\n  actions:\n    retry_with_backoff:\n"
        f'      http: {{url: "{url}"}}\n'
    )
    now = datetime.now(UTC)
    diagnosis = Diagnosis("network_timeout", "check_infrastructure", "bench")
    config = RecoveryConfig(rate_limit_per_minute=10**9, verify_deadline_seconds=0)

    async def firing() -> bool:
        return True

    async with aiohttp.ClientSession() as session:
        prom = PrometheusAPI(prom_url, session)
        action = HttpAction({"url": url})
        ctx = ActionContext(1, "p", "PipelineDown", "network_timeout", "r", 1, session)
        store = await SqliteStore.open(workdir / "bench.db")
        on_sqlite = Recoverer(config, store, prom, session)
        in_memory = Recoverer(config, _MemoryLedger(), prom, session)
        bare_times, guarded_times, memory_times, diag_times, query_times = [], [], [], [], []
        serial = 0

        async def recoveries(recoverer: Recoverer) -> float:
            nonlocal serial
            started = time.perf_counter()
            for _ in range(N):
                serial += 1
                pipeline = f"p{serial}"
                alert = Alert("firing", {"pipeline": pipeline}, {}, now, None, str(serial))
                incident = Incident(serial, pipeline, "recovering", "SEV3", now)
                result = await recoverer.recover(
                    RecoveryRequest(incident, alert, diagnosis, spec.pipeline(pipeline), firing)
                )
                assert result.outcome == "recovered", result.reason
            return time.perf_counter() - started

        for _ in range(ROUNDS):
            started = time.perf_counter()
            for _ in range(N):
                await action.run(ctx)
            bare_times.append(time.perf_counter() - started)
            guarded_times.append(await recoveries(on_sqlite))
            memory_times.append(await recoveries(in_memory))

            alert = Alert(
                "firing", {"pipeline": "p", "category": "connectivity"}, {}, now, None, ""
            )
            started = time.perf_counter()
            for _ in range(N // 10):
                await diagnose(alert, spec.pipeline("p"), prom)
            diag_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            for _ in range(N // 10):
                await prom.query('max(pipeline_up{pipeline="p"})')
            query_times.append(time.perf_counter() - started)
        await store.close()
    await runner.cleanup()

    bare, guarded = statistics.median(bare_times), statistics.median(guarded_times)
    memory = statistics.median(memory_times)
    diag, query = statistics.median(diag_times), statistics.median(query_times)
    print(
        f"bare http action:       {bare / N * 1000:.2f} ms per call ({N} calls, median of {ROUNDS})"
    )
    print(f"guarded recover():      {guarded / N * 1000:.2f} ms per recovery")
    print(f"ratio guarded / bare:   {guarded / bare:.2f}x  (SQLite ledger, synchronous=FULL)")
    print(f"recover(), dict ledger: {memory / N * 1000:.2f} ms per recovery")
    print(f"ratio guarded / bare:   {memory / bare:.2f}x  (in-memory ledger: guard logic only)")
    print(f"diagnose():             {diag / (N // 10) * 1000:.2f} ms per diagnosis")
    print(f"one instant query:      {query / (N // 10) * 1000:.2f} ms")
    print(f"ratio diagnose / query: {diag / query:.2f}x")


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="pipemedic-bench-recovery-") as tmp,
        PrometheusServer("global: {}\n", workdir=Path(tmp) / "prom") as prom,
    ):
        asyncio.run(_bench(prom.url, Path(tmp)))


if __name__ == "__main__":
    main()
