"""Benchmark POST /alerts: the receiver (durable SQLite, group commit) vs a bare aiohttp app.

wrk posts realistic Alertmanager notifications, each a new group with new
fingerprints (a Lua script builds every body), with 1 and with 20 alerts per
notification. Runs alternate bare / receiver in the same session; the ratio
of requests/s is the result. Latency at half the maximum rate: wrk2 is not
available, so the same Lua script paces each connection with wrk's
``delay()`` hook (a fixed-rate approximation without coordinated-omission
correction) at half the receiver's measured maximum, and wrk reports p50/p99.

Run: ``.venv/bin/python -m bench bench_intake`` (about 2 minutes, loopback only).
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

DURATION = os.environ.get("BENCH_INTAKE_DURATION", "6s")
CONNECTIONS = 32
ROUNDS = 2

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
        f"store: sqlite:///{folder / 'receiver.db'}\n"
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
    url: str, script: Path, alerts: int, run: str, connections: int, delay_ms: float = 0
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
            "-t2",
            f"-c{connections}",
            f"-d{DURATION}",
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


def _measure(url: str, script: Path, alerts: int, run: str) -> dict[str, float]:
    """Maximum rate with 32 connections, then latency at about half of it."""
    full = _wrk(url, script, alerts, run + "max", CONNECTIONS)
    if full["non2xx"] or full["socket_errors"]:
        raise RuntimeError(f"receiver errors under load: {full}")
    paced_conns = 4
    delay = 1000.0 * paced_conns / (full["rps"] / 2)
    half = _wrk(url, script, alerts, run + "half", paced_conns, delay)
    return {
        "rps": full["rps"],
        "p50": half["p50"],
        "p99": half["p99"],
        "rate": half["rps"] / full["rps"],
    }


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="pipemedic-bench-intake-"))
    script = workdir / "notify.lua"
    script.write_text(_LUA)
    modes = {"intake-only": 0, "with-workers": 4}
    bare_rps: dict[int, list[float]] = {}
    found: dict[tuple[int, str], list[dict[str, float]]] = {}
    try:
        bare, bare_url = _start_bare(workdir)
        try:
            for alerts in (1, 20):
                for round_ in range(ROUNDS):
                    run = f"a{alerts}r{round_}"
                    bare_rps.setdefault(alerts, []).append(
                        _wrk(bare_url, script, alerts, run + "bare", CONNECTIONS)["rps"]
                    )
                    for mode, workers in modes.items():
                        proc, url = _start_receiver(workdir, f"{run}{mode}", workers)
                        try:
                            found.setdefault((alerts, mode), []).append(
                                _measure(url, script, alerts, f"{run}{mode}")
                            )
                        finally:
                            _stop(proc)
        finally:
            _stop(bare)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrk -t2 -c{CONNECTIONS} -d{DURATION}; latency: 4 connections paced by wrk delay()")
    for (alerts, mode), rows in found.items():
        bare_med = statistics.median(bare_rps[alerts])
        rps = statistics.median(r["rps"] for r in rows)
        print(
            f"alerts/notification={alerts:2d} {mode:12s} bare={bare_med:7.0f} req/s  "
            f"receiver={rps:7.0f} req/s ({rps * alerts:7.0f} alerts/s)  "
            f"ratio={rps / bare_med:.2f}x  at ~{statistics.median(r['rate'] for r in rows):.2f}x "
            f"of max: p50={statistics.median(r['p50'] for r in rows):.1f} ms "
            f"p99={max(r['p99'] for r in rows):.1f} ms"
        )


if __name__ == "__main__":
    main()
