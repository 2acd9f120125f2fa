"""WAL checkpoints in their own thread: a bounded WAL, and no loss when killed mid-checkpoint."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from core_helpers import alert_doc, notification_doc

from receiver.models import Notification
from receiver.store.sqlite.checkpoint import CheckpointResult
from receiver.store.sqlite.store import SqliteStore

_BIG = "x" * 4000  # a long annotation: each row fills about one 4 KiB page


def _notification(round_: int, i: int, alerts: int = 4) -> Notification:
    docs = []
    for k in range(alerts):
        doc = alert_doc(f"p{i}", fingerprint=f"{round_:04x}{i:06x}{k:06x}")
        doc["annotations"]["description"] = _BIG
        docs.append(doc)
    return Notification.from_json(notification_doc(*docs))


def _wal_bytes(db: Path) -> int:
    wal = Path(f"{db}-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_a_long_run_of_ingests_keeps_the_wal_bounded(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seen: list[CheckpointResult] = []
    store = await SqliteStore.open(
        db, checkpoint_interval=0.01, checkpoint_restart_frames=64, on_checkpoint=seen.append
    )
    rounds, per_round = 12, 100  # 12 x 400 rows of ~4 KiB: ~20 MB written in all
    largest = 0
    try:
        for r in range(rounds):
            results = await asyncio.gather(
                *(store.ingest(_notification(r, i)) for i in range(per_round))
            )
            assert sum(x.accepted for x in results) == per_round * 4
            largest = max(largest, _wal_bytes(db))
            # between rounds, wait (generous deadline) until a checkpoint copied everything
            # the round wrote, so that the next commit starts the WAL over
            mark = len(seen)
            deadline = time.monotonic() + 30
            while not any(c.wal_frames == c.checkpointed and not c.busy for c in seen[mark:]):
                assert time.monotonic() < deadline, "no complete checkpoint within 30 s"
                await asyncio.sleep(0.01)
        written = db.stat().st_size
        # without checkpoints the WAL would hold every page written (> the database itself)
        assert written > 16 * 2**20
        assert largest < written / 4, (largest, written)
        assert await store.event_counts() == {"pending": rounds * per_round * 4, "processed": 0}
    finally:
        await store.close()
    assert _wal_bytes(db) == 0  # TRUNCATE at close (or the WAL file removed)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == rounds * per_round * 4


async def test_the_writer_does_not_checkpoint_itself(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    try:

        def pragma(conn: sqlite3.Connection) -> int:
            return int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

        assert await store._writer.submit(pragma) == 0
    finally:
        await store.close()


# The child ingests without pause and prints every acknowledged fingerprint; its
# checkpointer runs back to back (interval 0) with a tiny restart threshold, so it
# is inside a PASSIVE or RESTART checkpoint nearly all the time.
_CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    sys.path[:0] = {tests!r}
    from test_store_sqlite_checkpoint import _notification
    from receiver.store.sqlite.store import SqliteStore

    async def main():
        store = await SqliteStore.open(
            {db!r},
            checkpoint_interval=0.0,
            checkpoint_restart_frames=16,
            on_checkpoint=lambda c: os.write(1, ("ckpt " + c.mode + "\\n").encode()),
        )
        r = {round_}
        while True:
            r += 1
            batch = [_notification(r, i, alerts=2) for i in range(20)]
            await asyncio.gather(*(store.ingest(n) for n in batch))
            for n in batch:  # one write per line group: the checkpoint thread writes too
                os.write(1, "".join("ack " + a.fingerprint + "\\n" for a in n.alerts).encode())

    asyncio.run(main())
    """
)


def _kill_mid_checkpoints(db: Path, round_: int, acked: list[str]) -> int:
    """Run the child until it acknowledged rows and checkpointed often; SIGKILL it."""
    here = Path(__file__).parent  # this module, and tests/receiver for core_helpers
    code = _CHILD.format(tests=[str(here), str(here.parents[1])], db=str(db), round_=round_)
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    checkpoints, buffered = 0, b""
    deadline = time.monotonic() + 60
    try:
        while checkpoints < 40 or len(acked) < 400:
            assert time.monotonic() < deadline, f"child too slow: {checkpoints} checkpoints"
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"child ended: {buffered.decode(errors='replace')[-2000:]}"
            *lines, buffered = (buffered + chunk).split(b"\n")
            for line in lines:
                if line.startswith(b"ack "):
                    acked.append(line[4:].decode())
                elif line.startswith(b"ckpt "):
                    checkpoints += 1
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    return checkpoints


def test_sigkill_during_checkpoints_keeps_every_acknowledged_row(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    acked: list[str] = []
    for cycle in range(3):  # kill, reopen (WAL recovery), kill again
        _kill_mid_checkpoints(db, cycle * 100_000, acked)
        assert Path(f"{db}-wal").exists()  # killed with a WAL to recover
        with sqlite3.connect(db) as conn:
            stored = {r[0] for r in conn.execute("SELECT fingerprint FROM events")}
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        missing = [fp for fp in acked if fp not in stored]
        assert not missing, f"cycle {cycle}: {len(missing)} acknowledged rows lost: {missing[:3]}"


async def test_checkpoints_show_on_the_receivers_metrics(tmp_path: Path) -> None:
    """open_store hands the checkpoints to ReceiverMetrics: /metrics shows them by mode."""
    from prometheus_client.parser import text_string_to_metric_families

    from receiver.metrics import ReceiverMetrics
    from receiver.store import open_store

    metrics = ReceiverMetrics()
    store = await open_store(
        f"sqlite:///{tmp_path}/m.db",
        on_commit=metrics.observe_commit,
        on_checkpoint=metrics.observe_checkpoint,
    )

    def passive_count() -> float:
        for family in text_string_to_metric_families(metrics.render().decode()):
            if family.name == "pipemedic_receiver_store_checkpoint_seconds":
                for sample in family.samples:
                    if sample.name.endswith("_count") and sample.labels["mode"] == "PASSIVE":
                        return sample.value
        return 0.0

    try:
        await asyncio.gather(*(store.ingest(_notification(0, i)) for i in range(20)))
        deadline = time.monotonic() + 30
        while passive_count() < 1:
            assert time.monotonic() < deadline, "no checkpoint observed within 30 s"
            await asyncio.sleep(0.02)
    finally:
        await store.close()
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    (frames,) = families["pipemedic_receiver_store_wal_frames"].samples
    assert frames.value >= 0  # set by the checkpoints above, never negative
