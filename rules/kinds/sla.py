"""PipelineSLAViolation: the last run took longer than the pipeline's ``sla``."""

from __future__ import annotations

import math

from rules.alerts import lowest_threshold
from rules.kinds import PIPELINE, KindRules, Signal, template
from rules.promql import agg, binop, number, selector
from rules.spec import Spec
from rules.templates import Value
from rules.testcases import Builder, Case, KindTests, const, series, threshold_cases

METRIC = "pipeline_last_run_duration_seconds"


def _signal(spec: Spec, window: str) -> Signal:
    # the largest of a pipeline's series is above x iff one of them is
    low = number(lowest_threshold(spec, "sla"))
    return Signal(agg("max", binop(selector(METRIC), ">", low), ("pipeline",)), (">",))


def _case(b: Builder, pipeline: str, seconds: float, fires: bool, steps: int) -> Case:
    seconds = float(math.floor(seconds))
    found = [series(METRIC, b.labels(pipeline), const(seconds, steps))]
    return b.case(pipeline, found, seconds if fires else None)


def _cases(b: Builder, steps: int) -> list[Case]:
    return threshold_cases(b, steps, _case, lambda t: 2 * t)


RULES = KindRules(
    summary=template("Pipeline ", PIPELINE, " run exceeded its SLA"),
    description=template(
        PIPELINE, ": the last run took ", Value("humanizeDuration"), ", longer than its sla."
    ),
    signal=_signal,
)
TESTS = KindTests(cases=_cases)
