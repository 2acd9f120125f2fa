"""PipelineNeverReported: a pipeline the spec lists has not reported since the exporter started.

A pipeline with no series at all raises nothing else (no ``pipeline_up``,
no staleness), so the exporter started with ``--spec`` exports
``pipeline_awaiting_first_report_timestamp_seconds`` for each listed
pipeline until its first report; this fires once that wait exceeds the
pipeline's ``heartbeat_timeout`` (the spec's "how long without a sign of
life"). A pipeline that reports once and then stops is PipelineDown's.
"""

from __future__ import annotations

from rules.kinds import PIPELINE, KindRules, Signal, template
from rules.kinds.ages import age_case, age_signal
from rules.spec import Spec
from rules.templates import Value
from rules.testcases import Builder, Case, KindTests, threshold_cases

METRIC = "pipeline_awaiting_first_report_timestamp_seconds"


def _signal(spec: Spec, window: str) -> Signal:
    return age_signal(spec, "never_reported", METRIC)


def _case(b: Builder, pipeline: str, age: float, fires: bool, steps: int) -> Case:
    return age_case(b, METRIC, pipeline, age, fires, steps)


def _cases(b: Builder, steps: int) -> list[Case]:
    return threshold_cases(b, steps, _case, lambda t: 2 * t)


RULES = KindRules(
    summary=template("Pipeline ", PIPELINE, " has never reported"),
    description=template(
        PIPELINE,
        ": listed in the spec, but no run, heartbeat or event for ",
        Value("humanizeDuration"),
        " since the exporter started, longer than its heartbeat_timeout.",
    ),
    signal=_signal,
)
TESTS = KindTests(cases=_cases)
