"""Batch concurrent requests of one event loop into one flush (group commit, loop side).

The PostgreSQL store commits ingests this way (SQLite batches in its writer
thread instead, ``groupcommit.submit_item``): the requests that arrive while
the previous flush is still committing wait together and go to the store in
one statement and one transaction. ``Batcher.submit(item)`` returns that
item's own result once the flush that covers it returned (committed);
if the flush raises, every item of that batch gets the exception (the store
answers 503 to each; nothing of an earlier, committed batch is affected).

Only one flush runs at a time: the next batch grows while the current one
commits (pipelining), so a slow fsync makes batches larger instead of
making requests queue one by one. Waiting callers are woken by the flusher
task itself, one loop iteration per batch, not one cross-thread callback
per request.

Example::

    batcher = Batcher(store_flush)            # async (list[Notification]) -> list[IngestResult]
    result = await batcher.submit(notification)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher", "Flush", "credit"]

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")

Flush = Callable[[list[I]], Awaitable[Sequence[R]]]
"""Commit a batch; return one result per item, in order (or raise for all)."""

log = logging.getLogger(__name__)


class Batcher(Generic[I, R]):
    """Collect items submitted concurrently; flush them together, one flush at a time."""

    def __init__(self, flush: Flush[I, R], *, max_batch: int = 512) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._items: list[I] = []
        self._futures: list[asyncio.Future[R]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: I) -> R:
        """Add ``item`` to the next batch; return its result after that batch's flush."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._items.append(item)
        self._futures.append(future)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return await future

    async def close(self) -> None:
        """Wait for the flushes under way (submitted items are not dropped)."""
        task = self._task
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

    async def _run(self) -> None:
        try:
            while self._items:
                n = self._max_batch
                items, futures = self._items[:n], self._futures[:n]
                del self._items[:n], self._futures[:n]
                try:
                    results = await self._flush(items)
                    if len(results) != len(items):
                        raise RuntimeError(f"flush gave {len(results)} results for {len(items)}")
                except BaseException as exc:  # every caller of the batch sees the failure
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for future, result in zip(futures, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._task = None
            if self._items:  # cancelled with items left: never leave a caller waiting
                error = RuntimeError("batcher stopped before flushing")
                for future in self._futures:
                    if not future.done():
                        future.set_exception(error)
                self._items.clear()
                self._futures.clear()


def credit(keys: Sequence[Sequence[Hashable]], inserted: Collection[Hashable]) -> list[int]:
    """Return, per item, how many of its keys it was the first in the batch to insert.

    ``keys`` are the idempotency keys of each item's rows in the order they
    were inserted; ``inserted`` the keys the store actually added. A key sent
    twice in one batch (an HA pair, a retry) is credited to its first sender.
    """
    left = set(inserted)
    counts: list[int] = []
    for item in keys:
        n = 0
        for key in item:
            if key in left:
                left.discard(key)
                n += 1
        counts.append(n)
    return counts
