"""PipelineDown: ``pipeline_up`` is 0 (no fresh heartbeat, or the pipeline said it is down)."""

from __future__ import annotations

from rules.kinds import PIPELINE, KindRules, Signal, template
from rules.promql import agg, binop, number, selector
from rules.spec import Spec
from rules.templates import Value
from rules.testcases import Builder, Case, KindTests, label_cases


def _signal(spec: Spec, window: str) -> Signal:
    return Signal(binop(agg("max", selector("pipeline_up"), ("pipeline",)), "==", number(0)))


def _cases(b: Builder, steps: int) -> list[Case]:
    return label_cases(b, steps, "pipeline_up", {})


RULES = KindRules(
    summary=template("Pipeline ", PIPELINE, " is down"),
    description=template(
        "pipeline_up of ",
        PIPELINE,
        " has been ",
        Value(),
        " (no fresh heartbeat, or the pipeline reported itself down).",
    ),
    signal=_signal,
)
TESTS = KindTests(cases=_cases)
