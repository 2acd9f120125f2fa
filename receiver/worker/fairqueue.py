"""Claimed events by pipeline: one at a time per pipeline, pipelines served in turn.

The worker pool claims events from the store in id order and puts them
here. An event is *waiting* until the pool starts it, then *running* until
it finishes; each pipeline has at most one running event (its events are
serialised anyway, by ``Store.pipeline_lock``), so an event waiting for its
pipeline never holds one of the pool's slots. Pipelines with a waiting
event and none running are *ready*, in the order they became ready: a
pipeline whose event just finished goes to the back, so a long backlog on
one pipeline delays another pipeline's event by at most one event of each
pipeline ahead of it, never by the whole backlog.

Example::

    queue = FairQueue()
    for event in claimed:
        queue.add(event)
    while (event := queue.start_next()) is not None:
        ...  # run it; then
        queue.finish(event)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from receiver.models import AlertEvent

__all__ = ["FairQueue"]


class FairQueue:
    """Hold claimed events per pipeline and hand them out fairly (see the module docstring)."""

    def __init__(self) -> None:
        self._waiting: dict[str, deque[AlertEvent]] = {}
        self._ready: dict[str, None] = {}  # insertion-ordered set of ready pipelines
        self._running: dict[str, AlertEvent] = {}
        self._held: dict[int, str] = {}  # event id -> pipeline, waiting or running

    def __len__(self) -> int:
        """Return how many events are held (waiting or running)."""
        return len(self._held)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._held

    @property
    def has_ready(self) -> bool:
        """Say whether an event could start now."""
        return bool(self._ready)

    def held_ids(self) -> list[int]:
        """Return the ids of every held event (their leases need renewing)."""
        return list(self._held)

    def add(self, event: AlertEvent) -> bool:
        """Queue a claimed event behind its pipeline's; False if it is held already."""
        if event.id in self._held:
            return False
        pipeline = event.alert.pipeline
        self._held[event.id] = pipeline
        self._waiting.setdefault(pipeline, deque()).append(event)
        if pipeline not in self._running:
            self._ready.setdefault(pipeline, None)
        return True

    def start_next(self) -> AlertEvent | None:
        """Take the oldest waiting event of the pipeline ready longest, or None."""
        if not self._ready:
            return None
        pipeline = next(iter(self._ready))
        del self._ready[pipeline]
        waiting = self._waiting[pipeline]
        event = waiting.popleft()
        if not waiting:
            del self._waiting[pipeline]
        self._running[pipeline] = event
        return event

    def finish(self, event: AlertEvent) -> None:
        """Forget a started event; its pipeline goes to the back of the ready line."""
        pipeline = self._held.pop(event.id, None)
        if pipeline is None or self._running.get(pipeline) is not event:
            return
        del self._running[pipeline]
        if pipeline in self._waiting:
            self._ready[pipeline] = None

    def drop_waiting(self, ids: Iterable[int] | None = None) -> list[AlertEvent]:
        """Remove waiting events (all, or those in ``ids``) and return them; running ones stay."""
        wanted = None if ids is None else set(ids)
        dropped: list[AlertEvent] = []
        for pipeline in list(self._waiting):
            kept: deque[AlertEvent] = deque()
            for event in self._waiting[pipeline]:
                if wanted is None or event.id in wanted:
                    dropped.append(event)
                    del self._held[event.id]
                else:
                    kept.append(event)
            if kept:
                self._waiting[pipeline] = kept
            else:
                del self._waiting[pipeline]
                self._ready.pop(pipeline, None)
        return dropped
