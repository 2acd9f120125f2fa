"""WAL checkpoints off the commit path: a background thread with its own connection.

With SQLite's default ``wal_autocheckpoint`` the connection whose commit
pushes the WAL past 1000 pages runs the checkpoint itself, inside that commit:
it copies the WAL into the database file and fsyncs it, 10..17 ms in which
every request waiting on that commit waits too (the receiver's p99 tail). So
the writer turns auto-checkpointing off and this thread checkpoints instead:

* every ``interval`` seconds a PASSIVE checkpoint copies what the WAL holds
  into the database while the writer keeps committing (PASSIVE never takes the
  writer's lock and never waits);
* when the WAL still holds more than ``restart_frames`` frames afterwards (a
  steady stream of commits keeps SQLite from starting the WAL over, since new
  frames arrive during every PASSIVE pass), a RESTART checkpoint follows: it
  waits for the writer's lock and copies only the few frames added since the
  PASSIVE pass, so the writer pauses briefly and the next commit writes the
  WAL from its start again. The WAL stays bounded;
* ``stop()`` runs a TRUNCATE checkpoint (the WAL file shrinks to nothing);
* both connections set ``journal_size_limit`` (``WAL_SIZE_LIMIT_BYTES``):
  when the WAL starts over, SQLite truncates the file to that size, so a
  burst that grew it does not keep the disk space for ever.

A failing checkpoint (a full disk) is logged once when it starts failing and
once when it works again, not at every pass. The writer's own disk-full gate
(``groupcommit``) stops new commits from taking the room a checkpoint needs.

A RESTART holds the writer's lock while it waits for readers of the old WAL
(another process reading the file), so its busy timeout is short (100 ms): a
reader delays the next RESTART, never the receiver's commits by seconds.

Durability is SQLite's: a checkpoint copies frames that are already committed
and fsynced in the WAL, fsyncs the database file (``synchronous=FULL`` here
too) and only then lets a writer reuse the WAL. A crash at any point of it
leaves the WAL to be replayed on the next open.

Example::

    checkpointer = Checkpointer("receiver.db")
    checkpointer.start()
    ...
    checkpointer.stop()   # TRUNCATE checkpoint, close
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["WAL_SIZE_LIMIT_BYTES", "CheckpointObserver", "CheckpointResult", "Checkpointer"]

# What the WAL file is cut back to when it starts over (journal_size_limit).
WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """What one ``PRAGMA wal_checkpoint`` reported."""

    mode: str  # PASSIVE, RESTART or TRUNCATE
    busy: bool  # it could not finish (the writer held its lock past the timeout)
    wal_frames: int  # frames in the WAL (-1 when it is not in WAL mode)
    checkpointed: int  # frames copied into the database so far
    seconds: float


CheckpointObserver = Callable[[CheckpointResult], None]
"""Called after each checkpoint that had frames to copy (from the checkpoint thread)."""


class Checkpointer:
    """Checkpoint one SQLite database in a thread of its own (see the module docstring)."""

    def __init__(
        self,
        path: str,
        *,
        interval: float = 0.1,
        restart_frames: int = WAL_SIZE_LIMIT_BYTES // 4096,
        busy_timeout_ms: int = 100,
        on_checkpoint: CheckpointObserver | None = None,
        name: str = "sqlite-checkpoint",
    ) -> None:
        self.path = path
        self.interval = interval
        self.restart_frames = restart_frames
        self.on_checkpoint = on_checkpoint
        self._busy_timeout_ms = busy_timeout_ms
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._conn: sqlite3.Connection | None = None

    def start(self) -> None:
        """Open the checkpoint connection and start the thread (the database must exist)."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA synchronous = FULL")  # fsync the database file after copying
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
        self._conn = conn
        self._thread.start()

    def stop(self) -> None:
        """End the thread, then TRUNCATE the WAL (after the writer closed) and close."""
        if self._conn is None:
            return
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        conn, self._conn = self._conn, None
        try:
            self._checkpoint(conn, "TRUNCATE")
        except sqlite3.Error as exc:
            log.warning("final WAL checkpoint of %s failed: %s", self.path, exc)
        finally:
            conn.close()

    def checkpoint_now(self) -> None:
        """Ask the thread for a checkpoint pass now instead of at the next interval."""
        self._wake.set()

    # the checkpoint thread -----------------------------------------------------
    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        failing = False
        while not self._stopping:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopping:
                return
            try:
                done = self._checkpoint(conn, "PASSIVE")
                if done.wal_frames > self.restart_frames:
                    self._checkpoint(conn, "RESTART")
            except sqlite3.Error as exc:  # e.g. disk full: the writer reports it too
                if not failing:
                    log.warning("WAL checkpoints of %s fail: %s", self.path, exc)
                failing = True
                continue
            if failing:
                log.warning("WAL checkpoints of %s work again", self.path)
                failing = False

    def _checkpoint(self, conn: sqlite3.Connection, mode: str) -> CheckpointResult:
        started = time.perf_counter()
        busy, frames, copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        result = CheckpointResult(
            mode, bool(busy), int(frames), int(copied), time.perf_counter() - started
        )
        if self.on_checkpoint is not None and result.wal_frames > 0:
            try:
                self.on_checkpoint(result)
            except Exception:  # an observer never stops checkpoints
                log.exception("checkpoint observer failed")
        return result
