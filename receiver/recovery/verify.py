"""Check through Prometheus that the diagnosed condition cleared after an action.

Each cause has symptom queries (:func:`symptoms`): while any returns a
series, the condition is still there. They come from the cause's row in
:mod:`pipemedic.vocabulary.causes`: new errors of its reasons within the
verify window, and its own symptoms (a gauge against the diagnosis
threshold from the pipeline's ``diagnosis:`` numbers, the dependency probes,
slow runs on the host, the age of the last run start) through
:data:`SIGNALS`; a pipeline reported down (``pipeline_up == 0``) is never
verified. Queries are built with ``rules.promql`` and parsed before they are
sent. Polling
continues until everything is clear or the deadline passes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from pipemedic.vocabulary import ALERT_KINDS, by_alert, cause
from receiver.diagnosis import queries
from receiver.diagnosis.prometheus import PrometheusError, PrometheusQuery, sample_value
from rules.promql import Expr, agg, binop, call, check, matrix, number, selector
from rules.spec import DiagnosisThresholds, PipelineSpec

__all__ = [
    "ALERT_SIGNALS",
    "SIGNALS",
    "Signal",
    "Symptom",
    "Verification",
    "Verifier",
    "alert_symptoms",
    "symptoms",
]

DEFAULT_THRESHOLDS = DiagnosisThresholds()


@dataclass(frozen=True)
class Symptom:
    """A query that returns series while the condition persists (``reasons``: keep only these)."""

    query: str
    note: str
    reasons: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Verification:
    cleared: bool
    detail: str
    checks: int


# A signal's query for (pipeline, thresholds, verify window), and its threshold.
Signal = tuple[
    Callable[[str, DiagnosisThresholds, str], Expr], Callable[[DiagnosisThresholds, str], float]
]


def _run_slowdown(p: str, t: DiagnosisThresholds, recent: str) -> Expr:
    return queries.run_slowdown(p, t.baseline, recent)


def _since_run_start(p: str, t: DiagnosisThresholds, recent: str) -> Expr:
    """Seconds since the last run started; since the epoch when none ever did."""
    start = agg("max", selector("pipeline_last_run_start_timestamp_seconds", pipeline=p))
    return binop(call("time"), "-", binop(start, "or", call("vector", number(0))))


# Symptom signal (pipemedic.vocabulary.causes.Symptom) -> its query and threshold,
# the same numbers diagnosis judges by (the pipeline's ``diagnosis:`` spec).
SIGNALS: Final[dict[str, Signal]] = {
    "dependency_up": (lambda p, t, r: queries.dependency_up(p), lambda t, r: 0),
    "memory_ratio": (lambda p, t, r: queries.memory_ratio(p), lambda t, r: t.memory_ratio),
    "cpu_ratio": (lambda p, t, r: queries.cpu_ratio(p), lambda t, r: t.cpu_ratio),
    "disk_free": (lambda p, t, r: queries.disk_free(p), lambda t, r: t.disk_free_bytes),
    "run_slowdown": (_run_slowdown, lambda t, r: t.slow_ratio),
    "since_run_start": (_since_run_start, lambda t, r: queries.seconds(r)),
}


def symptoms(
    cause_name: str,
    pipeline: str,
    window_seconds: float,
    thresholds: DiagnosisThresholds = DEFAULT_THRESHOLDS,
) -> list[Symptom]:
    """Return the queries that show a cause still affecting ``pipeline``.

    A pipeline reported down, new errors of the cause's reasons, and the
    cause's own symptoms (:class:`pipemedic.vocabulary.Cause`) judged by
    ``thresholds``, the pipeline's ``diagnosis:`` numbers.
    """
    p, recent = pipeline, queries.window(window_seconds)
    down = check(binop(queries.pipeline_up(p), "==", number(0)))
    out = [Symptom(down.text, "pipeline reported down")]
    row = cause(cause_name)
    if row is None:
        return out
    if row.reasons:
        out.append(
            Symptom(
                queries.errors_by_reason(p, recent).text,
                f"new errors ({', '.join(sorted(row.reasons))})",
                frozenset(row.reasons),
            )
        )
    for symptom in row.symptoms:
        build, threshold = SIGNALS[symptom.signal]
        limit = number(threshold(thresholds, recent))
        query = check(binop(build(p, thresholds, recent), symptom.op, limit))
        out.append(Symptom(query.text, symptom.note))
    return out


# Alert-kind signal (``AlertKind.clears.signal`` in pipemedic.vocabulary.alerts) -> its
# per-pipeline query over the verify window. The kind's row names the signal, the operator
# and (its first ``thresholds`` field) the spec threshold; this table only builds queries.
ALERT_SIGNALS: Final[dict[str, Callable[[str, str], Expr]]] = {
    "staleness": lambda p, r: queries.staleness(p),
    "failed_ratio": lambda p, r: queries.failed_ratio(p, r),
    "last_run_duration": lambda p, r: queries.last_run_duration(p),
    "heartbeat_age": lambda p, r: queries.heartbeat_age(p),
    "dependency_up": lambda p, r: queries.dependency_up(p),
    "schema_changes": lambda p, r: agg(
        "sum",
        call(
            "increase",
            matrix(selector("pipeline_errors_total", pipeline=p, reason="schema_change"), r),
        ),
    ),
}
_NAMED = {k.clears.signal for k in ALERT_KINDS if k.clears is not None}
assert set(ALERT_SIGNALS) >= _NAMED, (
    f"alert kinds name unknown signals: {_NAMED - set(ALERT_SIGNALS)}"
)


def alert_symptoms(alert_name: str, spec: PipelineSpec, window_seconds: float) -> list[Symptom]:
    """Return the queries that show an alert's own condition still holding for ``spec``'s
    pipeline: the pipeline reported down, and the condition its alert kind's row gives
    (``AlertKind.clears``) against the spec's threshold. Someone else's alert (no kind),
    or a kind without one, is judged by the first only."""
    p, recent = spec.name, queries.window(window_seconds)
    down = check(binop(queries.pipeline_up(p), "==", number(0)))
    out = [Symptom(down.text, "pipeline reported down")]
    kind = by_alert(alert_name)
    if kind is None or kind.clears is None:
        return out
    threshold = float(getattr(spec, kind.thresholds[0])) if kind.thresholds else 0.0
    build = ALERT_SIGNALS[kind.clears.signal]
    query = check(binop(build(p, recent), kind.clears.op, number(threshold)))
    out.append(Symptom(query.text, kind.clears.note))
    return out


class Verifier:
    """Poll the symptom queries until they are all empty or the deadline passes."""

    def __init__(
        self,
        prom: PrometheusQuery,
        *,
        deadline_seconds: float,
        interval_seconds: float,
        window_seconds: float,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.prom = prom
        self.deadline_seconds = deadline_seconds
        self.interval_seconds = interval_seconds
        self.window_seconds = window_seconds
        self.clock = clock
        self.sleep = sleep

    async def _still(self, checks: list[Symptom]) -> list[str]:
        present = []
        for s in checks:
            rows = await self.prom.query(s.query)
            if s.reasons:
                rows = [
                    r
                    for r in rows
                    if (r.get("metric") or {}).get("reason") in s.reasons and sample_value(r) > 0
                ]
            if rows:
                present.append(s.note)
        return present

    async def present(self, checks: list[Symptom]) -> list[str] | None:
        """Check once: the notes of the symptoms present (None: Prometheus not answering)."""
        try:
            return await self._still(checks)
        except PrometheusError:
            return None

    async def cleared_now(
        self,
        cause: str,
        pipeline: str,
        thresholds: DiagnosisThresholds = DEFAULT_THRESHOLDS,
    ) -> bool | None:
        """Check the symptoms once: True when none is present (None: Prometheus not answering)."""
        try:
            present = await self._still(symptoms(cause, pipeline, self.window_seconds, thresholds))
        except PrometheusError:
            return None
        return not present

    async def verify(
        self,
        cause: str,
        pipeline: str,
        thresholds: DiagnosisThresholds = DEFAULT_THRESHOLDS,
    ) -> Verification:
        """Return whether the condition cleared within the deadline, and what was seen."""
        checks = symptoms(cause, pipeline, self.window_seconds, thresholds)
        deadline = self.clock() + timedelta(seconds=self.deadline_seconds)
        count = 0
        last = "not checked"
        while True:
            count += 1
            try:
                present = await self._still(checks)
            except PrometheusError as exc:
                last = f"Prometheus not answering: {exc}"
            else:
                if not present:
                    return Verification(True, f"cleared after {count} check(s)", count)
                last = "still: " + "; ".join(present)
            if self.clock() >= deadline:
                return Verification(
                    False, f"not cleared within {self.deadline_seconds:g}s ({last})", count
                )
            await self.sleep(self.interval_seconds)
