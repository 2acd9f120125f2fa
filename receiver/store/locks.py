"""In-process locks by key that exist only while someone holds or waits for one.

The stores serialise work per pipeline and per incident. A dict of one
``asyncio.Lock`` per key ever seen grows with every pipeline and incident the
process met (10,000 after a storm of 10,000, kept forever); here a key's lock
is dropped as soon as nobody holds or waits for it, so memory follows the
work in flight.

Example::

    locks: KeyedLocks[str] = KeyedLocks()
    async with locks.hold("etl_orders"):
        ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

__all__ = ["KeyedLocks"]

K = TypeVar("K", bound=Hashable)


class KeyedLocks(Generic[K]):
    """One ``asyncio.Lock`` per key in use (held or awaited), none for idle keys."""

    def __init__(self) -> None:
        self._locks: dict[K, tuple[asyncio.Lock, list[int]]] = {}  # key -> (lock, [users])

    def __len__(self) -> int:
        """How many keys have a lock now (held or awaited)."""
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: K) -> AsyncIterator[None]:
        """Hold ``key``'s lock for the block (waiting for it first)."""
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]
