"""SIGKILL a real ``pipemedic receiver`` under load: every 200 survives and gets processed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from core_helpers import alert_doc, later, notification_doc

from pipemedic.stack import free_port

PIPEMEDIC = [sys.executable, "-m", "pipemedic.cli"]


def _start(workdir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*PIPEMEDIC, "receiver", "--listen", f"127.0.0.1:{port}", "--config", "receiver.yml"],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1):
                return proc
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"receiver did not become ready:\n{log.read_text()}")


def _load(port: int, acked: list[str], stop: threading.Event, worker: int) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        fp = f"{worker:04x}{n:012x}"
        doc = notification_doc(alert_doc(f"pipe{n % 7}", fingerprint=fp, starts=later(n)))
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/alerts",
            data=json.dumps(doc).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    acked.append(fp)
        except (urllib.error.URLError, OSError, ConnectionError):
            if stop.is_set():
                return
            time.sleep(0.01)


def _rows(db: Path) -> dict[str, float | None]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT fingerprint, processed_at FROM events").fetchall())
    finally:
        conn.close()


def test_sigkill_under_load_loses_no_acknowledged_notification(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "receiver.db"
    (tmp_path / "receiver.yml").write_text(
        f"store: sqlite:///{db}\n"
        f"prometheus_url: http://127.0.0.1:{free_port()}\n"  # nothing listens: diagnosis 'unknown'
        "workers: {concurrency: 1, poll_interval_seconds: 0.05}\n"
        "recovery: {dry_run: true}\n"
    )
    log = tmp_path / "receiver.log"
    proc = _start(tmp_path, port, log)
    acked: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_load, args=(port, acked, stop, i), daemon=True) for i in range(8)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-load, with requests in flight
    proc.wait(10)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 300, log.read_text()[-3000:]

    before = _rows(db)
    missing = [fp for fp in acked if fp not in before]
    assert not missing, f"{len(missing)} acknowledged notifications lost, e.g. {missing[:3]}"
    unprocessed = [fp for fp in acked if before[fp] is None]
    assert unprocessed, "the kill left no backlog; the test proves nothing"

    proc = _start(tmp_path, port, log)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows = _rows(db)
            if all(rows[fp] is not None for fp in acked):
                break
            time.sleep(0.2)
        rows = _rows(db)
        still = [fp for fp in acked if rows[fp] is None]
        assert not still, f"{len(still)} of {len(unprocessed)} left unprocessed after restart"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
