"""KeyedLocks: one key at a time, other keys free, and no lock kept for an idle key."""

from __future__ import annotations

import asyncio

from receiver.store.locks import KeyedLocks


async def test_a_key_is_held_by_one_at_a_time_and_forgotten_when_idle() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    order: list[str] = []
    gate = asyncio.Event()

    async def work(key: str, name: str) -> None:
        async with locks.hold(key):
            order.append(f"{name} in")
            await gate.wait()
            order.append(f"{name} out")

    first = asyncio.create_task(work("p", "a"))
    second = asyncio.create_task(work("p", "b"))
    other = asyncio.create_task(work("q", "c"))
    await asyncio.sleep(0.01)
    assert order == ["a in", "c in"]  # b waits for a; q is another key
    assert len(locks) == 2
    gate.set()
    await asyncio.gather(first, second, other)
    assert order.index("b in") > order.index("a out")
    assert len(locks) == 0  # nothing kept per key once idle


async def test_a_cancelled_waiter_leaves_no_lock_behind() -> None:
    locks: KeyedLocks[int] = KeyedLocks()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold(1):
            await release.wait()

    async def waiter() -> None:
        async with locks.hold(1):
            raise AssertionError("never reached: cancelled while waiting")

    held = asyncio.create_task(holder())
    await asyncio.sleep(0.01)
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    release.set()
    await held
    assert len(locks) == 0
    async with locks.hold(1):  # and the key can be taken again
        assert len(locks) == 1
