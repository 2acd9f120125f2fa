"""Group commit: one writer thread runs everyone's jobs in shared transactions.

SQLite allows one writer at a time and the durable part of a commit (the WAL
fsync) costs the same for one row as for a thousand. So every job goes to a
single thread that takes all jobs waiting at that moment, runs each inside
its own SAVEPOINT (one failing job does not spoil the others), commits once,
and only then resolves the callers' futures: an ``await`` on a write returns
after the commit that covers it.

Callers that write the same way (every webhook ingest) submit an *item* with
a shared ``merge`` function instead of a job: the writer takes all items
waiting when it is free and runs each ``merge`` once over them, so the batch
forms in the writer thread without a round trip through the event loop. A
merge writes with a single statement, so when it is alone in a batch it runs
in autocommit mode: BEGIN, the statement and the COMMIT are one call into
SQLite, one GIL release instead of three. Items submitted during one
iteration of the event loop are handed to the writer together, in one queue
entry: one cross-thread wake-up per batch, not one per request.

When a write fails because the disk is full (``SQLITE_FULL``), the writer
stops touching the database: every job fails at once with
``StoreUnavailable`` (503, so Alertmanager retries) and, at most every
``full_retry_seconds``, the writer first tries a TRUNCATE checkpoint. Only
when that succeeds (the WAL copied into the database and emptied) do writes
resume. Without this gate, new commits would keep appending to the WAL
whatever space was freed, and the checkpoint that could shrink it would never
find room: the receiver would stay at 503 until restarted.

Example::

    writer = GroupCommitWriter(connect)
    writer.start()
    rows = await writer.submit(lambda conn: conn.execute("SELECT 1").fetchall())
    result = await writer.submit_item(insert_many, row)  # insert_many(conn, [row, ...])
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from receiver.store.base import StoreUnavailable

__all__ = ["CommitObserver", "GroupCommitWriter", "Merge"]

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741
CommitObserver = Callable[[float, int], None]
"""Called with (commit seconds, operations in the batch) after each commit."""
Merge = Callable[[sqlite3.Connection, list[I]], Sequence[T]]
"""Write many callers' items with one statement; return one result per item, in order."""

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    weight: int = 1
    merge: Merge[Any, Any] | None = None
    item: Any = None


def _merged(merge: Merge[Any, Any], jobs: list[_Job]) -> _Job:
    """Return one job that runs ``merge`` over the items of ``jobs`` (as a SAVEPOINT unit)."""

    def run(conn: sqlite3.Connection) -> Sequence[Any]:
        results = merge(conn, [j.item for j in jobs])
        if len(results) != len(jobs):
            raise RuntimeError(f"merge gave {len(results)} results for {len(jobs)} items")
        return results

    return _Job(run, jobs[0].future, jobs[0].loop, len(jobs), merge, jobs)


def _group(batch: list[_Job]) -> list[_Job]:
    """Replace the item jobs of ``batch`` by one job per merge function (first place kept)."""
    if all(job.merge is None for job in batch):
        return batch
    groups: dict[Any, list[_Job]] = {}
    units: list[Any] = []
    for job in batch:
        if job.merge is None:
            units.append(job)
        elif job.merge in groups:
            groups[job.merge].append(job)
        else:
            units.append(job.merge)
            groups[job.merge] = [job]
    return [u if isinstance(u, _Job) else _merged(u, groups[u]) for u in units]


def _spread(done: list[tuple[_Job, Any, BaseException | None]]) -> list[Any]:
    """Turn the outcome of merged jobs back into one outcome per caller."""
    out: list[Any] = []
    for job, result, error in done:
        if job.merge is None:
            out.append((job, result, error))
        elif error is not None:
            out.extend((j, None, error) for j in job.item)
        else:
            out.extend(zip(job.item, result, [None] * len(job.item), strict=True))
    return out


_STOP = object()


def _no_fn(conn: sqlite3.Connection) -> None:
    raise RuntimeError("an item job runs through its merge function")


def _resolve(done: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in done:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class GroupCommitWriter:
    """Own one SQLite connection in one thread; batch concurrent jobs per commit."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        max_batch: int = 1024,
        on_commit: CommitObserver | None = None,
        name: str = "sqlite-writer",
        full_retry_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._full_retry_seconds = full_retry_seconds
        self._clock = clock
        self._full_since: float | None = None  # the disk filled up; writes wait for room
        self._full_tried = 0.0
        self._max_batch = max_batch
        self.on_commit = on_commit
        self._queue: queue.SimpleQueue[_Job | list[_Job] | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stopped = False
        self._alive = False  # the writer thread runs (a flag: cheaper per call than is_alive())
        # item jobs submitted in this loop iteration, handed over by one call_soon
        self._pending: dict[asyncio.AbstractEventLoop, list[_Job]] = {}

    def start(self) -> None:
        """Open the connection in the writer thread; raise if that failed."""
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise StoreUnavailable(f"cannot open SQLite: {self._startup_error}")

    async def submit(self, fn: Callable[[sqlite3.Connection], T], *, weight: int = 1) -> T:
        """Run ``fn(conn)`` in the next transaction; return after it committed.

        ``weight`` is how many callers' operations ``fn`` carries (a batch of
        ingests is one job), as reported to the commit observer.
        """
        if self._stopped or not self._thread.is_alive():
            raise StoreUnavailable("the SQLite writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, future, loop, weight))
        return await future

    async def submit_item(self, merge: Merge[I, T], item: I) -> T:
        """Write ``item`` together with the other items waiting for the same ``merge``.

        Returns this item's result after the commit covering it; if the
        merged statement fails, every item of it gets the error.
        """
        if self._stopped or not self._alive:
            raise StoreUnavailable("the SQLite writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._hand_over, loop)
        pending.append(_Job(_no_fn, future, loop, 1, merge, item))
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give the writer every item job of this loop iteration at once."""
        jobs = self._pending.pop(loop, None)
        if jobs:
            self._queue.put(jobs)

    async def stop(self) -> None:
        """Finish queued jobs, close the connection and end the thread."""
        if self._stopped:
            return
        self._stopped = True
        for loop in list(self._pending):
            self._hand_over(loop)
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    # the writer thread ------------------------------------------------------
    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # reported by start()
            self._startup_error = exc
            self._ready.set()
            return
        self._alive = True
        self._ready.set()
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch: list[_Job] = []
                _add(batch, first)
                stop = False
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    _add(batch, item)
                self._run_batch(conn, batch)
                if stop:
                    return
        finally:
            self._alive = False
            conn.close()

    @property
    def disk_full(self) -> bool:
        """True while writes are refused because the disk filled up (see the module docstring)."""
        return self._full_since is not None

    def _room(self, conn: sqlite3.Connection) -> bool:
        """Say whether writes may run; while the disk is full, try to empty the WAL first."""
        if self._full_since is None:
            return True
        now = self._clock()
        if now - self._full_tried < self._full_retry_seconds:
            return False
        self._full_tried = now
        try:
            busy, _frames, _copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            return False
        if busy:
            return False
        log.warning(
            "SQLite has room again after %.1fs: the WAL is checkpointed, writes resume",
            now - self._full_since,
        )
        self._full_since = None
        return True

    def _note(self, exc: BaseException) -> None:
        """Enter the disk-full state on ``SQLITE_FULL`` (logged once, not per write)."""
        code = getattr(exc, "sqlite_errorcode", None)
        if self._full_since is None and code == sqlite3.SQLITE_FULL:
            self._full_since = self._full_tried = self._clock()
            log.error(
                "SQLite: the disk is full; refusing writes (503) until a WAL checkpoint "
                "finds room again: %s",
                exc,
            )

    def _run_batch(self, conn: sqlite3.Connection, jobs: list[_Job]) -> None:
        done: list[tuple[_Job, Any, BaseException | None]] = []
        batch = _group(jobs)
        if not self._room(conn):
            error = StoreUnavailable("SQLite: the disk is full; waiting for space")
            self._deliver([(job, None, error) for job in batch])
            return
        if len(batch) == 1 and batch[0].merge is not None:  # one statement: autocommit
            self._run_autocommit(conn, batch[0])
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._fail_all(batch, exc)
            return
        if len(batch) == 1:  # alone: the transaction is its savepoint (fewer GIL hand-offs)
            self._run_alone(conn, batch[0])
            return
        for job in batch:
            try:
                conn.execute("SAVEPOINT job")
                result = job.fn(conn)
                conn.execute("RELEASE job")
                done.append((job, result, None))
            except Exception as exc:
                self._note(exc)
                self._rollback_savepoint(conn)
                done.append((job, None, _store_error(exc)))
        self._commit(conn, batch, done)

    def _commit(
        self,
        conn: sqlite3.Connection,
        batch: list[_Job],
        done: list[tuple[_Job, Any, BaseException | None]],
    ) -> None:
        """Commit, then tell the observer and resolve the callers (all fail if it fails)."""
        started = time.perf_counter()
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._fail_all(batch, exc)
            return
        self._observe(time.perf_counter() - started, sum(j.weight for j in batch))
        self._deliver(done)

    def _run_autocommit(self, conn: sqlite3.Connection, job: _Job) -> None:
        """Run a merged job's single write statement as its own transaction."""
        started = time.perf_counter()
        try:
            result = job.fn(conn)
        except Exception as exc:
            self._note(exc)
            if conn.in_transaction:  # never expected: the statement was not alone
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._deliver([(job, None, _store_error(exc))])
            return
        self._observe(time.perf_counter() - started, job.weight)
        self._deliver([(job, result, None)])

    def _observe(self, seconds: float, weight: int) -> None:
        if self.on_commit is not None:
            try:
                self.on_commit(seconds, weight)
            except Exception:  # an observer never breaks storage
                log.exception("commit observer failed")

    def _run_alone(self, conn: sqlite3.Connection, job: _Job) -> None:
        """Run one job in its own transaction; roll back on any failure."""
        try:
            result = job.fn(conn)
        except Exception as exc:
            self._note(exc)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._deliver([(job, None, _store_error(exc))])
            return
        self._commit(conn, [job], [(job, result, None)])

    @staticmethod
    def _rollback_savepoint(conn: sqlite3.Connection) -> None:
        try:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
        except sqlite3.Error:
            pass

    def _fail_all(self, batch: list[_Job], exc: BaseException) -> None:
        self._note(exc)
        log.warning("SQLite transaction failed: %s", exc)
        error = StoreUnavailable(f"SQLite commit failed: {exc}")
        self._deliver([(job, None, error) for job in batch])

    @staticmethod
    def _deliver(done: list[tuple[_Job, Any, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for job, result, error in _spread(done):
            by_loop.setdefault(job.loop, []).append((job.future, result, error))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed while we worked
                loop.call_soon_threadsafe(_resolve, items)


def _add(batch: list[_Job], entry: object) -> None:
    """Add a queue entry (one job, or the item jobs of one loop iteration) to ``batch``."""
    if isinstance(entry, list):
        batch.extend(entry)
    else:
        batch.append(entry)  # type: ignore[arg-type]


def _store_error(exc: BaseException) -> BaseException:
    """Map SQLite's operational errors (locked, disk full, I/O) to ``StoreUnavailable`` (503)."""
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailable(f"SQLite: {exc}")
    return exc
