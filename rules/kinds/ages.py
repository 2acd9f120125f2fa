"""Signals and test cases shared by kinds that fire on the age of a timestamp gauge."""

from __future__ import annotations

import math

from rules.alerts import lowest_threshold
from rules.kinds import KindRules, Signal
from rules.promql import agg, binop, call, number, selector
from rules.spec import Spec
from rules.templates import Template
from rules.testcases import STEP, Builder, Case, KindTests, num, series, threshold_cases

__all__ = ["age_case", "age_kind", "age_signal"]


def age_signal(spec: Spec, kind_name: str, metric: str) -> Signal:
    """Return the age of the newest ``metric`` sample where older than the lowest threshold.

    Older than x iff the newest timestamp is before ``time() - x``; the
    value is the age in seconds.
    """
    newest = agg("max", selector(metric), ("pipeline",))
    low = number(lowest_threshold(spec, kind_name))
    old = binop(newest, "<", binop(call("time"), "-", low))
    return Signal(binop(call("time"), "-", old), (">",))


def age_case(b: Builder, metric: str, pipeline: str, age: float, fires: bool, steps: int) -> Case:
    """Return a pipeline whose ``metric`` keeps a constant ``age``: it advances with the clock."""
    age = float(math.floor(age))
    found = [series(metric, b.labels(pipeline), f"{num(-age)}+{STEP}x{steps}")]
    return b.case(pipeline, found, age if fires else None)


def age_kind(
    kind_name: str, metric: str, summary: Template, description: Template
) -> tuple[KindRules, KindTests]:
    """Return the ``RULES`` and ``TESTS`` of a kind firing when ``metric`` is older than its
    threshold (the age is the alert's value)."""

    def signal(spec: Spec, window: str) -> Signal:
        return age_signal(spec, kind_name, metric)

    def case(b: Builder, pipeline: str, age: float, fires: bool, steps: int) -> Case:
        return age_case(b, metric, pipeline, age, fires, steps)

    def cases(b: Builder, steps: int) -> list[Case]:
        return threshold_cases(b, steps, case, lambda t: 2 * t)

    return KindRules(summary, description, signal=signal), KindTests(cases=cases)
