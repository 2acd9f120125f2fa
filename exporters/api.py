"""The Python API: what a pipeline written in Python calls while it runs.

A ``Pipeline`` handle (from ``PipelineRegistry.pipeline(name)``) records
runs, heartbeats, down marks, data freshness, checkpoints and errors. A run
is a context manager (sync or async) or a decorator; an exception escaping
it is counted as a failed run with a category and reason from the
classifier, then re-raised unchanged.

Example::

    registry = PipelineRegistry(load_spec("rules/pipelines.yml"))
    orders = registry.pipeline("etl_orders")

    with orders.run() as run:
        for batch in read_batches():
            good, bad = load(batch)
            run.processed(good + bad)
            run.failed(bad)
    orders.data_updated()

    @orders.track
    def nightly() -> None: ...
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import shutil
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from exporters import changes
from exporters.classify import FALLBACK, Classifier, classify_exception
from exporters.errors import CardinalityError, FieldProblem, InvalidEventError
from exporters.vocabulary import (
    MAX_COUNT,
    check_category,
    check_count,
    check_reason,
    check_seconds,
)

__all__ = ["Pipeline", "Run", "sample_memory"]

_log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def sample_memory() -> dict[str, float]:
    """Return this process's resident memory and its cgroup limit, where readable."""
    found: dict[str, float] = {}
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        found["memory_bytes"] = float(pages * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            found["memory_limit_bytes"] = float(limit)
    except OSError:
        pass
    return found


class Pipeline:
    """One pipeline's handle: thread-safe, cheap; get it from ``registry.pipeline(name)``."""

    def __init__(
        self, registry: changes.Recorder, name: str, classifier: Classifier | None = None
    ) -> None:
        self.registry = registry
        self.name = name
        self.classifier: Classifier = classifier or classify_exception

    def _now(self, at: float | None, field: str = "at") -> float:
        return self.registry.clock() if at is None else check_seconds(at, field)

    def run(self, *, classifier: Classifier | None = None) -> Run:
        """Return a context manager that records one run (``with`` or ``async with``)."""
        return Run(self, classifier or self.classifier)

    @overload
    def track(
        self, func: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def track(self, func: Callable[P, R]) -> Callable[P, R]: ...
    def track(self, func: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a function (sync or async) so that every call is one recorded run."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with self.run():
                    return await func(*args, **kwargs)

            return run_async

        @functools.wraps(func)
        def run_sync(*args: P.args, **kwargs: P.kwargs) -> Any:
            with self.run():
                return func(*args, **kwargs)

        return run_sync

    def heartbeat(
        self,
        *,
        memory_bytes: float | None = None,
        memory_limit_bytes: float | None = None,
        disk_free_bytes: float | None = None,
        cpu_usage_ratio: float | None = None,
        disk_path: str | None = None,
        sample: bool = True,
        at: float | None = None,
    ) -> None:
        """Say the pipeline is alive, with resources (memory sampled unless given).

        ``disk_path`` reports the free space of that file system; ``sample=False``
        reports only what is passed.
        """
        values: dict[str, float] = sample_memory() if sample else {}
        given = {
            "memory_bytes": memory_bytes,
            "memory_limit_bytes": memory_limit_bytes,
            "disk_free_bytes": disk_free_bytes,
        }
        for field, value in given.items():
            if value is not None:
                values[field] = check_seconds(value, field, maximum=float(MAX_COUNT) * 1024)
        if disk_path is not None and disk_free_bytes is None:
            values["disk_free_bytes"] = float(shutil.disk_usage(disk_path).free)
        if cpu_usage_ratio is not None:
            values["cpu_usage_ratio"] = check_seconds(cpu_usage_ratio, "cpu_usage_ratio", 1.0)
        self.registry.apply([changes.heartbeat(self.name, self._now(at), values)])

    def mark_down(self, *, at: float | None = None) -> None:
        """Say the pipeline is down: ``pipeline_up`` is 0 until the next heartbeat or run."""
        self.registry.apply([changes.down(self.name, self._now(at))])

    def data_updated(self, at: float | None = None) -> None:
        """Say the pipeline's output data was refreshed (now, or at ``at``)."""
        self.registry.apply([changes.data_updated(self.name, self._now(at))])

    def checkpoint(self, at: float | None = None) -> None:
        """Record a good checkpoint (now, or at ``at``) that a rollback can return to."""
        self.registry.apply([changes.checkpoint(self.name, self._now(at))])

    def error(self, category: str, reason: str, count: int = 1) -> None:
        """Count errors of an incident category and reason without ending the run."""
        check_category(category)
        check_reason(reason)
        if check_count(count, "count") < 1:
            raise InvalidEventError([FieldProblem("count", f"{count!r} is not at least 1")])
        self.registry.apply([changes.error(self.name, category, reason, count)])


class Run:
    """One run of a pipeline; count records on it while it goes.

    Leaving the block normally records a success (unless ``fail()`` was
    called); an exception records a failure classified into category and
    reason, and is re-raised.
    """

    def __init__(self, pipeline: Pipeline, classifier: Classifier) -> None:
        self.pipeline = pipeline
        self.classifier = classifier
        self.records_processed = 0
        self.records_failed = 0
        self.failure: tuple[str, str] | None = None
        self._failed_explicitly = False
        self._started: float | None = None

    def processed(self, n: int = 1) -> None:
        """Count ``n`` records read (shown immediately, not only at the end)."""
        self._records(check_count(n, "processed"), 0)

    def failed(self, n: int = 1) -> None:
        """Count ``n`` records that failed."""
        self._records(0, check_count(n, "failed"))

    def _records(self, processed: int, failed: int) -> None:
        self.records_processed += processed
        self.records_failed += failed
        registry = self.pipeline.registry
        registry.apply([changes.records(self.pipeline.name, processed, failed)], final=False)

    def fail(self, category: str | None = None, reason: str | None = None) -> None:
        """Mark the run failed without raising; with a category and reason it counts an error."""
        if category is not None or reason is not None:
            self.failure = (check_category(category), check_reason(reason))
        self._failed_explicitly = True

    def __enter__(self) -> Run:
        self._started = time.monotonic()
        p = self.pipeline
        p.registry.apply([changes.run_started(p.name, p.registry.clock())])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration = time.monotonic() - (self._started or time.monotonic())
        if isinstance(exc, Exception):
            self.failure = self.classifier(exc) or FALLBACK
        success = exc is None and not self._failed_explicitly
        category, reason = self.failure if self.failure is not None else (None, None)
        p = self.pipeline
        finished = changes.run_finished(
            p.name,
            p.registry.clock(),
            success=success,
            duration=duration,
            category=category,
            reason=reason,
        )
        try:
            p.registry.apply([finished])
        except CardinalityError as refused:
            # never hide the pipeline's own exception behind a metrics problem
            _log.warning("run of %s not recorded: %s", p.name, refused)

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
