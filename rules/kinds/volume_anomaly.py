"""PipelineVolumeAnomaly: the last run's output rows are outside a band around their median.

``pipeline_last_run_output_records`` holds the rows the last run wrote
(OpenLineage ``outputStatistics.rowCount``). Its ratio to its median over
the spec's ``volume_window`` is recorded once per cycle, the median sampled
144 times over the window (a subquery: reading every scrape of a day for
every pipeline would cost Prometheus far more); the alert fires when the
last run wrote less than ``volume_min_ratio`` or more than
``volume_max_ratio`` times that median. The median is over samples, so a
volume that lasted longer weighs more, which for regular runs is the median
of the runs.
Pipelines without row counts have no series and stay quiet, and so does a
pipeline whose median is 0.
"""

from __future__ import annotations

import math
from typing import Any

from rules.alerts import highest_threshold, kind, lowest_threshold, params_for
from rules.durations import format_duration, parse_duration
from rules.kinds import PIPELINE, KindRules, Signal, template
from rules.promql import agg, binop, call, number, selector, subquery
from rules.rulefile import record
from rules.spec import Spec
from rules.templates import Value
from rules.testcases import STEP, Builder, Case, KindTests, free_name, promtool_test, series

METRIC = "pipeline_last_run_output_records"
RATIO = "pipeline:output_records:median_ratio"
SAMPLES = 144
_BY = ("pipeline",)


def resolution(window: str) -> str:
    """Return the subquery step that samples ``window`` :data:`SAMPLES` times (whole seconds)."""
    return format_duration(max(1, math.ceil(parse_duration(window) / SAMPLES)))


def _records(spec: Spec, rate_window: str) -> list[dict[str, Any]]:
    window = spec.defaults.volume_window
    sampled = subquery(selector(METRIC), window, resolution(window))
    median = agg("max", call("quantile_over_time", number(0.5), sampled), _BY)
    last = agg("max", selector(METRIC), _BY)
    return [record(RATIO, binop(last, "/", binop(median, ">", number(0))))]


def _signal(spec: Spec, window: str) -> Signal:
    ratio = selector(RATIO)
    # outside its own band implies outside the widest one: below the highest
    # minimum or above the lowest maximum
    low = binop(ratio, "<", number(highest_threshold(spec, "volume_anomaly", 0)))
    high = binop(ratio, ">", number(lowest_threshold(spec, "volume_anomaly", 1)))
    return Signal(binop(low, "or", high), ("<", ">"))


_BASE = 1000  # the median output rows of every test pipeline


def _ratio_for(b: Builder, pipeline: str) -> tuple[float, bool]:
    """Return an output ratio telling the pipeline's own band from the default's; if it fires.

    A listed pipeline's ratio sits between its bound and the default's, so
    it fires or not by its own band; one with the default band gets 1.5x
    its maximum.
    """
    d_min, d_max = params_for(b.spec.defaults, "volume_anomaly").values
    o_min, o_max = params_for(b.pipeline(pipeline), "volume_anomaly").values
    if o_max != d_max:
        ratio = (o_max + d_max) / 2
    elif o_min != d_min:
        ratio = (o_min + d_min) / 2
    else:
        ratio = 1.5 * o_max
    return ratio, not o_min <= ratio <= o_max


def _tests(spec: Spec) -> list[dict[str, Any]]:
    """One test with history: the median must be the usual volume before the last run changes it.

    Every pipeline writes ``_BASE`` rows for ``n`` subquery steps, then its
    test volume; the check comes ``for`` and a step later, while fewer
    samples of the new volume than of the usual one are in the window.
    """
    k = kind("volume_anomaly")
    b = Builder(spec, k)
    step = parse_duration(resolution(spec.defaults.volume_window))
    listed = b.listed()
    longest = max(b.for_(p) for p in (b.unlisted, *listed))
    n = math.ceil((longest + STEP) / step) + 2
    change = int(n * step // STEP)
    end = change * STEP + longest + STEP
    steps = int(end // STEP) + 2
    d_min, d_max = params_for(spec.defaults, "volume_anomaly").values

    def case(pipeline: str, ratio: float, fires: bool) -> Case:
        rows = round(ratio * _BASE)
        values = f"{_BASE}x{change - 1} {rows}x{steps - change}"
        found = [series(METRIC, b.labels(pipeline), values)]
        return b.case(pipeline, found, rows / _BASE if fires else None)

    cases = [
        case(b.unlisted, 1.5 * d_max, True),
        case(free_name(spec, "pipemedic_unlisted_low"), d_min / 2, True),
        case(b.unlisted_ok, (d_min + d_max) / 2, False),
        *(case(p, *_ratio_for(b, p)) for p in listed),
        Case([series("pipeline_up", b.labels(free_name(spec, "pipemedic_no_rows")), "1x5")]),
    ]
    return [promtool_test(f"{k.alert}: defaults, overrides, unlisted", k, cases, end)]


RULES = KindRules(
    summary=template("Pipeline ", PIPELINE, " output volume is unusual"),
    description=template(
        PIPELINE,
        ": the last run wrote ",
        Value(),
        " times its median output rows over volume_window, outside its "
        "[volume_min_ratio, volume_max_ratio].",
    ),
    signal=_signal,
    records=_records,
)
TESTS = KindTests(tests=_tests)
