"""Drive HTTP servers with wrk for the benchmarks: servers, Lua scripts, wrk, spreads.

Shared so that every benchmark measures its baseline and pipemedic the same
way: the same bare aiohttp app as the ceiling, the same Alertmanager-shaped
notifications, the same wrk invocation and output parsing, and the same
start, readiness and stop of the server processes (``pipemedic.stack``'s
``ManagedServer``: a loopback port, a log file, ``/-/ready`` awaited).

Run as a script it is the bare app:
``python bench/_load.py PORT PATH ANSWER_JSON {bytes|request}``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipemedic.stack import ManagedServer, free_port

__all__ = [
    "BareApp",
    "Receiver",
    "WrkResult",
    "notification_lua",
    "post_lua",
    "require_wrk",
    "run_wrk",
    "spread",
]


# -- servers -----------------------------------------------------------------
class BareApp(ManagedServer):
    """The ceiling: an aiohttp app that only parses each JSON body and answers JSON.

    ``parse="bytes"`` runs ``json.loads(await request.read())``, ``"request"``
    ``await request.json()`` (the exporter benchmark's baseline since its start),
    ``"msgspec"`` ``msgspec.json.decode(await request.read())`` (untyped; the
    stricter ceiling for a receiver that decodes with msgspec).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        path: str = "/alerts",
        answer: str = '{"status": "ok"}',
        parse: str = "bytes",
    ) -> None:
        super().__init__(workdir)
        self.path, self.answer, self.parse = path, answer, parse

    def argv(self) -> Sequence[str]:
        return [sys.executable, __file__, str(self.port), self.path, self.answer, self.parse]


class Receiver(ManagedServer):
    """``pipemedic receiver`` on ``store`` with dry-run recovery and an unreachable Prometheus.

    ``workers=None`` keeps the configured default concurrency; ``0`` is intake only.
    """

    def __init__(self, folder: Path, store: str, workers: int | None = None) -> None:
        super().__init__(folder)
        self.store, self.workers = store, workers

    def prepare(self) -> None:
        workers = "" if self.workers is None else f"workers: {{concurrency: {self.workers}}}\n"
        (self.workdir / "receiver.yml").write_text(
            f"store: {json.dumps(self.store)}\n"
            f"prometheus_url: http://127.0.0.1:{free_port()}\n"
            "queue: {max_depth: 10000000}\n"
            f"{workers}"
            "recovery: {dry_run: true}\n"
        )

    def argv(self) -> Sequence[str]:
        return [
            sys.executable,
            "-m",
            "pipemedic.cli",
            "--log-level",
            "warning",
            "receiver",
            "--listen",
            self.address,
            "--config",
            str(self.workdir / "receiver.yml"),
        ]

    def stop(self, timeout: float = 15.0) -> None:
        """Stop like any server, but give in-flight work 15 s to drain."""
        super().stop(timeout)


# -- wrk scripts -------------------------------------------------------------
_NOTIFY_LUA = """\
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
  local labels, annotations, source = "", '"summary":"Error ratio above 5%"', ""
  if detailed then
    labels = ',"instance":"exporter:9108","job":"pipemedic-exporter","shard":"' .. i .. '"'
    annotations = '"summary":"Error ratio of ' .. pipeline .. ' above 5%",' ..
      '"description":"pipeline:error_ratio:rate5m is 0.073 over the last 5m",' ..
      '"runbook_url":"https://runbooks.pipemedic.dev/pipelines#high-error-rate"'
    source = "http://prometheus:9090/graph?g0.expr=pipeline%3Aerror_ratio"
  end
  return '{"status":"firing","labels":{"alertname":"PipelineHighErrorRate",' ..
    '"pipeline":"' .. pipeline .. '","severity":"critical","sev":"SEV2",' ..
    '"category":"connectivity","team":"data-platform"' .. labels .. '},' ..
    '"annotations":{' .. annotations .. '},' ..
    '"startsAt":"2026-01-01T12:00:00.000Z","endsAt":"0001-01-01T00:00:00Z",' ..
    '"generatorURL":"' .. source .. '",' ..
    '"fingerprint":"' .. id .. string.format("%04d", i) .. '"}'
end
request = function()
  counter = counter + 1
  local id = run .. "-" .. tid .. "-" .. counter .. "-"
  local pipeline, group = "etl_" .. run .. "_" .. tid .. "_" .. counter, id
  if pipelines > 0 then
    pipeline = "etl_" .. (counter % pipelines)
    group = pipeline
  end
  local parts = {}
  for i = 1, n_alerts do parts[i] = alert(pipeline, id, i) end
  local body = '{"version":"4","groupKey":"{}:{pipeline=\\\\"' .. group .. '\\\\"}",' ..
    '"truncatedAlerts":0,"status":"firing","receiver":"pipemedic",' ..
    '"groupLabels":{"pipeline":"' .. pipeline .. '"},"commonLabels":{},' ..
    '"commonAnnotations":{},"externalURL":"http://alertmanager:9093",' ..
    '"alerts":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format(nil, "/alerts", nil, body)
end
"""

_DELAY_LUA = """\
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
function delay()
  return delay_ms
end
"""


def notification_lua(
    alerts: int = 1, *, pipelines: int = 0, detailed: bool = True, paced: bool = False
) -> str:
    """Return a wrk script posting a new Alertmanager notification of ``alerts`` alerts per request.

    Every alert has a new fingerprint (from ``BENCH_RUN``, the thread and a
    counter), so every request is a durable insert. ``pipelines=0``: every
    request is a new pipeline and group; ``n``: the pipelines cycle through
    ``etl_0`` .. ``etl_{n-1}``. ``detailed``: the labels and annotations of a
    real exporter alert (instance, job, shard, description, runbook, source
    URL), else the five routing labels and a summary. ``paced``: wrk waits
    ``BENCH_DELAY_MS`` between a response and the connection's next request
    (a ``delay()`` hook costs wrk a timer per request even at 0, so only when asked).
    """
    constants = (
        f"local n_alerts = {alerts}\n"
        f"local pipelines = {pipelines}\n"
        f"local detailed = {'true' if detailed else 'false'}\n"
    )
    return constants + _NOTIFY_LUA + (_DELAY_LUA if paced else "")


def post_lua(body: str) -> str:
    """Return a wrk script posting the same JSON ``body`` on every request."""
    literal = body.replace("\\", "\\\\").replace('"', '\\"')
    return (
        'wrk.method = "POST"\n'
        f'wrk.body = "{literal}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )


# -- running wrk -------------------------------------------------------------
@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reports."""

    rps: float  # Requests/sec
    requests: int  # requests completed
    p50_ms: float
    p99_ms: float
    non2xx: int  # "Non-2xx or 3xx responses"
    socket_errors: str  # wrk's "Socket errors:" line, "" when there were none
    output: str

    def raise_for_errors(self, url: str, *, socket_errors: bool = False) -> None:
        """Raise when a response was not 2xx/3xx (or, if asked, a socket failed)."""
        if self.non2xx or (socket_errors and self.socket_errors):
            raise RuntimeError(f"errors under load at {url}:\n{self.output}")


def cpu_seconds(pid: int) -> float:
    """Return user+system CPU time of a process (Linux /proc), immune to other load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_with_cpu(
    server: ManagedServer, path: str, script: Path, seconds: int
) -> tuple[float, float]:
    """Load ``server``'s ``path`` with wrk; return (requests/s, server CPU microseconds each)."""
    assert server.proc is not None
    before = cpu_seconds(server.proc.pid)
    url = server.url + path
    result = run_wrk(url, script, threads=1, connections=32, duration=f"{seconds}s")
    result.raise_for_errors(url)
    cpu = cpu_seconds(server.proc.pid) - before
    return result.rps, cpu / result.requests * 1e6


def require_wrk() -> None:
    """Exit with a hint when wrk is not installed."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk)")


def run_wrk(
    url: str,
    script: Path,
    *,
    threads: int,
    connections: int,
    duration: str,
    env: Mapping[str, str] | None = None,
) -> WrkResult:
    """Run wrk against ``url`` with a Lua ``script`` and ``env`` for it; return what it reports."""
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    if rps is None or total is None or "50" not in lat or "99" not in lat:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        p50_ms=_ms(lat["50"]),
        p99_ms=_ms(lat["99"]),
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=errors.group(1) if errors else "",
        output=out,
    )


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


# -- reporting ---------------------------------------------------------------
def spread(values: Sequence[float], digits: int = 2) -> str:
    """Return ``min..max`` of ``values`` with ``digits`` decimals."""
    return f"{min(values):.{digits}f}..{max(values):.{digits}f}"


# -- the bare app, when run as a script --------------------------------------
def _serve_bare(port: int, path: str, answer: str, parse: str) -> None:
    """Serve ``path`` (parse the JSON body, answer ``answer``) and ``/-/ready`` on ``port``."""
    from aiohttp import web
    from msgspec.json import decode as msgspec_decode

    reply = json.loads(answer)

    async def from_bytes(request: web.Request) -> web.Response:
        json.loads(await request.read())
        return web.json_response(reply)

    async def from_request(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response(reply)

    async def from_msgspec(request: web.Request) -> web.Response:
        msgspec_decode(await request.read())
        return web.json_response(reply)

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="OK")

    handlers = {"bytes": from_bytes, "request": from_request, "msgspec": from_msgspec}
    app = web.Application()
    app.router.add_post(path, handlers[parse])
    app.router.add_get("/-/ready", ready)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    _serve_bare(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
