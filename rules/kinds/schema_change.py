"""PipelineSchemaChange: an output dataset's schema changed (errors with reason ``schema_change``).

The exporter counts a changed ``schema`` facet (fields added, removed or
retyped) as a data error with reason ``schema_change``. The alert fires
while the counter grew within the lookback, or when its series is new (a
first schema change creates the series at 1, which ``increase`` alone never
sees); a series created at 0 does not fire. The lookback is the rate window
plus the longest ``for`` of the kind, so that one change fires for every
pipeline's ``for`` and then resolves a rate window later.
"""

from __future__ import annotations

from rules.alerts import for_seconds
from rules.durations import format_duration, parse_duration
from rules.kinds import PIPELINE, KindRules, Signal, template
from rules.promql import agg, binop, call, matrix, number, offset, selector
from rules.spec import Spec
from rules.testcases import MARGIN, STEP, Builder, Case, KindTests, free_name, series

METRIC = "pipeline_errors_total"
_LABELS = ("pipeline", "category", "reason")


def lookback(spec: Spec, window: str) -> str:
    """Return how far back a schema change counts: the rate window plus the longest ``for``."""
    longest = max(
        for_seconds(p, "schema_change") for p in (spec.defaults, *spec.pipelines.values())
    )
    return format_duration(parse_duration(window) + longest)


def _signal(spec: Spec, window: str) -> Signal:
    back = lookback(spec, window)
    errors = selector(METRIC, reason="schema_change")
    grew = binop(call("increase", matrix(errors, back)), ">", number(0))
    new = binop(binop(errors, ">", number(0)), "unless", offset(errors, back), on=_LABELS)
    return Signal(agg("max", binop(grew, "or", new), ("pipeline",)))


def _errors(b: Builder, pipeline: str, values: str) -> list[tuple[str, str]]:
    labels = b.labels(pipeline, category="data", reason="schema_change")
    return [series(METRIC, labels, values)]


def _cases(b: Builder, steps: int) -> list[Case]:
    """The counter grows a step before the pipeline's ``for``, or a series appears then.

    The test checks once, after the longest ``for`` and the margin; steady
    counters and series created at 0 stay silent. (``increase`` needs two
    samples in the rate window: a window of two steps or more.)
    """
    firing = [b.unlisted, *b.listed()]
    end = int(max(b.for_(p) for p in firing) + MARGIN) // STEP

    def before(pipeline: str) -> int:
        return end - int(b.for_(pipeline)) // STEP - 2

    cases = [b.case(p, _errors(b, p, f"0x{before(p)} 1x{steps}"), 1.0) for p in firing]
    new = free_name(b.spec, "pipemedic_new_series")
    appears = f"_x{before(b.unlisted)} 1x{steps}"
    return [
        *cases,
        b.case(new, _errors(b, new, appears), 1.0),
        b.case(b.unlisted_ok, _errors(b, b.unlisted_ok, f"2x{steps}"), None),
        Case(_errors(b, free_name(b.spec, "pipemedic_zero_series"), f"_x{end - 2} 0x{steps}")),
    ]


RULES = KindRules(
    summary=template("Pipeline ", PIPELINE, " output schema changed"),
    description=template(
        PIPELINE,
        ": the schema of an output dataset changed (fields added, removed or retyped); "
        "readers downstream may break.",
    ),
    signal=_signal,
)
# no check at the first evaluation: then every series is new
TESTS = KindTests(cases=_cases, fires_at_start=None)
