"""How much of the intake gap is durable storage? The receiver with a store that keeps nothing.

A diagnostic next to ``bench_intake`` (not part of ``make bench``): in the same
run, alternating per round, wrk posts the same notifications (1 and 20 alerts,
every request a new group) to

* the bare aiohttp app that only ``json.loads`` the body (the goal's baseline),
* ``pipemedic receiver`` exactly as configured by ``bench_intake`` (intake only),
  but with its store replaced by :class:`MemoryStore`: a dict of idempotency
  keys, nothing written, 200 at once. This is the ceiling of everything the
  receiver does besides durable storage (aiohttp, auth, validation, models,
  idempotency, metrics),
* the same receiver on its real SQLite store (WAL, ``synchronous=FULL``, group
  commit, 200 after the commit).

Ratios are per round against that round's bare run; the median and the range
over rounds are printed. Run: ``.venv/bin/python -m bench.intake_ceiling``
(about 90 s; loopback only). ``MemoryStore`` loses everything at exit: it
exists only to measure, never to serve.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench._load import BareApp, Receiver, notification_lua, require_wrk, run_wrk, spread
from receiver.models import IngestResult, Notification

ROUNDS = 3
DURATION = "4s"
CONNECTIONS = 32


class MemoryStore:
    """The part of ``Store`` an intake-only receiver uses, in memory, durable never."""

    def __init__(self) -> None:
        self.keys: set[tuple[str, datetime | None, str]] = set()

    async def ingest(self, notification: Notification) -> IngestResult:
        new = 0
        for alert in notification.alerts:
            # the parsed time, not ``dedup_key``'s formatted one: formatting 20 times
            # costs ~40 us, which the SQLite store avoids (memoised) and a ceiling must too
            key = (alert.fingerprint, alert.starts_at, alert.status)
            if key not in self.keys:
                self.keys.add(key)
                new += 1
        return IngestResult(new, len(notification.alerts) - new)

    async def queue_depth(self) -> int:
        return 0

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class MemoryReceiver(Receiver):
    """``Receiver``'s configuration and start-up, on :class:`MemoryStore`."""

    def argv(self) -> Sequence[str]:
        return [sys.executable, "-m", "bench.intake_ceiling", "--serve", self.address]

    def popen_kwargs(self) -> dict[str, Any]:
        # it runs in its work folder: the repository must be importable from there
        root = str(Path(__file__).resolve().parent.parent)
        return {"env": {**os.environ, "PYTHONPATH": root}}


def _serve(address: str) -> None:
    """Run the receiver app like ``pipemedic receiver`` does, on a ``MemoryStore``."""
    import gc

    from aiohttp import web

    from pipemedic.address import split_host_port
    from receiver.app import create_app
    from receiver.config import load_config

    async def open_memory(url: str, **_: Any) -> Any:
        return MemoryStore()

    app = create_app(load_config(Path("receiver.yml")), store_opener=open_memory)
    host, port = split_host_port(address)
    sys.setswitchinterval(0.0005)  # as receiver/cli.py
    gc.collect()
    gc.freeze()
    web.run_app(app, host=host, port=port, access_log=None, print=None)


def main() -> None:
    require_wrk()
    work = Path(tempfile.mkdtemp(prefix="pipemedic-intake-ceiling-"))
    print(
        f"wrk -t2 -c{CONNECTIONS} -d{DURATION}, {ROUNDS} rounds; bare json app vs the receiver "
        "on a store that keeps nothing vs the receiver on SQLite (synchronous=FULL)",
        flush=True,
    )
    for alerts in (1, 20):
        script = work / f"notify-{alerts}.lua"
        script.write_text(notification_lua(alerts))
        rps: dict[str, list[float]] = {"bare": [], "memory": [], "sqlite": []}
        for r in range(ROUNDS):
            servers = {
                "bare": BareApp(work / f"bare-{alerts}-{r}"),
                "memory": MemoryReceiver(work / f"memory-{alerts}-{r}", "sqlite:///unused.db", 0),
                "sqlite": Receiver(work / f"sqlite-{alerts}-{r}", "sqlite:///intake.db", 0),
            }
            for name, server in servers.items():
                with server:
                    result = run_wrk(
                        server.url + "/alerts",
                        script,
                        threads=2,
                        connections=CONNECTIONS,
                        duration=DURATION,
                        env={"BENCH_RUN": f"{name}{alerts}x{r}"},
                    )
                if result.non2xx or result.socket_errors:
                    raise RuntimeError(f"{name}: {result.non2xx} non-2xx, {result.socket_errors}")
                rps[name].append(result.rps)
        for name in ("memory", "sqlite"):
            ratios = [x / b for x, b in zip(rps[name], rps["bare"], strict=True)]
            print(
                f"{alerts:>2} alert(s) {name:>6}: {statistics.median(ratios):.2f}x of bare "
                f"({spread(ratios)}); req/s {[round(x) for x in rps[name]]} vs bare "
                f"{[round(x) for x in rps['bare']]}",
                flush=True,
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        _serve(sys.argv[2])
    else:
        main()
