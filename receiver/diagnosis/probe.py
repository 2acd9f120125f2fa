"""What a diagnosis handler works with: a probe that records every query it runs.

A handler asks the :class:`Probe` for numbers; the probe runs the PromQL,
keeps the query and its answer as :class:`~receiver.models.Evidence`, and
hands back plain values. So every diagnosis carries exactly the evidence it
saw, whichever handler decided. ``PrometheusError`` propagates: a handler
never turns "could not ask" into a cause.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from pipemedic.vocabulary import REASON_CAUSE
from receiver.diagnosis import queries
from receiver.diagnosis.prometheus import PrometheusQuery, sample_value
from receiver.models import Evidence
from rules.promql import Expr
from rules.spec import DiagnosisThresholds, PipelineSpec

__all__ = ["Finding", "Handler", "Probe", "ReasonCount"]


@dataclass(frozen=True)
class Finding:
    """A handler's conclusion: a cause from ``pipemedic.vocabulary.CAUSES`` and why."""

    cause: str
    summary: str


@dataclass(frozen=True)
class ReasonCount:
    """How many errors of one (category, reason) grew within the window."""

    category: str
    reason: str
    count: float

    @property
    def cause(self) -> str | None:
        found = REASON_CAUSE.get(self.reason)
        return found[1] if found else None


class Handler(Protocol):
    """A diagnosis handler: look at the evidence, return a finding or None (inconclusive)."""

    async def __call__(self, probe: Probe) -> Finding | None: ...


class Probe:
    """Run evidence queries for one pipeline and remember each query and answer."""

    def __init__(
        self, prom: PrometheusQuery, pipeline: str, spec: PipelineSpec, window: str = "15m"
    ) -> None:
        self.prom = prom
        self.pipeline = pipeline
        self.spec = spec
        self.window = queries.window(window)
        self.evidence: list[Evidence] = []
        self._reasons: list[ReasonCount] | None = None
        self._values: dict[str, float | None] = {}

    @property
    def thresholds(self) -> DiagnosisThresholds:
        """The pipeline's ``diagnosis:`` numbers (memory ratio, slow ratio, baseline...)."""
        return self.spec.diagnosis

    async def rows(self, promql: Expr | str, note: str) -> list[dict[str, Any]]:
        """Run a query, record it as evidence, and return its rows."""
        result = await self.prom.query(promql)  # a per-pipeline question may be batched
        compact = [
            {"labels": dict(row.get("metric") or {}), "value": _raw_value(row)} for row in result
        ]
        self.evidence.append(Evidence(query=str(promql), result=compact, note=note))
        return result

    async def once(self, promql: Expr, note: str) -> float | None:
        """Like :meth:`value`, but a query two analyses share runs (and is recorded) once."""
        key = str(promql)
        if key not in self._values:
            self._values[key] = await self.value(promql, note)
        return self._values[key]

    async def value(self, promql: Expr | str, note: str) -> float | None:
        """Return the first row's value, or None when there is no (finite) sample."""
        rows = await self.rows(promql, note)
        if not rows:
            return None
        value = sample_value(rows[0])
        return None if math.isnan(value) or math.isinf(value) else value

    async def dependencies_down(self) -> list[str]:
        """Return the names of the pipeline's dependencies whose probe says down."""
        rows = await self.rows(
            queries.dependency_up(self.pipeline), "dependency probes (1 up, 0 down)"
        )
        return sorted(
            str((row.get("metric") or {}).get("dependency", "?"))
            for row in rows
            if sample_value(row) == 0
        )

    async def error_reasons(self, category: str | None = None) -> list[ReasonCount]:
        """Return error reasons that grew in the window, most frequent first."""
        if self._reasons is None:
            rows = await self.rows(
                queries.errors_by_reason(self.pipeline, self.window),
                f"errors by reason over the last {self.window}",
            )
            counts = [
                ReasonCount(
                    category=str((row.get("metric") or {}).get("category", "")),
                    reason=str((row.get("metric") or {}).get("reason", "")),
                    count=sample_value(row),
                )
                for row in rows
            ]
            self._reasons = sorted(
                (c for c in counts if c.count > 0), key=lambda c: (-c.count, c.reason)
            )
        if category is None:
            return list(self._reasons)
        return [c for c in self._reasons if c.category == category]

    async def dominant_cause(self, category: str | None = None) -> Finding | None:
        """Return the cause of the most frequent known error reason (of a category)."""
        for count in await self.error_reasons(category):
            cause = count.cause
            if cause is not None:
                scope = f"{category} " if category else ""
                return Finding(
                    cause,
                    f"dominant {scope}error reason {count.reason!r}: "
                    f"{count.count:g} errors in the last {self.window}",
                )
        return None


def _raw_value(row: dict[str, Any]) -> str | None:
    value = row.get("value")
    if isinstance(value, list) and len(value) == 2:
        return str(value[1])
    return None
