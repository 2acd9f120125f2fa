"""Turn a validated OpenLineage event into the registry changes every way in makes.

The mapping (docs/openlineage.md has the user's version):

- the event's pipeline is the root of its ``parent`` chain (``naming``);
  the root job's own events are the pipeline's runs, a child's (task,
  model, query) are signs of life, records, errors and datasets of it;
- START: a sign of life; a root START opens the run, which counts as alive
  without heartbeats until START + the pipeline's ``sla`` + heartbeat
  timeout, so a run that never ends turns ``pipeline_up`` to 0
  (``PipelineDown``) instead of hiding;
- RUNNING and OTHER: a heartbeat;
- COMPLETE: a root run succeeds with its duration from START's eventTime;
  ``outputStatistics.rowCount`` adds to records processed, and the rows of
  a whole root run (children included) become
  ``pipeline_last_run_output_records``; every output dataset gets
  ``pipeline_dataset_last_update_timestamp_seconds`` and the pipeline
  ``data_updated``;
- FAIL / ABORT: a root run fails, a child counts an error; category and
  reason from ``failure.classify_failure``;
- a root run's end makes the pipeline idle (no ``pipeline_up`` until its
  next sign of life); so does a child's end when its root run never started
  here (producers that send no root-job events), else the pipeline would go
  "down" after every run;
- failed ``dataQualityAssertions`` on a terminal event: errors
  ``data``/``failed_assertion`` (one per failed assertion), and records
  failed where the assertion says how many rows failed (dbt's ``actual``);
- an output dataset's ``schema`` facet that differs from the last one seen:
  an error ``data``/``schema_change``;
- inputs and outputs feed the lineage graph.

A (runId, eventType) already recorded changes nothing (RUNNING only ever
refreshes a heartbeat, so it is not deduplicated). The registry's
cardinality bound applies as for ``/events``; datasets beyond
``--max-datasets`` are left out and counted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from exporters import changes
from exporters.changes import Change
from exporters.classify import Classifier
from exporters.openlineage.failure import FAILED_ASSERTION, classify_failure
from exporters.openlineage.graph import LineageGraph, schema_fingerprint
from exporters.openlineage.model import (
    Dataset,
    LineageEvent,
    assertions_of,
    row_count,
    schema_of,
)
from exporters.openlineage.naming import DatasetLabels, PipelineMapper
from exporters.openlineage.runs import RunMemory, RunRecord
from exporters.registry import PipelineRegistry
from exporters.render import family_header, format_value
from exporters.state import PipelineState

__all__ = ["EVENT_LABELS", "LineageRecorder", "Outcome"]

_TERMINAL: Final = frozenset({"COMPLETE", "FAIL", "ABORT"})
EVENT_LABELS: Final = ("START", "RUNNING", "COMPLETE", "FAIL", "ABORT", "OTHER", "DATASET", "JOB")
SCHEMA_CHANGE: Final = ("data", "schema_change")


class Outcome(StrEnum):
    """What became of one event (the ``outcome`` label of the events counter)."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class _Assertions:
    failed: int
    failed_records: int


def _failed_assertions(datasets: list[Dataset]) -> _Assertions:
    failed = rows = 0
    for d in datasets:
        for a in assertions_of(d):
            if a.success:
                continue
            failed += 1
            actual = a.actual
            if isinstance(actual, str) and actual.isdigit() and len(actual) <= 15:
                rows += int(actual)
            elif isinstance(actual, int) and not isinstance(actual, bool) and 0 <= actual < 2**53:
                rows += actual
    return _Assertions(failed, rows)


class LineageRecorder:
    """Apply OpenLineage events to a registry, a run memory and the lineage graph.

    Example::

        recorder = LineageRecorder(registry, max_datasets=10_000)
        recorder.record(decode_event(body))      # Outcome.APPLIED or Outcome.DUPLICATE
    """

    def __init__(
        self,
        registry: PipelineRegistry,
        *,
        max_datasets: int,
        max_open_runs: int,
        classifier: Classifier | None = None,
    ) -> None:
        spec = registry.spec
        self.registry = registry
        self.classifier = classifier or registry.classifier
        self.mapper = PipelineMapper(spec.openlineage)
        self.label = DatasetLabels()
        clock: Callable[[], float] = registry.clock
        self.runs = RunMemory(spec.openlineage.run_ttl_seconds, max_open_runs, clock)
        self.graph = LineageGraph(
            max_datasets=max_datasets,
            ttl=spec.openlineage.lineage_ttl_seconds,
            clock=clock,
            declared={name: p.upstream for name, p in spec.pipelines.items() if p.upstream},
        )
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    # -- the mapping ---------------------------------------------------------
    def record(self, event: LineageEvent) -> Outcome:
        """Apply one event; CardinalityError (nothing applied) over the pipeline bound."""
        if event.kind == "dataset":
            outcome = self._dataset_event(event)
        elif event.kind == "job":
            outcome = self._job_event(event)
        else:
            outcome = self._run_event(event)
        key = (event.event_type, outcome.value)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
        return outcome

    def _locate(self, event: LineageEvent) -> tuple[str, int, bool]:
        """Return (pipeline, root run id, is the run the pipeline's own run)."""
        assert event.job is not None and event.run_id is not None
        parent = event.parent
        if parent is None:
            return self.mapper(event.job.namespace, event.job.name), event.run_id.int, True
        if parent.root is not None:
            root = parent.root
            return self.mapper(root.job.namespace, root.job.name), root.run.runId.int, False
        known = self.runs.get(parent.run.runId.int)
        if known is not None:
            return known.pipeline, known.root_run, False
        return self.mapper(parent.job.namespace, parent.job.name), parent.run.runId.int, False

    def _run_event(self, event: LineageEvent) -> Outcome:
        assert event.run_id is not None
        now = self.registry.clock()
        at = min(event.at, now)
        kind = event.event_type
        with self.runs.lock:
            pipeline, root_run, is_root = self._locate(event)
            run, _ = self.runs.touch(event.run_id.int, pipeline, root_run)
            pipeline = run.pipeline  # the first event of a run decides its pipeline
            if kind == "RUNNING" and run.finished:
                return Outcome.DUPLICATE  # a late heartbeat must not wake an ended run
            if kind != "RUNNING" and not self.runs.first(run, kind):
                return Outcome.DUPLICATE
            # a child whose root run never started here: nobody will end the pipeline's run
            orphan = not is_root and self.runs.get(root_run) is None
            started_before = run.started_at
            if kind == "START":
                run.started_at = at if started_before is None else min(started_before, at)
        with self.graph.lock:
            plan = self._plan(event, pipeline, now)
        batch = self._run_changes(event, pipeline, run, is_root, at, plan)
        if orphan and kind in _TERMINAL:
            batch.append(_closed(pipeline, at))
        try:
            self.registry.apply(batch)
        except Exception:
            with self.runs.lock:  # refused: a retry must be able to apply it
                self.runs.forget(run, kind)
                run.started_at = started_before
            raise
        with self.graph.lock:
            self._commit(pipeline, plan, at, now, completed=kind == "COMPLETE")
            if kind == "COMPLETE" and is_root:
                rows = run.output_records + plan.rows
                if run.has_rows or plan.has_rows:
                    self.graph.output_records[pipeline] = rows
        if not is_root and plan.has_rows and kind == "COMPLETE":
            with self.runs.lock:
                root = self.runs.get(root_run)
                if root is not None:
                    root.output_records += plan.rows
                    root.has_rows = True
        return Outcome.APPLIED

    def _run_changes(
        self,
        event: LineageEvent,
        pipeline: str,
        run: RunRecord,
        is_root: bool,
        at: float,
        plan: _Plan,
    ) -> list[Change]:
        kind = event.event_type
        out: list[Change] = []
        terminal = kind in _TERMINAL
        assertions = _failed_assertions(event.inputs + event.outputs) if terminal else None
        if kind == "START" and is_root:
            spec = self.registry.spec.pipeline(pipeline)
            out.append(
                _opened(pipeline, at, at + spec.sla_seconds + spec.heartbeat_timeout_seconds)
            )
        elif kind == "COMPLETE" and is_root:
            out.append(
                changes.run_finished(
                    pipeline,
                    at,
                    success=True,
                    duration=_duration(run, at),
                    processed=plan.rows,
                )
            )
            out.append(_closed(pipeline, at))
        elif kind in ("FAIL", "ABORT"):
            facet_less_assertions = (
                event.error is None and assertions is not None and assertions.failed
            )
            if facet_less_assertions:
                verdict: tuple[str, str] | None = None  # the assertion errors are the failure
            else:
                verdict = classify_failure(event.error, 0, self.classifier)
            if is_root:
                out.append(
                    changes.run_finished(
                        pipeline,
                        at,
                        success=False,
                        duration=_duration(run, at),
                        processed=plan.rows,
                        category=verdict[0] if verdict else None,
                        reason=verdict[1] if verdict else None,
                    )
                )
                out.append(_closed(pipeline, at))
            else:
                out.append(changes.heartbeat(pipeline, at))
                if verdict is not None:
                    out.append(changes.error(pipeline, *verdict))
                if plan.rows:
                    out.append(changes.records(pipeline, plan.rows, 0))
        else:  # a child's START/COMPLETE, RUNNING, OTHER: signs of life
            out.append(changes.heartbeat(pipeline, at))
            if kind == "COMPLETE" and plan.rows:
                out.append(changes.records(pipeline, plan.rows, 0))
        if assertions is not None and assertions.failed:
            out.append(changes.error(pipeline, *FAILED_ASSERTION, count=assertions.failed))
            if assertions.failed_records:
                out.append(changes.records(pipeline, 0, assertions.failed_records))
        if plan.schema_changes:
            out.append(changes.error(pipeline, *SCHEMA_CHANGE, count=plan.schema_changes))
        if kind == "COMPLETE" and plan.outputs:
            out.append(changes.data_updated(pipeline, at))
        return out

    def _job_event(self, event: LineageEvent) -> Outcome:
        assert event.job is not None
        now = self.registry.clock()
        pipeline = self.mapper(event.job.namespace, event.job.name)
        self.registry.register(pipeline)
        with self.graph.lock:
            plan = self._plan(event, pipeline, now)
            self._commit(pipeline, plan, min(event.at, now), now, completed=False)
        return Outcome.APPLIED

    def _dataset_event(self, event: LineageEvent) -> Outcome:
        now = self.registry.clock()
        with self.graph.lock:
            for d in event.outputs:
                info = self.graph.dataset(self.label(d.namespace, d.name), now)
                fields = schema_of(d)
                if info is not None and fields is not None:
                    info.fingerprint = schema_fingerprint(fields)
        return Outcome.APPLIED

    # -- lineage and schemas ------------------------------------------------
    def _plan(self, event: LineageEvent, pipeline: str, now: float) -> _Plan:
        """Work out datasets, rows and schema changes (under the graph lock, nothing written)."""
        rows = 0
        has_rows = False
        outputs: list[tuple[str, int | None]] = []
        changed = 0
        for d in event.outputs:
            label = self.label(d.namespace, d.name)
            fields = schema_of(d)
            fingerprint = schema_fingerprint(fields) if fields is not None else None
            if fingerprint is not None:
                known = self.graph.fingerprint(label)
                if known is not None and known != fingerprint:
                    changed += 1
            outputs.append((label, fingerprint))
            n = row_count(d)
            if n is not None:
                rows += n
                has_rows = True
        inputs = [self.label(d.namespace, d.name) for d in event.inputs]
        return _Plan(inputs, outputs, min(rows, 2**53), has_rows, changed)

    def _commit(self, pipeline: str, plan: _Plan, at: float, now: float, completed: bool) -> None:
        graph = self.graph
        for label in plan.inputs:
            info = graph.dataset(label, now)
            if info is not None:
                graph.read(info, pipeline, now)
        for label, fingerprint in plan.outputs:
            info = graph.dataset(label, now)
            if info is None:
                continue
            graph.wrote(info, pipeline, now)
            if fingerprint is not None:
                if info.fingerprint not in (None, fingerprint):
                    info.schema_changed_at = at
                info.fingerprint = fingerprint
            if completed:
                before = info.updated.get(pipeline)
                info.updated[pipeline] = at if before is None else max(before, at)

    # -- exposition ---------------------------------------------------------
    def render(self, openmetrics: bool = False) -> str:
        """Return the lineage metrics and the recorder's own (call off the event loop)."""
        with self.runs.lock:
            self.runs.sweep()
            open_runs = len(self.runs)
            evicted = dict(self.runs.evicted)
        with self._lock:
            counts = sorted(self._counts.items())
        events = "pipemedic_exporter_lineage_events_total"
        evicted_name = "pipemedic_exporter_lineage_runs_evicted_total"
        om = openmetrics
        out = [
            self.graph.render(om),
            family_header(events, om),
            *(f'{events}{{event_type="{t}",outcome="{o}"}} {n}\n' for (t, o), n in counts),
            family_header("pipemedic_exporter_lineage_open_runs", om),
            f"pipemedic_exporter_lineage_open_runs {open_runs}\n",
            family_header("pipemedic_exporter_lineage_max_open_runs", om),
            f"pipemedic_exporter_lineage_max_open_runs {self.runs.cap}\n",
            family_header("pipemedic_exporter_lineage_run_ttl_seconds", om),
            f"pipemedic_exporter_lineage_run_ttl_seconds {format_value(self.runs.ttl)}\n",
            family_header(evicted_name, om),
            *(f'{evicted_name}{{reason="{r}"}} {n}\n' for r, n in sorted(evicted.items())),
        ]
        return "".join(out)

    def to_json(self) -> dict[str, object]:
        """Return ``GET /lineage``: every pipeline the registry knows, datasets, edges, cycles."""
        names = [s.name for s in self.registry.states()]
        return self.graph.to_json(names)


@dataclass(frozen=True, slots=True)
class _Plan:
    inputs: list[str]
    outputs: list[tuple[str, int | None]]
    rows: int
    has_rows: bool
    schema_changes: int


def _duration(run: RunRecord, at: float) -> float | None:
    if run.started_at is None or at < run.started_at:
        return None
    return at - run.started_at


def _opened(pipeline: str, at: float, until: float) -> Change:
    """A root run started: alive until ``until`` even without heartbeats."""

    def apply(s: PipelineState) -> None:
        s.start_run(at)
        s.open_until = until if s.open_until is None else max(s.open_until, until)

    return Change(pipeline, apply)


def _closed(pipeline: str, at: float) -> Change:
    """A root run ended: the pipeline is idle (no ``pipeline_up``) until its next sign of life."""

    def apply(s: PipelineState) -> None:
        s.open_until = None
        s.idle_since = at if s.idle_since is None else max(s.idle_since, at)

    return Change(pipeline, apply)
