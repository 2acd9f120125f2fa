"""Benchmark POST /alerts: the receiver (durable SQLite, group commit) vs a bare aiohttp app.

wrk posts realistic Alertmanager notifications, each a new group with new
fingerprints (a Lua script builds every body), with 1 and with 20 alerts per
notification. Each round measures the bare app, then the receiver in
intake-only mode (``workers.concurrency: 0``) and with 4 workers, each on a
fresh database; the result is the median over rounds of the per-round ratio
of requests/s (and its min..max spread).

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
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipemedic.stack import free_port

DURATION = os.environ.get("BENCH_INTAKE_DURATION", "4s")
PACED_DURATION = "3s"
CONNECTIONS = int(os.environ.get("BENCH_INTAKE_CONNECTIONS", "32"))
ROUNDS = int(os.environ.get("BENCH_INTAKE_ROUNDS", "3"))
STORE_OPTIONS = os.environ.get("BENCH_INTAKE_STORE_OPTIONS", "")
PACE_MS = 10  # wrk delay() between a response and the next request on a connection

_BARE_APP = textwrap.dedent(
    """
    import json, sys
    from aiohttp import web
    async def alerts(request):
        json.loads(await request.read())
        return web.json_response({"status": "ok"})
    async def ready(request):
        return web.Response(text="OK")
    app = web.Application()
    app.router.add_post("/alerts", alerts)
    app.router.add_get("/-/ready", ready)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
    """
)

_LUA = textwrap.dedent(
    """
    local n_alerts = tonumber(os.getenv("BENCH_ALERTS") or "1")
    local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
    local run = os.getenv("BENCH_RUN") or "r"
    local threads = 0
    function setup(thread)
      threads = threads + 1
      thread:set("tid", threads)
    end
    local counter = 0
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    local function alert(pipeline, id, i)
      return '{"status":"firing","labels":{"alertname":"PipelineHighErrorRate",' ..
        '"pipeline":"' .. pipeline .. '","severity":"critical","sev":"SEV2",' ..
        '"category":"connectivity","team":"data-platform","instance":"exporter:9108",' ..
        '"job":"pipemedic-exporter","shard":"' .. i .. '"},' ..
        '"annotations":{"summary":"Error ratio of ' .. pipeline .. ' above 5%",' ..
        '"description":"pipeline:error_ratio:rate5m is 0.073 over the last 5m",' ..
        '"runbook_url":"https://runbooks.pipemedic.dev/pipelines#high-error-rate"},' ..
        '"startsAt":"2026-01-01T12:00:00.000Z","endsAt":"0001-01-01T00:00:00Z",' ..
        '"generatorURL":"http://prometheus:9090/graph?g0.expr=pipeline%3Aerror_ratio",' ..
        '"fingerprint":"' .. id .. string.format("%04d", i) .. '"}'
    end
    request = function()
      counter = counter + 1
      local id = run .. "-" .. tid .. "-" .. counter .. "-"
      local pipeline = "etl_" .. run .. "_" .. tid .. "_" .. counter
      local parts = {}
      for i = 1, n_alerts do parts[i] = alert(pipeline, id, i) end
      local body = '{"version":"4","groupKey":"{}:{pipeline=\\\\"' .. id .. '\\\\"}",' ..
        '"truncatedAlerts":0,"status":"firing","receiver":"pipemedic",' ..
        '"groupLabels":{"pipeline":"' .. pipeline .. '"},"commonLabels":{},' ..
        '"commonAnnotations":{},"externalURL":"http://alertmanager:9093",' ..
        '"alerts":[' .. table.concat(parts, ",") .. ']}'
      return wrk.format(nil, "/alerts", nil, body)
    end
    function delay()
      return delay_ms
    end
    """
)


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready")


def _start_bare(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    script = workdir / "bare.py"
    script.write_text(_BARE_APP)
    proc = subprocess.Popen([sys.executable, str(script), str(port)], cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc)
    return proc, url


def _start_receiver(workdir: Path, run: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    folder = workdir / run
    folder.mkdir()
    (folder / "receiver.yml").write_text(
        f"store: sqlite:///{folder / 'receiver.db'}{STORE_OPTIONS}\n"
        f"prometheus_url: http://127.0.0.1:{free_port()}\n"
        "queue: {max_depth: 10000000}\n"
        f"workers: {{concurrency: {workers}}}\n"
        "recovery: {dry_run: true}\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipemedic.cli",
            "--log-level",
            "warning",
            "receiver",
            "--listen",
            f"127.0.0.1:{port}",
            "--config",
            "receiver.yml",
        ],
        cwd=folder,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc)
    return proc, url


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _wrk(
    url: str,
    script: Path,
    alerts: int,
    run: str,
    connections: int,
    delay_ms: float = 0,
    duration: str = DURATION,
) -> dict[str, float]:
    env = {
        **os.environ,
        "BENCH_ALERTS": str(alerts),
        "BENCH_RUN": run,
        "BENCH_DELAY_MS": str(int(delay_ms)),
    }
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{duration}",
            "--latency",
            "-s",
            str(script),
            url + "/alerts",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": _ms(lat["50"]),
        "p99": _ms(lat["99"]),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def _maximum(url: str, script: Path, alerts: int, run: str) -> float:
    """Return requests/s with ``CONNECTIONS`` unpaced connections; fail on any error."""
    full = _wrk(url, script, alerts, run, CONNECTIONS)
    if full["non2xx"] or full["socket_errors"]:
        raise RuntimeError(f"errors under load at {url}: {full}")
    return full["rps"]


def _paced(url: str, script: Path, alerts: int, run: str, target: float) -> dict[str, float]:
    """Aim at ``target`` req/s with paced connections; calibrate once, return the 2nd run."""
    conns = max(1, round(target * PACE_MS / 1000))
    first = _wrk(url, script, alerts, run + "c", conns, PACE_MS, PACED_DURATION)
    conns = max(1, round(conns * target / max(first["rps"], 1.0)))
    second = _wrk(url, script, alerts, run + "p", conns, PACE_MS, PACED_DURATION)
    if second["non2xx"] or second["socket_errors"]:
        raise RuntimeError(f"errors under paced load at {url}: {second}")
    return {**second, "connections": float(conns)}


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}..{max(values):.2f}"


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="pipemedic-bench-intake-"))
    script = workdir / "notify.lua"
    script.write_text(_LUA)
    modes = {"intake-only": 0, "with-workers": 4}
    bare_rps: dict[int, list[float]] = {}
    rps: dict[tuple[int, str], list[float]] = {}
    ratios: dict[tuple[int, str], list[float]] = {}
    paced: dict[tuple[int, str], dict[str, float]] = {}
    started = time.monotonic()
    try:
        bare, bare_url = _start_bare(workdir)
        try:
            for alerts in (1, 20):
                for round_ in range(ROUNDS):
                    run = f"a{alerts}r{round_}"
                    bare_now = _maximum(bare_url, script, alerts, run + "bare")
                    bare_rps.setdefault(alerts, []).append(bare_now)
                    for mode, workers in modes.items():
                        proc, url = _start_receiver(workdir, f"{run}{mode}", workers)
                        try:
                            got = _maximum(url, script, alerts, f"{run}{mode}")
                            if round_ == ROUNDS - 1:  # latency at half the median maximum
                                target = statistics.median([*rps.get((alerts, mode), []), got])
                                paced[(alerts, mode)] = _paced(
                                    url, script, alerts, f"{run}{mode}half", target / 2
                                )
                        finally:
                            _stop(proc)
                        rps.setdefault((alerts, mode), []).append(got)
                        ratios.setdefault((alerts, mode), []).append(got / bare_now)
        finally:
            _stop(bare)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"wrk -t2 -c{CONNECTIONS} -d{DURATION}, {ROUNDS} rounds (bare, intake-only, "
        f"with-workers per round); store sqlite{STORE_OPTIONS or ' (synchronous=FULL)'}; "
        f"latency: wrk delay({PACE_MS} ms) pacing, connections calibrated to half the "
        f"median maximum; {time.monotonic() - started:.0f} s"
    )
    for (alerts, mode), values in rps.items():
        bare_med = statistics.median(bare_rps[alerts])
        med = statistics.median(values)
        r = ratios[(alerts, mode)]
        p = paced[(alerts, mode)]
        print(
            f"alerts/notification={alerts:2d} {mode:12s} bare={bare_med:7.0f} req/s  "
            f"receiver={med:7.0f} req/s ({med * alerts:7.0f} alerts/s)  "
            f"ratio median={statistics.median(r):.2f}x spread={_spread(r)}  "
            f"paced at {p['rps']:.0f} req/s = {p['rps'] / med:.2f}x of max "
            f"({p['connections']:.0f} conns): p50={p['p50']:.1f} ms p99={p['p99']:.1f} ms"
        )


if __name__ == "__main__":
    main()
