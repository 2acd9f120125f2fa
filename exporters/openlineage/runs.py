"""Remember the runs the exporter has heard of, bounded in time and number.

A COMPLETE needs its START's eventTime for the run duration, a child
(dbt model, Airflow task) needs its parent's pipeline and root run, and a
producer's retry of the same (runId, eventType) must change nothing. All of
that lives here, in one insertion-ordered dict: every event touches its
run (moved to the end), so the oldest run is always first. A run nobody
mentions for ``ttl`` seconds is forgotten, and beyond ``cap`` runs the
oldest go first; both are counted (``evicted``) and exported as metrics.
Each call does at most ``_SWEEP`` evictions, so the work per event is
bounded whatever the backlog.

Example::

    runs = RunMemory(ttl=86400, cap=100_000, clock=time.time)
    record, fresh = runs.touch(run_id.int, "etl_orders", root_run=run_id.int)
    if not runs.first(record, "COMPLETE"):
        ...  # a retry: ignore it
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_MAX_OPEN_RUNS", "RunMemory", "RunRecord"]

DEFAULT_MAX_OPEN_RUNS: Final = 100_000
_SWEEP: Final = 64
_RENDER_SWEEP: Final = 4096
# one bit per event type: a run's ``seen`` is a small int, not a set (100,000 runs stay small)
_BIT: Final = {
    t: 1 << i for i, t in enumerate(("START", "RUNNING", "COMPLETE", "FAIL", "ABORT", "OTHER"))
}
_TERMINAL: Final = _BIT["COMPLETE"] | _BIT["FAIL"] | _BIT["ABORT"]


@dataclass(slots=True)
class RunRecord:
    """What one run has told so far."""

    pipeline: str
    root_run: int  # the pipeline run this run belongs to (itself for a root), as UUID.int
    touched: float
    started_at: float | None = None
    seen: int = 0  # bits of _BIT
    output_records: int = 0
    has_rows: bool = False

    @property
    def finished(self) -> bool:
        return bool(self.seen & _TERMINAL)


class RunMemory:
    """Runs by runId, bounded by ``ttl`` seconds without news and by ``cap`` entries."""

    def __init__(self, ttl: float, cap: int, clock: Callable[[], float]) -> None:
        if cap < 1:
            raise ValueError(f"the cap on open runs must be at least 1, not {cap}")
        self.ttl, self.cap, self.clock = ttl, cap, clock
        self.lock = threading.Lock()
        # keyed by UUID.int: plain ints, which the cyclic GC never has to walk
        self._runs: OrderedDict[int, RunRecord] = OrderedDict()
        self.evicted = {"ttl": 0, "cap": 0}

    def __len__(self) -> int:
        return len(self._runs)

    def get(self, run_id: int) -> RunRecord | None:
        """Return the record of a run (``UUID.int``), if remembered."""
        return self._runs.get(run_id)

    def touch(self, key: int, pipeline: str, root_run: int) -> tuple[RunRecord, bool]:
        """Return the run's record (made if new) moved to the newest end; True if new."""
        now = self.clock()
        record = self._runs.get(key)
        fresh = record is None
        if record is None:
            record = RunRecord(pipeline, root_run, now)
            self._runs[key] = record
        else:
            record.touched = now
            self._runs.move_to_end(key)
        self._evict(now)
        return record, fresh

    @staticmethod
    def first(record: RunRecord, event_type: str) -> bool:
        """Mark ``event_type`` seen; False when the run already had it (or already ended)."""
        bit = _BIT[event_type]
        if record.seen & bit or (bit & _TERMINAL and record.finished):
            return False
        record.seen |= bit
        return True

    @staticmethod
    def forget(record: RunRecord, event_type: str) -> None:
        """Unmark ``event_type`` (its changes were refused, so a retry must apply them)."""
        record.seen &= ~_BIT[event_type]

    def sweep(self) -> None:
        """Forget expired runs (called at scrape time too, so idle exporters shrink).

        Bounded like the per-event eviction, so a scrape never holds the lock
        (and the event loop's next event) for long.
        """
        self._evict(self.clock(), limit=_RENDER_SWEEP)

    def _evict(self, now: float, limit: int | None = _SWEEP) -> None:
        runs = self._runs
        done = 0
        while len(runs) > self.cap:
            runs.popitem(last=False)
            self.evicted["cap"] += 1
        horizon = now - self.ttl
        while runs and (limit is None or done < limit):
            oldest = next(iter(runs.values()))
            if oldest.touched >= horizon:
                break
            runs.popitem(last=False)
            self.evicted["ttl"] += 1
            done += 1
