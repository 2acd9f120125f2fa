"""Benchmark POST /alerts on PostgreSQL against SQLite and a bare aiohttp app, and two replicas.

In one run, alternating: a bare aiohttp app that only parses the JSON (the
ceiling), the receiver on SQLite, the receiver on PostgreSQL, and two
receiver replicas on one PostgreSQL with wrk driving both at once (their
requests/s summed). wrk posts a new notification (new fingerprint) per
request, built by a Lua script, so every request is a durable insert.
Results are ratios to the bare app measured in the same run.

Run: ``.venv/bin/python -m bench bench_scale_out`` (about 2 minutes, loopback only).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench._load import BareApp, Receiver, notification_lua, require_wrk, run_wrk
from pipemedic.pgserver import PostgresServer

DURATION = os.environ.get("BENCH_SCALE_OUT_DURATION", "6s")
CONNECTIONS = 32
ROUNDS = 2


def _wrk(url: str, script: Path, run: str, threads: int, connections: int) -> float:
    result = run_wrk(
        url,
        script,
        threads=threads,
        connections=connections,
        duration=DURATION,
        env={"BENCH_RUN": run},
    )
    result.raise_for_errors(url)
    return result.rps


def _measure(urls: Sequence[str], script: Path, run: str) -> float:
    """Drive every URL at once with CONNECTIONS split between them; return summed req/s."""
    share = max(CONNECTIONS // len(urls), 1)
    threads = max(2 // len(urls), 1)
    with ThreadPoolExecutor(len(urls)) as pool:
        rates = pool.map(
            lambda i_url: _wrk(i_url[1] + "/alerts", script, f"{run}-{i_url[0]}", threads, share),
            enumerate(urls),
        )
        return sum(rates)


SETUPS = ("sqlite", "postgresql", "2 replicas")


def _receivers(setup: str, round_: int, workdir: Path, pg: PostgresServer) -> list[Receiver]:
    """Return the (unstarted) receivers of one setup, each with a fresh database."""
    if setup == "sqlite":
        return [Receiver(workdir / f"s{round_}", f"sqlite:///{workdir}/r{round_}.db")]
    if setup == "postgresql":
        return [Receiver(workdir / f"p{round_}", pg.create_database(f"one_{round_}"))]
    dsn = pg.create_database(f"two_{round_}")
    return [Receiver(workdir / f"two{round_}_{n}", dsn) for n in (1, 2)]


def main() -> None:
    require_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="pipemedic-bench-scale-out-"))
    script = workdir / "notify.lua"
    script.write_text(notification_lua(pipelines=50, detailed=False))
    results: dict[str, list[float]] = {name: [] for name in ("bare", *SETUPS)}
    try:
        with PostgresServer() as pg, BareApp(workdir) as bare:
            for round_ in range(ROUNDS):
                results["bare"].append(_measure([bare.url], script, f"b{round_}"))
                for name in SETUPS:
                    receivers = _receivers(name, round_, workdir, pg)
                    try:
                        urls = [receiver.start().url for receiver in receivers]
                        results[name].append(_measure(urls, script, f"{name[0]}{round_}"))
                    finally:
                        for receiver in receivers:
                            receiver.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    bare_rps = statistics.median(results["bare"])
    for name, rates in results.items():
        rps = statistics.median(rates)
        print(f"{name:>12}: {rps:8.0f} req/s  ratio to bare aiohttp {rps / bare_rps:.2f}x")
    pg_rps = statistics.median(results["postgresql"])
    print(f"PostgreSQL / SQLite: {pg_rps / statistics.median(results['sqlite']):.2f}x")
    two_rps = statistics.median(results["2 replicas"])
    print(f"2 replicas / 1 replica (PostgreSQL): {two_rps / pg_rps:.2f}x")


if __name__ == "__main__":
    main()
