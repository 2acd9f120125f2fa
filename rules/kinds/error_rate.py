"""PipelineHighErrorRate: failed records (or runs) above the pipeline's ``max_error_rate``.

The ratios are recorded once per cycle for every active pipeline
(:func:`error_ratio_rules`) over the spec's ``rate_window``; the recording
names keep ``rate5m`` whatever the window, so that everything reading them
(alerts, SLO rules, dashboards) stays the same.
"""

from __future__ import annotations

from typing import Any

from rules.alerts import lowest_threshold, params_for
from rules.kinds import PIPELINE, KindRules, Signal, template
from rules.promql import Expr, agg, binop, call, matrix, number, selector
from rules.rulefile import record
from rules.spec import Spec
from rules.templates import Value
from rules.testcases import Builder, Case, KindTests, free_name, per_minute, series, threshold_cases

__all__ = ["ERROR_RATIO", "RULES", "RUNS_FAILED", "RUN_ERROR_RATIO", "error_ratio_rules"]

ERROR_RATIO = "pipeline:error_ratio:rate5m"
RUN_ERROR_RATIO = "pipeline:run_error_ratio:rate5m"
RUNS_FAILED = "pipeline:runs_failed:rate5m"
_BY = ("pipeline",)
_FAILED = {"status": "failure"}


def _rate(metric: str, window: str, matchers: dict[str, str] | None = None) -> Expr:
    return agg("sum", call("rate", matrix(selector(metric, matchers), window)), _BY)


def error_ratio_rules(spec: Spec, window: str) -> list[dict[str, Any]]:
    """Return the error-ratio records: records (every active pipeline) and runs (failing ones).

    ``pipeline:error_ratio:rate5m`` is the README's error ratio, failed /
    processed records, for every pipeline that processed records in the
    window; a pipeline with none has no series (never NaN, so nothing fires
    on a quiet pipeline). ``pipeline:run_error_ratio:rate5m`` is failed / all
    runs, so that runs failing before reading a record still count; it
    exists only for pipelines with failed runs in the window (a ratio of 0
    exceeds no threshold, and 10,000 recorded zeros a cycle were measured to
    cost more than the ratio's arithmetic). Their failure rate is recorded
    first (``pipeline:runs_failed:rate5m``, a handful of series), so the
    ratio reads each runs series once: failed / (failed + the other runs),
    or 1 where a pipeline exports only failed runs.
    PipelineHighErrorRate takes the larger of the two ratios, but only for
    the few pipelines above a threshold (:func:`_signal`): combining them
    here would cost an ``or`` and a ``max`` over every pipeline's series
    each cycle. ``window`` is the rate window.
    """
    records = binop(
        _rate("pipeline_records_failed_total", window),
        "/",
        binop(_rate("pipeline_records_processed_total", window), ">", number(0)),
    )
    failing = binop(
        call("rate", matrix(selector("pipeline_runs_total", _FAILED), window)), ">", number(0)
    )
    failed = selector(RUNS_FAILED)
    others = _rate("pipeline_runs_total", window, {"status": "!=failure"})
    runs = binop(failed, "/", binop(binop(failed, "+", others), "or", failed))
    return [
        record(ERROR_RATIO, records),
        record(RUNS_FAILED, agg("sum", failing, _BY)),
        record(RUN_ERROR_RATIO, runs),
    ]


def _signal(spec: Spec, window: str) -> Signal:
    # the larger of the two ratios is above x iff one of them is; the runs
    # ratio gets a label of its own so that ``or`` keeps both for ``max``
    low = number(lowest_threshold(spec, "error_rate"))
    runs = call(
        "label_replace", binop(selector(RUN_ERROR_RATIO), ">", low), "ratio", "runs", "", ""
    )
    either = binop(binop(selector(ERROR_RATIO), ">", low), "or", runs)
    return Signal(agg("max", either, _BY), (">",))


def _case(b: Builder, pipeline: str, ratio: float, fires: bool, steps: int) -> Case:
    processed, failed = per_minute(ratio)
    labels = b.labels(pipeline)
    found = [
        series("pipeline_records_processed_total", labels, f"0+{processed}x{steps}"),
        series("pipeline_records_failed_total", labels, f"0+{failed}x{steps}"),
    ]
    return b.case(pipeline, found, failed / processed if fires else None)


def _mixed_case(b: Builder, name: str, records: float, runs: float, steps: int) -> Case:
    """A pipeline with both ratios: it fires with the larger (unlisted: default threshold)."""
    pipeline = free_name(b.spec, name)
    labels = b.labels(pipeline)
    processed, failed = per_minute(records)
    total, failed_runs = per_minute(runs)
    found = [
        series("pipeline_records_processed_total", labels, f"0+{processed}x{steps}"),
        series("pipeline_records_failed_total", labels, f"0+{failed}x{steps}"),
        series(
            "pipeline_runs_total",
            {**labels, "status": "success"},
            f"0+{total - failed_runs}x{steps}",
        ),
        series("pipeline_runs_total", {**labels, "status": "failure"}, f"0+{failed_runs}x{steps}"),
    ]
    return b.case(pipeline, found, max(failed / processed, failed_runs / total))


def _quiet_cases(b: Builder, steps: int) -> list[Case]:
    """A quiet pipeline stays silent; one whose runs fail with zero records fires."""
    quiet = b.labels(free_name(b.spec, "pipemedic_quiet"))
    failing = free_name(b.spec, "pipemedic_quiet_failing")
    f = b.labels(failing)
    return [
        Case(
            [
                series("pipeline_records_processed_total", quiet, f"0x{steps}"),
                series("pipeline_records_failed_total", quiet, f"0x{steps}"),
                series("pipeline_runs_total", {**quiet, "status": "success"}, f"5x{steps}"),
            ]
        ),
        b.case(
            failing,
            [
                series("pipeline_records_processed_total", f, f"0x{steps}"),
                series("pipeline_records_failed_total", f, f"0x{steps}"),
                series("pipeline_runs_total", {**f, "status": "failure"}, f"0+1x{steps}"),
            ],
            1.0,
        ),
    ]


def _cases(b: Builder, steps: int) -> list[Case]:
    """Defaults and overrides; a quiet pipeline; runs failing more than records, and the reverse."""
    d = params_for(b.spec.defaults, "error_rate").value
    return [
        *threshold_cases(b, steps, _case, lambda t: (t + 1) / 2),
        *_quiet_cases(b, steps),
        _mixed_case(b, "pipemedic_runs_failing", d / 2, (d + 1) / 2, steps),
        _mixed_case(b, "pipemedic_records_failing", (d + 1) / 2, d / 2, steps),
    ]


RULES = KindRules(
    summary=template("Pipeline ", PIPELINE, " error rate is high"),
    description=template(
        PIPELINE,
        ": ",
        Value("humanizePercentage"),
        " of records (or runs) failed over the rate window, above its max_error_rate.",
    ),
    signal=_signal,
    records=error_ratio_rules,
)
TESTS = KindTests(cases=_cases, fires_at_start=False)  # a rate needs two samples first
