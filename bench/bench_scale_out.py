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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipemedic.stack import PostgresServer, free_port

DURATION = os.environ.get("BENCH_SCALE_OUT_DURATION", "6s")
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
    local run = os.getenv("BENCH_RUN") or "r"
    local threads = 0
    function setup(thread)
      threads = threads + 1
      thread:set("tid", threads)
    end
    local counter = 0
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    request = function()
      counter = counter + 1
      local id = run .. "-" .. tid .. "-" .. counter
      local pipeline = "etl_" .. (counter % 50)
      local body = '{"version":"4","status":"firing","receiver":"pipemedic",' ..
        '"groupKey":"{}:{pipeline=\\\\"' .. pipeline .. '\\\\"}","truncatedAlerts":0,' ..
        '"groupLabels":{"pipeline":"' .. pipeline .. '"},"commonLabels":{},' ..
        '"commonAnnotations":{},"externalURL":"http://alertmanager:9093",' ..
        '"alerts":[{"status":"firing","labels":{"alertname":"PipelineHighErrorRate",' ..
        '"pipeline":"' .. pipeline .. '","severity":"critical","sev":"SEV2",' ..
        '"category":"connectivity","team":"data-platform"},' ..
        '"annotations":{"summary":"Error ratio above 5%"},' ..
        '"startsAt":"2026-01-01T12:00:00.000Z","endsAt":"0001-01-01T00:00:00Z",' ..
        '"generatorURL":"","fingerprint":"' .. id .. '"}]}'
      return wrk.format(nil, "/alerts", nil, body)
    end
    """
)


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _start_bare(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _BARE_APP, str(port)], cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc)
    return proc, url


def _start_receiver(folder: Path, store: str, name: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = folder / f"{name}.yml"
    config.write_text(
        f'store: "{store}"\n'
        f"prometheus_url: http://127.0.0.1:{free_port()}\n"
        "queue: {max_depth: 10000000}\n"
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
            str(config),
        ],
        cwd=folder,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc)
    return proc, url


def _wrk(url: str, script: Path, run: str, threads: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{DURATION}", "-s", str(script), url],
        env={**os.environ, "BENCH_RUN": run},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url} answered {non2xx.group(1)} non-2xx responses:\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    return float(found.group(1))


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


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="pipemedic-bench-scale-out-"))
    script = workdir / "notify.lua"
    script.write_text(_LUA)
    results: dict[str, list[float]] = {"bare": [], "sqlite": [], "postgresql": [], "2 replicas": []}
    try:
        with PostgresServer() as pg:
            bare, bare_url = _start_bare(workdir)
            try:
                for round_ in range(ROUNDS):
                    setups: dict[str, Callable[[], list[tuple[subprocess.Popen[bytes], str]]]] = {
                        "sqlite": lambda r=round_: [
                            _start_receiver(workdir, f"sqlite:///{workdir}/r{r}.db", f"s{r}")
                        ],
                        "postgresql": lambda r=round_: [
                            _start_receiver(workdir, pg.create_database(f"one_{r}"), f"p{r}")
                        ],
                        "2 replicas": lambda r=round_: [
                            _start_receiver(workdir, dsn, f"two{r}_{n}")
                            for dsn in [pg.create_database(f"two_{r}")]
                            for n in (1, 2)
                        ],
                    }
                    results["bare"].append(_measure([bare_url], script, f"b{round_}"))
                    for name, setup in setups.items():
                        servers = setup()
                        try:
                            urls = [url for _, url in servers]
                            results[name].append(_measure(urls, script, f"{name[0]}{round_}"))
                        finally:
                            for proc, _ in servers:
                                _stop(proc)
            finally:
                _stop(bare)
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
