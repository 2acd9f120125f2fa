"""Check through Prometheus that the diagnosed condition cleared after an action.

Each cause has symptom queries (:func:`symptoms`): while any returns a
series, the condition is still there. They come from the cause's row in
:mod:`pipemedic.vocabulary.causes`: new errors of its reasons within the
verify window, and its own symptoms (a gauge against the diagnosis
threshold, the dependency probes) through :data:`SIGNALS`; a pipeline
reported down (``pipeline_up == 0``) is never verified. Polling
continues until everything is clear or the deadline passes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from pipemedic.vocabulary import cause
from receiver.diagnosis import queries
from receiver.diagnosis.prometheus import PrometheusAPI, PrometheusError, sample_value

__all__ = ["SIGNALS", "Symptom", "Verification", "Verifier", "symptoms"]


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


# Symptom signal (pipemedic.vocabulary.causes.Symptom) -> its query and threshold,
# the same numbers diagnosis judges by.
SIGNALS: Final[dict[str, tuple[Callable[[str], str], int | float]]] = {
    "dependency_up": (queries.dependency_up, 0),
    "memory_ratio": (queries.memory_ratio, queries.MEMORY_RATIO_LIMIT),
    "cpu_ratio": (queries.cpu_ratio, queries.CPU_RATIO_LIMIT),
    "disk_free": (queries.disk_free, queries.DISK_FREE_MIN_BYTES),
}


def symptoms(cause_name: str, pipeline: str, window_seconds: float) -> list[Symptom]:
    """Return the queries that show a cause still affecting ``pipeline``.

    A pipeline reported down, new errors of the cause's reasons, and the
    cause's own symptoms (:class:`pipemedic.vocabulary.Cause`).
    """
    p = pipeline
    out = [Symptom(f"{queries.pipeline_up(p)} == 0", "pipeline reported down")]
    row = cause(cause_name)
    if row is None:
        return out
    if row.reasons:
        out.append(
            Symptom(
                queries.errors_by_reason(p, queries.window(window_seconds)),
                f"new errors ({', '.join(sorted(row.reasons))})",
                frozenset(row.reasons),
            )
        )
    for symptom in row.symptoms:
        build, threshold = SIGNALS[symptom.signal]
        out.append(Symptom(f"{build(p)} {symptom.op} {threshold}", symptom.note))
    return out


class Verifier:
    """Poll the symptom queries until they are all empty or the deadline passes."""

    def __init__(
        self,
        prom: PrometheusAPI,
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

    async def verify(self, cause: str, pipeline: str) -> Verification:
        """Return whether the condition cleared within the deadline, and what was seen."""
        checks = symptoms(cause, pipeline, self.window_seconds)
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
