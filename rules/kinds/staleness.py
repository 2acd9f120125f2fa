"""PipelineDataStale: the pipeline's output data is older than its ``max_staleness``."""

from __future__ import annotations

from rules.kinds import PIPELINE, KindRules, Signal, template
from rules.kinds.ages import age_case, age_signal
from rules.spec import Spec
from rules.templates import Value
from rules.testcases import Builder, Case, KindTests, threshold_cases

METRIC = "pipeline_last_update_timestamp_seconds"


def _signal(spec: Spec, window: str) -> Signal:
    return age_signal(spec, "staleness", METRIC)


def _case(b: Builder, pipeline: str, age: float, fires: bool, steps: int) -> Case:
    return age_case(b, METRIC, pipeline, age, fires, steps)


def _cases(b: Builder, steps: int) -> list[Case]:
    return threshold_cases(b, steps, _case, lambda t: 2 * t)


RULES = KindRules(
    summary=template("Pipeline ", PIPELINE, " data is stale"),
    description=template(
        PIPELINE,
        ": output data was last refreshed ",
        Value("humanizeDuration"),
        " ago, longer than its max_staleness.",
    ),
    signal=_signal,
)
TESTS = KindTests(cases=_cases)
