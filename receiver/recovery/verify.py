"""Check through Prometheus that the diagnosed condition cleared after an action.

Each cause has symptom queries (:func:`symptoms`): while any returns a
series, the condition is still there. Error causes look for new errors of
their reasons within the verify window; resource causes compare the gauge
with the diagnosis threshold; a dependency cause looks at the probes; and a
pipeline reported down (``pipeline_up == 0``) is never verified. Polling
continues until everything is clear or the deadline passes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipemedic.taxonomy import REASON_CAUSE
from receiver.diagnosis import queries
from receiver.diagnosis.prometheus import PrometheusAPI, PrometheusError, sample_value

__all__ = ["Symptom", "Verification", "Verifier", "symptoms"]


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


def symptoms(cause: str, pipeline: str, window_seconds: float) -> list[Symptom]:
    """Return the queries that show ``cause`` still affecting ``pipeline``."""
    p = pipeline
    out = [Symptom(f"{queries.pipeline_up(p)} == 0", "pipeline reported down")]
    reasons = frozenset(r for r, (_, c) in REASON_CAUSE.items() if c == cause)
    if reasons:
        out.append(
            Symptom(
                queries.errors_by_reason(p, queries.window(window_seconds)),
                f"new errors ({', '.join(sorted(reasons))})",
                reasons,
            )
        )
    if cause == "dependency_down":
        out.append(Symptom(f"{queries.dependency_up(p)} == 0", "dependency probe down"))
    elif cause == "memory_limit":
        out.append(
            Symptom(
                f"{queries.memory_ratio(p)} >= {queries.MEMORY_RATIO_LIMIT}", "memory at its limit"
            )
        )
    elif cause == "disk_full":
        out.append(
            Symptom(f"{queries.disk_free(p)} < {queries.DISK_FREE_MIN_BYTES}", "disk nearly full")
        )
    elif cause == "cpu_saturation":
        out.append(Symptom(f"{queries.cpu_ratio(p)} >= {queries.CPU_RATIO_LIMIT}", "CPU saturated"))
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
