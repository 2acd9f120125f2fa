"""Benchmark POST /alerts: the receiver (durable SQLite, group commit) vs a bare aiohttp app.

wrk posts realistic Alertmanager notifications, each a new group with new
fingerprints (a Lua script builds every body), with 1 and with 20 alerts per
notification. Each round measures the bare app twice (``json.loads`` of the
body, the primary baseline; and the stricter one, the same app decoding with
``msgspec.json.decode``), then the receiver in intake-only mode
(``workers.concurrency: 0``) and with 4 workers, each on a fresh database;
the result is the median over rounds of the per-round ratio of requests/s to
each baseline (and its min..max spread).

Latency at half the maximum rate: wrk2 is not available, so wrk's ``delay()``
hook paces every connection (integer milliseconds between a response and the
next request). The rate that gives depends on the service time, so the
connection count is calibrated: a first paced run measures the rate reached,
a second run scales the connections to aim at half the receiver's median
maximum, and its achieved rate is reported next to its p50/p99. Pacing is
closed-loop (a stalled server is sent less), so p99 is not corrected for
coordinated omission.

Run: ``.venv/bin/python -m bench bench_intake`` (about 2.5 minutes, loopback only).
Environment: ``BENCH_INTAKE_DURATION`` (default 4s), ``BENCH_INTAKE_ROUNDS`` (3),
``BENCH_INTAKE_CONNECTIONS`` (32), ``BENCH_INTAKE_STORE_OPTIONS`` (e.g.
``?synchronous=NORMAL``, appended to the SQLite URL).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench._load import BareApp, Receiver, WrkResult, notification_lua, require_wrk, run_wrk, spread

DURATION = os.environ.get("BENCH_INTAKE_DURATION", "4s")
PACED_DURATION = "3s"
CONNECTIONS = int(os.environ.get("BENCH_INTAKE_CONNECTIONS", "32"))
ROUNDS = int(os.environ.get("BENCH_INTAKE_ROUNDS", "3"))
STORE_OPTIONS = os.environ.get("BENCH_INTAKE_STORE_OPTIONS", "")
PACE_MS = 10  # wrk delay() between a response and the next request on a connection


def _wrk(
    url: str, script: Path, run: str, connections: int, delay_ms: int = 0, duration: str = DURATION
) -> WrkResult:
    return run_wrk(
        url + "/alerts",
        script,
        threads=min(2, connections),
        connections=connections,
        duration=duration,
        env={"BENCH_RUN": run, "BENCH_DELAY_MS": str(delay_ms)},
    )


def _maximum(url: str, script: Path, run: str) -> float:
    """Return requests/s with ``CONNECTIONS`` unpaced connections; fail on any error."""
    full = _wrk(url, script, run, CONNECTIONS)
    full.raise_for_errors(url, socket_errors=True)
    return full.rps


def _paced(url: str, script: Path, run: str, target: float) -> tuple[WrkResult, int]:
    """Aim at ``target`` req/s with paced connections; calibrate once, return the 2nd run."""
    conns = max(1, round(target * PACE_MS / 1000))
    first = _wrk(url, script, run + "c", conns, PACE_MS, PACED_DURATION)
    conns = max(1, round(conns * target / max(first.rps, 1.0)))
    second = _wrk(url, script, run + "p", conns, PACE_MS, PACED_DURATION)
    second.raise_for_errors(url, socket_errors=True)
    return second, conns


def main() -> None:
    require_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="pipemedic-bench-intake-"))
    scripts = {alerts: workdir / f"notify-{alerts}.lua" for alerts in (1, 20)}
    for alerts, script in scripts.items():
        script.write_text(notification_lua(alerts, paced=True))
    modes = {"intake-only": 0, "with-workers": 4}
    bare_rps: dict[tuple[int, str], list[float]] = {}
    rps: dict[tuple[int, str], list[float]] = {}
    ratios: dict[tuple[int, str, str], list[float]] = {}
    paced: dict[tuple[int, str], tuple[WrkResult, int]] = {}
    started = time.monotonic()
    try:
        with (
            BareApp(workdir / "bare-json") as bare,
            BareApp(workdir / "bare-msgspec", parse="msgspec") as strict,
        ):
            for alerts, script in scripts.items():
                for round_ in range(ROUNDS):
                    run = f"a{alerts}r{round_}"
                    now = {
                        "json": _maximum(bare.url, script, run + "bare"),
                        "msgspec": _maximum(strict.url, script, run + "strict"),
                    }
                    for base, value in now.items():
                        bare_rps.setdefault((alerts, base), []).append(value)
                    for mode, workers in modes.items():
                        folder = workdir / f"{run}{mode}"
                        store = f"sqlite:///{folder / 'receiver.db'}{STORE_OPTIONS}"
                        with Receiver(folder, store, workers) as receiver:
                            got = _maximum(receiver.url, script, f"{run}{mode}")
                            if round_ == ROUNDS - 1:  # latency at half the median maximum
                                target = statistics.median([*rps.get((alerts, mode), []), got])
                                paced[(alerts, mode)] = _paced(
                                    receiver.url, script, f"{run}{mode}half", target / 2
                                )
                        rps.setdefault((alerts, mode), []).append(got)
                        for base, value in now.items():
                            ratios.setdefault((alerts, mode, base), []).append(got / value)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"wrk -t2 -c{CONNECTIONS} -d{DURATION}, {ROUNDS} rounds (bare, intake-only, "
        f"with-workers per round); store sqlite{STORE_OPTIONS or ' (synchronous=FULL)'}; "
        f"latency: wrk delay({PACE_MS} ms) pacing, connections calibrated to half the "
        f"median maximum; {time.monotonic() - started:.0f} s"
    )
    for (alerts, mode), values in rps.items():
        med = statistics.median(values)
        p, conns = paced[(alerts, mode)]
        against = "  ".join(
            f"vs bare-{base}({statistics.median(bare_rps[(alerts, base)]):.0f} req/s): "
            f"{statistics.median(r):.2f}x ({spread(r)})"
            for base in ("json", "msgspec")
            for r in [ratios[(alerts, mode, base)]]
        )
        print(
            f"alerts/notification={alerts:2d} {mode:12s} "
            f"receiver={med:7.0f} req/s ({med * alerts:7.0f} alerts/s)  {against}  "
            f"paced at {p.rps:.0f} req/s = {p.rps / med:.2f}x of max "
            f"({conns} conns): p50={p.p50_ms:.1f} ms p99={p.p99_ms:.1f} ms"
        )


if __name__ == "__main__":
    main()
