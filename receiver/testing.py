"""A Prometheus that answers from a table, for fast tests of code that queries it.

``StaticPrometheus`` implements ``PrometheusQuery`` the way httpx's
``MockTransport`` stands in for a network: no server, the same interface, and
answers the test chose. Keys are PromQL exactly as the code under test
builds it, so build them with the same functions (``receiver.diagnosis.queries``);
an ``Expr`` key stands for its text.
A query the table does not know answers an empty vector, as Prometheus does
for a selector that matches nothing; ``unanswered`` lists those, so a test
can tell a deliberate gap from a key that no longer matches. The tests against
a real Prometheus stay the reference; these check the logic around it.

Example::

    prom = StaticPrometheus({
        queries.dependency_up("etl"): [row(0, dependency="warehouse")],
        queries.errors_by_reason("etl", "15m"): [row(12, category="data", reason="schema_change")],
    })
    diagnosis = await diagnose(alert, spec.pipeline("etl"), prom)
    assert prom.asked[0] == queries.pipeline_up("etl")
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from receiver.errors import PrometheusError
from rules.promql import Expr

__all__ = ["Answer", "Answers", "StaticPrometheus", "row"]

# rows to return, one unlabelled sample's value, or the error Prometheus "raises"
Answer = Sequence[Mapping[str, Any]] | float | PrometheusError

# PromQL (text or built) -> its answer; Mapping's key type is invariant, hence three
Answers = Mapping[str, Answer] | Mapping[Expr, Answer] | Mapping[str | Expr, Answer]

# the evaluation time of every sample (Prometheus returns [unix time, "value"])
_AT = 1_700_000_000.0


def row(value: float, **labels: str) -> dict[str, Any]:
    """Return one instant-vector row as ``/api/v1/query`` sends it: labels and [time, "value"]."""
    return {"metric": dict(labels), "value": [_AT, _text(value)]}


def _text(value: float) -> str:
    """Format a sample value as Prometheus does: ``12``, ``0.95``, ``NaN``, ``+Inf``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class StaticPrometheus:
    """Answer instant queries from ``answers`` (PromQL -> rows, a value, or an error).

    ``answers`` may be changed between queries (a series that clears, say);
    ``asked`` keeps every query in order, ``unanswered`` those with no entry.
    """

    def __init__(self, answers: Answers | None = None) -> None:
        self.answers: dict[str, Answer] = {str(q): a for q, a in (answers or {}).items()}
        self.asked: list[str] = []

    @property
    def unanswered(self) -> list[str]:
        """The queries asked that the table had no answer for (each once, in order)."""
        return list(dict.fromkeys(q for q in self.asked if q not in self.answers))

    async def query(self, promql: str | Expr) -> list[dict[str, Any]]:
        """Return the table's answer for ``promql`` (a fresh copy), or an empty vector."""
        text = str(promql)
        self.asked.append(text)
        answer = self.answers.get(text, ())
        if isinstance(answer, PrometheusError):
            raise answer
        if isinstance(answer, int | float):
            return [row(answer)]
        return [
            {"metric": dict(r.get("metric") or {}), "value": list(r.get("value") or [])}
            for r in answer
        ]
