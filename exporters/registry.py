"""Keep the states of all pipelines behind one lock, with a bound on how many.

The registry is what pipelines (Python API, HTTP events) write to and what the
renderer reads. Every change goes through ``apply``: a list of ``Change``
objects checked against the cardinality bound first and then applied under
one lock, so a scrape never sees half a batch and a rejected batch leaves no
trace. Liveness timeouts come from the spec; pipelines not in it get the
defaults.

Example::

    registry = PipelineRegistry(load_spec("rules/pipelines.yml"), max_pipelines=5000)
    orders = registry.pipeline("etl_orders")      # a handle of the Python API
    orders.heartbeat()
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from exporters.api import Pipeline
from exporters.changes import Change
from exporters.classify import Classifier
from exporters.errors import CardinalityError
from exporters.state import PipelineState
from exporters.vocabulary import check_pipeline_name
from rules.spec import Spec, load_spec

__all__ = ["DEFAULT_MAX_ERROR_SERIES", "DEFAULT_MAX_PIPELINES", "PipelineRegistry"]

DEFAULT_MAX_PIPELINES = 10_000
# distinct (category, reason) pairs per pipeline
DEFAULT_MAX_ERROR_SERIES = 64


class PipelineRegistry:
    """All pipeline states of this process; thread-safe, bounded, clock injectable."""

    def __init__(
        self,
        spec: Spec | None = None,
        *,
        max_pipelines: int = DEFAULT_MAX_PIPELINES,
        max_error_series: int = DEFAULT_MAX_ERROR_SERIES,
        clock: Callable[[], float] = time.time,
        classifier: Classifier | None = None,
    ) -> None:
        if max_pipelines < 1:
            raise ValueError(f"max_pipelines must be at least 1, not {max_pipelines}")
        self.spec = spec if spec is not None else load_spec(None)
        self.max_pipelines = max_pipelines
        self.max_error_series = max_error_series
        self.clock = clock
        self.classifier = classifier
        self.lock = threading.Lock()
        self._states: dict[str, PipelineState] = {}
        self._listeners: list[Callable[[PipelineRegistry, bool], None]] = []
        self._pid = os.getpid()
        # set by worker_registry: a forked child must not report its parent's numbers again
        self.reset_on_fork = False
        self.refused = 0  # changes refused by the bound, for the exporter's health metrics

    # -- reading ----------------------------------------------------------
    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, name: object) -> bool:
        return name in self._states

    def states(self) -> list[PipelineState]:
        """Return the current states (the objects themselves; read them under ``lock``)."""
        with self.lock:
            return list(self._states.values())

    def snapshot(self) -> list[dict[str, Any]]:
        """Return a consistent JSON-ready copy of every state (for other processes)."""
        with self.lock:
            return [s.to_dict() for s in self._states.values()]

    def get(self, name: str) -> PipelineState | None:
        return self._states.get(name)

    def heartbeat_timeout(self, name: str) -> float:
        """Return the pipeline's heartbeat timeout in seconds (spec entry or defaults)."""
        return self.spec.pipeline(name).heartbeat_timeout_seconds

    # -- writing ----------------------------------------------------------
    def pipeline(self, name: str, *, classifier: Classifier | None = None) -> Pipeline:
        """Return the Python API handle of a pipeline, registering it (bounded)."""
        self.register(name)
        return Pipeline(self, name, classifier=classifier or self.classifier)

    def register(self, name: str) -> None:
        """Make a pipeline known (its counters start at 0); CardinalityError over the bound."""
        check_pipeline_name(name)
        self.apply([Change(name, _noop)])

    def expect_listed(self) -> None:
        """Export every pipeline the spec lists from now on, as awaiting its first report.

        ``pipeline_awaiting_first_report_timestamp_seconds`` holds this time
        until the pipeline's first report (any event, run, heartbeat or
        handle; the exporter's own dependency probes do not count), so a
        pipeline that never starts raises PipelineNeverReported.
        CardinalityError when the spec lists more than ``max_pipelines``.
        """
        now = self.clock()

        def awaiting(state: PipelineState) -> None:
            if state.version == 0:  # new: nothing has reported it yet
                state.awaiting_since = now

        self.apply([Change(name, awaiting, reports=False) for name in self.spec.pipelines])

    def add_listener(self, listener: Callable[[PipelineRegistry, bool], None]) -> None:
        """Call ``listener(registry, final)`` after every applied change (outside the lock).

        ``final`` is False for frequent in-run updates (records counted one by
        one) that a listener such as the multiprocess writer may batch up.
        """
        self._listeners.append(listener)

    def flush(self) -> None:
        """Tell the listeners to write out whatever they batched up."""
        for listener in self._listeners:
            listener(self, True)

    def apply(self, changes: Sequence[Change], *, final: bool = True) -> None:
        """Apply all changes or none: CardinalityError names the first change over a bound."""
        if not changes:
            return
        with self.lock:
            if self.reset_on_fork and self._pid != os.getpid():  # forked child
                self._states.clear()
                self._pid = os.getpid()
            self._check_bounds(changes)
            for change in changes:
                state = self._states.get(change.pipeline)
                if state is None:
                    state = PipelineState(change.pipeline, self.heartbeat_timeout(change.pipeline))
                    self._states[change.pipeline] = state
                if change.reports:
                    state.awaiting_since = None
                change.apply(state)
                state.version += 1
        for listener in self._listeners:
            listener(self, final)

    def _check_bounds(self, changes: Iterable[Change]) -> None:
        new_pipelines: set[str] = set()
        new_errors: dict[str, set[tuple[str, str]]] = {}
        for change in changes:
            state = self._states.get(change.pipeline)
            if state is None and change.pipeline not in new_pipelines:
                if len(self._states) + len(new_pipelines) >= self.max_pipelines:
                    self.refused += 1
                    raise CardinalityError(
                        f"pipeline {change.pipeline!r} refused: the exporter already tracks "
                        f"its maximum of {self.max_pipelines} pipelines (--max-pipelines)",
                        f"{change.path}.pipeline" if change.path != "$" else "$.pipeline",
                    )
                new_pipelines.add(change.pipeline)
            if not change.error_keys:
                continue
            known = state.errors if state is not None else {}
            for key in change.error_keys:
                if key not in known:
                    break
            else:  # series that exist already cannot pass the bound
                continue
            pending = new_errors.setdefault(change.pipeline, set())
            pending.update(k for k in change.error_keys if k not in known)
            if len(known) + len(pending) > self.max_error_series:
                self.refused += 1
                raise CardinalityError(
                    f"pipeline {change.pipeline!r} refused: more than "
                    f"{self.max_error_series} distinct error category/reason pairs",
                    f"{change.path}.reason" if change.path != "$" else "$.reason",
                )

    def replace_all(self, states: Iterable[PipelineState]) -> None:
        """Swap in merged states (the multiprocess reader's view); no bound is applied."""
        with self.lock:
            self._states = {s.name: s for s in states}


def _noop(state: PipelineState) -> None:
    return None
