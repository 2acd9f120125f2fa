"""Hold what the exporter knows about one pipeline, and merge it across processes.

A ``PipelineState`` is plain data: counters, the run-duration histogram, the
last timestamps, the heartbeat-reported resources and the dependency probes.
It never decides liveness by itself; ``is_up(now)`` answers it at scrape time
from the heartbeat age and the down mark, so ``pipeline_up`` falls to 0
without anyone calling anything. ``to_dict``/``from_dict``/``merge`` let
several worker processes each keep their own state and an exporter sum them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from pipemedic.vocabulary.metrics import DURATION_BUCKETS

__all__ = ["DependencyResult", "PipelineState"]


@dataclass(slots=True)
class DependencyResult:
    """The last probe of one dependency."""

    up: bool
    duration_seconds: float
    at: float


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


@dataclass(slots=True, eq=False)
class PipelineState:
    """Everything exported about one pipeline; mutate only through the registry's lock."""

    name: str
    heartbeat_timeout: float
    runs_success: int = 0
    runs_failure: int = 0
    records_processed: int = 0
    records_failed: int = 0
    errors: dict[tuple[str, str], int] = field(default_factory=dict)
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_sum: float = 0.0
    last_run_duration: float | None = None
    last_run_start: float | None = None
    last_run_end: float | None = None
    last_success: float | None = None
    last_update: float | None = None
    checkpoint: float | None = None
    last_seen: float | None = None
    down_at: float | None = None
    resources: dict[str, float] = field(default_factory=dict)
    resources_at: float | None = None
    dependencies: dict[str, DependencyResult] = field(default_factory=dict)
    # OpenLineage runs: alive without heartbeats until ``open_until`` (START + sla +
    # heartbeat timeout); ``idle_since`` the end of the last run, when none is open
    open_until: float | None = None
    idle_since: float | None = None
    # listed in the spec and waiting for its first report since then (None: it reported)
    awaiting_since: float | None = None
    # bumped on every change; the renderer caches text per version
    version: int = 0

    # -- liveness ---------------------------------------------------------
    def is_up(self, now: float) -> bool | None:
        """Tell whether the pipeline is alive at ``now``; None before any sign of life."""
        if self.down_at is not None and (self.last_seen is None or self.down_at >= self.last_seen):
            return False
        if self.last_seen is None:
            return None
        if self.idle_since is not None and self.idle_since >= self.last_seen:
            return None  # a batch pipeline between runs: neither up nor down
        if now - self.last_seen <= self.heartbeat_timeout:
            return True
        return self.open_until is not None and now <= self.open_until

    def seen(self, at: float) -> None:
        """Record a sign of life; it lifts an earlier down mark."""
        self.last_seen = _max(self.last_seen, at)
        if self.down_at is not None and self.last_seen is not None and self.down_at <= at:
            self.down_at = None

    def mark_down(self, at: float) -> None:
        """Record that the pipeline says it is down, until its next sign of life."""
        if self.last_seen is not None and at < self.last_seen:
            at = self.last_seen
        self.down_at = at

    # -- runs -------------------------------------------------------------
    def start_run(self, at: float) -> None:
        """Record that a run began (diagnosis tells a hung run from one never started)."""
        self.last_run_start = _max(self.last_run_start, at)
        self.seen(at)

    def finish_run(
        self,
        success: bool,
        duration: float | None,
        processed: int,
        failed: int,
        at: float,
    ) -> None:
        """Count a finished run and its records; a success stamps the last success."""
        if success:
            self.runs_success += 1
            self.last_success = _max(self.last_success, at)
        else:
            self.runs_failure += 1
        self.records_processed += processed
        self.records_failed += failed
        if duration is not None:
            self.bucket_counts[bisect.bisect_left(DURATION_BUCKETS, duration)] += 1
            self.duration_sum += duration
        if self.last_run_end is None or at >= self.last_run_end:
            self.last_run_end = at
            if duration is not None:
                self.last_run_duration = duration
        self.seen(at)

    def count_error(self, category: str, reason: str, count: int = 1) -> None:
        key = (category, reason)
        self.errors[key] = self.errors.get(key, 0) + count

    def set_resources(self, values: dict[str, float], at: float) -> None:
        if values:
            self.resources.update(values)
            self.resources_at = at

    @property
    def runs_total(self) -> int:
        return self.runs_success + self.runs_failure

    # -- processes --------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready copy (for the multiprocess directory)."""
        return {
            "name": self.name,
            "heartbeat_timeout": self.heartbeat_timeout,
            "runs_success": self.runs_success,
            "runs_failure": self.runs_failure,
            "records_processed": self.records_processed,
            "records_failed": self.records_failed,
            "errors": [[c, r, n] for (c, r), n in self.errors.items()],
            "bucket_counts": list(self.bucket_counts),
            "duration_sum": self.duration_sum,
            "last_run_duration": self.last_run_duration,
            "last_run_start": self.last_run_start,
            "last_run_end": self.last_run_end,
            "last_success": self.last_success,
            "last_update": self.last_update,
            "checkpoint": self.checkpoint,
            "last_seen": self.last_seen,
            "down_at": self.down_at,
            "resources": dict(self.resources),
            "resources_at": self.resources_at,
            "open_until": self.open_until,
            "idle_since": self.idle_since,
            "awaiting_since": self.awaiting_since,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineState:
        """Rebuild a state written by ``to_dict``."""
        buckets = [int(n) for n in d["bucket_counts"]]
        if len(buckets) != len(DURATION_BUCKETS):
            raise ValueError(
                f"pipeline {d['name']!r}: {len(buckets)} buckets, expected {len(DURATION_BUCKETS)}"
            )
        return cls(
            name=str(d["name"]),
            heartbeat_timeout=float(d["heartbeat_timeout"]),
            runs_success=int(d["runs_success"]),
            runs_failure=int(d["runs_failure"]),
            records_processed=int(d["records_processed"]),
            records_failed=int(d["records_failed"]),
            errors={(str(c), str(r)): int(n) for c, r, n in d["errors"]},
            bucket_counts=buckets,
            duration_sum=float(d["duration_sum"]),
            last_run_duration=d["last_run_duration"],
            last_run_start=d.get("last_run_start"),
            last_run_end=d["last_run_end"],
            last_success=d["last_success"],
            last_update=d["last_update"],
            checkpoint=d["checkpoint"],
            last_seen=d["last_seen"],
            down_at=d["down_at"],
            resources={str(k): float(v) for k, v in d["resources"].items()},
            resources_at=d["resources_at"],
            open_until=d.get("open_until"),
            idle_since=d.get("idle_since"),
            awaiting_since=d.get("awaiting_since"),
        )

    def merge(self, other: PipelineState) -> None:
        """Fold another process's state of the same pipeline into this one.

        Counters and histogram buckets add up; timestamps take the latest;
        the last run duration and resources come from the latest report; the
        pipeline is down when its latest down mark is newer than any sign of life.
        """
        self.runs_success += other.runs_success
        self.runs_failure += other.runs_failure
        self.records_processed += other.records_processed
        self.records_failed += other.records_failed
        for key, n in other.errors.items():
            self.errors[key] = self.errors.get(key, 0) + n
        self.bucket_counts = [
            a + b for a, b in zip(self.bucket_counts, other.bucket_counts, strict=True)
        ]
        self.duration_sum += other.duration_sum
        if other.last_run_end is not None and (
            self.last_run_end is None or other.last_run_end >= self.last_run_end
        ):
            self.last_run_end = other.last_run_end
            if other.last_run_duration is not None:
                self.last_run_duration = other.last_run_duration
        self.last_run_start = _max(self.last_run_start, other.last_run_start)
        self.last_success = _max(self.last_success, other.last_success)
        self.last_update = _max(self.last_update, other.last_update)
        self.checkpoint = _max(self.checkpoint, other.checkpoint)
        self.last_seen = _max(self.last_seen, other.last_seen)
        self.down_at = _max(self.down_at, other.down_at)
        self.open_until = _max(self.open_until, other.open_until)
        self.idle_since = _max(self.idle_since, other.idle_since)
        if other.resources_at is not None and (
            self.resources_at is None or other.resources_at >= self.resources_at
        ):
            self.resources.update(other.resources)
            self.resources_at = other.resources_at
        self.dependencies.update(other.dependencies)
        # still waiting only if neither process has heard from it
        if other.awaiting_since is None:
            self.awaiting_since = None
        self.heartbeat_timeout = max(self.heartbeat_timeout, other.heartbeat_timeout)
        self.version += 1
