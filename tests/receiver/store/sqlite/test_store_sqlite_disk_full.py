"""A full disk: 503 while full, writes resume once space is back (no restart), one-line start error.

The volume is a real 8 MiB tmpfs mounted for the test (the suite runs as root,
as CI does); a filler file takes most of it so the receiver's own writes fill
the rest, and deleting the filler is "space freed".
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from core_helpers import alert_doc, config, notification_doc

from receiver.app import create_app
from receiver.store.sqlite.checkpoint import WAL_SIZE_LIMIT_BYTES

HAMMER = 25
_PAD = "x" * 2000  # a long label: each notification below writes ~20 KiB


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """Mount an 8 MiB tmpfs (a disk that can fill up) and unmount it afterwards."""
    mount = tmp_path / "vol"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"mounting a tmpfs needs root: {done.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(path: Path) -> None:
    """Write to ``path`` until the volume has no space left."""
    with path.open("ab") as out:
        try:
            while True:
                out.write(b"x" * 65536)
                out.flush()
        except OSError:
            pass


async def test_writes_resume_once_space_is_freed_without_a_restart(volume: Path) -> None:
    filler = volume / "filler"
    filler.write_bytes(b"x" * 1_200_000)
    # intake only: no worker writes incidents meanwhile, so what fills the disk is the test's
    app = create_app(config(volume, workers={"concurrency": 0}))
    async with TestClient(TestServer(app)) as client:
        statuses = []
        for i in range(400):
            body = notification_doc(
                *(alert_doc(f"p{i}_{k}", labels={"pad": _PAD}) for k in range(10))
            )
            response = await client.post("/alerts", json=body)
            statuses.append(response.status)
            if response.status != 200:
                break
        assert statuses[-1] == 503, "the disk never filled: the test proves nothing"
        assert set(statuses[:-1]) == {200}

        filler.unlink()
        # Alertmanager retries at once: big writes arrive before any checkpoint ran
        for i in range(HAMMER):
            body = notification_doc(
                *(alert_doc(f"h{i}_{k}", labels={"pad": _PAD}) for k in range(10))
            )
            response = await client.post("/alerts", json=body)
            assert response.status in (200, 503)
        accepted = False
        for i in range(200):  # the writer retries its checkpoint every full_retry_seconds
            response = await client.post("/alerts", json=notification_doc(alert_doc(f"q{i}")))
            if response.status == 200:
                accepted = True
                break
            assert response.status == 503
            await asyncio.sleep(0.05)
        assert accepted, "the receiver never recovered from the full disk"
    # the WAL was emptied at close; while it ran it was cut back to the limit on restart
    wal = volume / "receiver.db-wal"
    assert not wal.exists() or wal.stat().st_size <= WAL_SIZE_LIMIT_BYTES


def test_starting_on_a_full_disk_is_one_line_and_no_traceback(volume: Path) -> None:
    cfg = volume.parent / "receiver.yml"
    cfg.write_text(
        f"store: sqlite:///{volume / 'receiver.db'}\nprometheus_url: http://127.0.0.1:9\n"
    )
    _fill(volume / "filler")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipemedic",
            "receiver",
            "--config",
            str(cfg),
            "--listen",
            "127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("pipemedic receiver:")]
    assert len(errors) == 1, done.stderr
    assert "receiver.db" in errors[0]
