"""PipelineDependencyDown: the exporter's probe of one of the pipeline's dependencies fails."""

from __future__ import annotations

from rules.kinds import PIPELINE, KindRules, Signal, template
from rules.promql import agg, binop, number, selector
from rules.spec import Spec
from rules.templates import Label, Value
from rules.testcases import Builder, Case, KindTests, label_cases


def _signal(spec: Spec, window: str) -> Signal:
    up = agg("max", selector("pipeline_dependency_up"), ("pipeline", "dependency"))
    return Signal(binop(up, "==", number(0)))


def _cases(b: Builder, steps: int) -> list[Case]:
    return label_cases(b, steps, "pipeline_dependency_up", {"dependency": "warehouse"})


RULES = KindRules(
    summary=template("Dependency ", Label("dependency"), " of pipeline ", PIPELINE, " is down"),
    description=template(
        PIPELINE,
        ": the probe of its dependency ",
        Label("dependency"),
        " has been failing (pipeline_dependency_up = ",
        Value(),
        ").",
    ),
    signal=_signal,
)
TESTS = KindTests(cases=_cases)
