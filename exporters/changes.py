"""Build the registry changes every way in shares: Python API and HTTP events.

One function per event kind (``run_started``, ``run_finished``, ``heartbeat``,
``down``, ``data_updated``, ``error``, ``checkpoint``); each takes values
already validated and returns a ``Change`` whose ``apply`` mutates a
``PipelineState``. Keeping them here means an event posted over HTTP and
the same call through the Python API end in the same numbers.

``Recorder`` is what the Python API writes to (``PipelineRegistry`` is one),
so the modules depend in one direction: registry -> api -> changes -> state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol

from exporters.state import PipelineState

__all__ = [
    "Change",
    "Recorder",
    "checkpoint",
    "data_updated",
    "down",
    "error",
    "heartbeat",
    "records",
    "run_finished",
    "run_started",
]


class Change(NamedTuple):
    """One update of one pipeline: ``apply`` mutates its state under the registry lock.

    ``error_keys`` lists the (category, reason) series it may create, so the
    bound is checked before anything is applied; ``path`` names the event in
    error messages (``$[3]``); ``reports``: it comes from the pipeline (not
    from the exporter's own probes), so the pipeline is no longer awaiting
    its first report. A NamedTuple: immutable, and built per posted event at
    half the cost of a frozen dataclass.
    """

    pipeline: str
    apply: Callable[[PipelineState], None]
    error_keys: tuple[tuple[str, str], ...] = ()
    path: str = "$"
    reports: bool = True


class Recorder(Protocol):
    """Where changes go: all of a batch or none (``PipelineRegistry.apply``), and its clock."""

    clock: Callable[[], float]

    def apply(self, changes: Sequence[Change], *, final: bool = True) -> None: ...


def run_started(pipeline: str, at: float, path: str = "$") -> Change:
    """A run began: a sign of life, and the start a hung run is measured from."""

    def apply(s: PipelineState) -> None:
        s.start_run(at)

    return Change(pipeline, apply, path=path)


def records(pipeline: str, processed: int, failed: int, path: str = "$") -> Change:
    """Count records while a run is going, so long runs show progress."""

    def apply(s: PipelineState) -> None:
        s.records_processed += processed
        s.records_failed += failed

    return Change(pipeline, apply, path=path)


def run_finished(
    pipeline: str,
    at: float,
    *,
    success: bool,
    duration: float | None,
    processed: int = 0,
    failed: int = 0,
    category: str | None = None,
    reason: str | None = None,
    path: str = "$",
) -> Change:
    """A run ended; a failure with a category and reason also counts that error."""
    keys = ((category, reason),) if category is not None and reason is not None else ()

    def apply(s: PipelineState) -> None:
        s.finish_run(success, duration, processed, failed, at)
        for c, r in keys:
            s.count_error(c, r)

    return Change(pipeline, apply, error_keys=keys, path=path)


def heartbeat(
    pipeline: str, at: float, resources: Mapping[str, float] | None = None, path: str = "$"
) -> Change:
    """The pipeline is alive, optionally reporting memory, disk and CPU."""
    values = dict(resources or {})

    def apply(s: PipelineState) -> None:
        s.seen(at)
        s.set_resources(values, at)

    return Change(pipeline, apply, path=path)


def down(pipeline: str, at: float, path: str = "$") -> Change:
    """The pipeline says it is down: ``pipeline_up`` is 0 until its next sign of life."""

    def apply(s: PipelineState) -> None:
        s.mark_down(at)

    return Change(pipeline, apply, path=path)


def data_updated(pipeline: str, at: float, path: str = "$") -> Change:
    """The pipeline's output data was refreshed at ``at``."""

    def apply(s: PipelineState) -> None:
        s.last_update = at if s.last_update is None else max(s.last_update, at)

    return Change(pipeline, apply, path=path)


def checkpoint(pipeline: str, at: float, path: str = "$") -> Change:
    """A good checkpoint was written at ``at`` (what a rollback goes back to)."""

    def apply(s: PipelineState) -> None:
        s.checkpoint = at if s.checkpoint is None else max(s.checkpoint, at)

    return Change(pipeline, apply, path=path)


def error(pipeline: str, category: str, reason: str, count: int = 1, path: str = "$") -> Change:
    """Count ``count`` errors of a category and reason (the run may go on)."""

    def apply(s: PipelineState) -> None:
        s.count_error(category, reason, count)

    return Change(pipeline, apply, error_keys=((category, reason),), path=path)
