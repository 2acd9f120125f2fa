"""Turn the spec into Prometheus rule files whose alert count does not grow with pipelines.

Layout of ``pipemedic-pipelines`` (one group, evaluated in order, so every
alert sees this cycle's constants and signals):

1. The spec as constant series (:mod:`rules.specdata`): the defaults'
   settings as one ``pipemedic:alert_spec:default`` series; one
   ``pipeline:alert_spec:info`` series per listed pipeline that differs from
   the defaults, its settings as labels (thresholds, ``impact``, its own
   ``for_<kind>``/``severity_<kind>``), shared by every kind; one
   ``pipemedic:<param>:value`` per distinct threshold; the SEV table
   (``pipemedic:alert_sev:map``). Overrides are data, and Prometheus charges
   per rule, so there is one rule per differing pipeline, not one per
   pipeline and kind. A constant is a bare number, which Prometheus records
   as one series with the rule's labels (cheaper than ``vector(number)``).
2. ``pipeline:error_ratio:rate5m`` (failed / processed records, DESIGN.md's
   error ratio), the only full-size signal recorded, and
   ``pipeline:run_error_ratio:rate5m`` (failed / all runs, only for the
   pipelines with failed runs, from ``pipeline:runs_failed:rate5m``). Every
   series costs Prometheus work per pipeline per cycle, so nothing else is
   recorded per pipeline: the gauges are read raw by their candidates, and
   the larger of the two ratios is taken only for the error-rate candidates.
3. Per kind, ``pipeline:<kind>_alert:candidates``: the signal where it is
   down (``== 0``) or above the lowest threshold any pipeline has, so every
   pipeline that may fire and usually only those (:func:`candidates`); then
   ``pipeline:<kind>_alert:matched``: the candidates of listed pipelines
   joined with their info series, threshold value and SEV
   (:func:`rules.specdata.joined`), ``or on(pipeline)`` the others' against
   the default, so a pipeline absent from the spec is covered by the
   defaults. Both are a handful of series, and the join is computed once
   however many ``for`` rules the kind has.
4. Alerts: each selects its kind's ``matched`` series, by ``for_override``
   where ``for`` values differ. Alerts per kind = 1 + distinct overridden
   ``for`` values.

Burn-rate alerts for pipelines with an ``slo`` live in ``pipemedic-slo``
(:mod:`rules.slo`).

What the spec holds (thresholds, ``for``, heartbeat timeouts) is data; what
it does not (the error-ratio rate window, ``keep_firing_for``) is the
generator's :class:`Timing`, production values by default. ``pipemedic demo``
and its end-to-end test pass a seconds-long ``Timing`` (and a spec copy with
short ``for`` values) so that one generator serves both; the recording rules
keep their production names (``...:rate5m``) so that everything reading them
(alerts, SLO rules, dashboards) stays the same.

Example::

    files = generate(load_spec("rules/pipelines.yml"))
    [f.name for f in files]          # ['pipemedic-pipelines', 'pipemedic-slo']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rules.alerts import AlertKind, for_seconds, kind, params_for
from rules.durations import format_duration, parse_duration
from rules.promql import Expr, agg, binop, call, matrix, number, selector
from rules.rulefile import (
    RuleFile,
    alert_rule,
    for_overrides,
    labelled_alert_rules,
    record,
    series_labels,
)
from rules.slo import slo_file
from rules.spec import Spec
from rules.specdata import joined, spec_data

__all__ = [
    "ERROR_RATIO",
    "EXPORTER_JOB",
    "EXPORTER_LABEL",
    "EXPORTER_TARGET",
    "PIPELINE_KINDS",
    "PRODUCTION",
    "PUSHGATEWAY_JOB",
    "RUN_ERROR_RATIO",
    "Timing",
    "candidates",
    "candidates_metric",
    "error_ratio_rules",
    "generate",
    "matched_metric",
]

# Scrape job names of the exporters in prometheus.yml.
EXPORTER_JOB = "pipemedic-exporter"
PUSHGATEWAY_JOB = "pipemedic-pushgateway"
# The target label every scrape job serving pipeline metrics sets in prometheus.yml
# (the exporter, the Pushgateway, an application's own /metrics), whatever its job name:
#   relabel_configs: [{target_label: pipemedic_target, replacement: exporter}]
EXPORTER_LABEL = "pipemedic_target"
EXPORTER_TARGET = "exporter"
PIPELINE_KINDS: tuple[str, ...] = ("down", "error_rate", "sla", "staleness", "dependency")
_BY = ("pipeline",)
_FAILED = {"status": "failure"}


@dataclass(frozen=True)
class Timing:
    """How quickly the generated rules react, beyond the spec's ``for`` values.

    ``rate_window``: the window of the error-ratio rates (production ``5m``).
    ``keep_firing_for``: ``None`` keeps each alert kind's own; a duration
    replaces it on every alert (``0s`` drops it). Only demos and tests
    shorten these; ``pipemedic rules generate`` always writes production timing.
    """

    rate_window: str = "5m"
    keep_firing_for: str | None = None

    def __post_init__(self) -> None:
        if parse_duration(self.rate_window) <= 0:  # ValueError names a bad duration
            raise ValueError(f"Timing.rate_window must be positive, got {self.rate_window!r}")
        if self.keep_firing_for is not None:
            parse_duration(self.keep_firing_for)


PRODUCTION = Timing()


def candidates_metric(k: AlertKind) -> str:
    """Return the recorded candidates of a kind: the pipelines whose alert may fire."""
    return f"pipeline:{k.kind}_alert:candidates"


def matched_metric(k: AlertKind) -> str:
    """Return the recorded, labelled series of a kind: the pipelines its alert fires for."""
    return f"pipeline:{k.kind}_alert:matched"


def lowest_threshold(spec: Spec, kind_name: str) -> float:
    """Return the lowest threshold of one kind over the defaults and every listed pipeline."""
    values = [params_for(p, kind_name).value for p in spec.pipelines.values()]
    return min([params_for(spec.defaults, kind_name).value, *values])


def _rate(metric: str, window: str, matchers: dict[str, str] | None = None) -> Expr:
    return agg("sum", call("rate", matrix(selector(metric, matchers), window)), _BY)


ERROR_RATIO = "pipeline:error_ratio:rate5m"
RUN_ERROR_RATIO = "pipeline:run_error_ratio:rate5m"
RUNS_FAILED = "pipeline:runs_failed:rate5m"


def error_ratio_rules(window: str = PRODUCTION.rate_window) -> list[dict[str, Any]]:
    """Return the error-ratio records: records (every active pipeline) and runs (failing ones).

    ``pipeline:error_ratio:rate5m`` is DESIGN.md's error ratio, failed /
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
    the few pipelines above a threshold (:func:`candidates`): combining them
    here would cost an ``or`` and a ``max`` over every pipeline's series
    each cycle. ``window`` is the rate window (:class:`Timing`); the names
    keep ``rate5m``.
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


def _max_by(metric: str, *by: str) -> Expr:
    return agg("max", selector(metric), by or _BY)


def candidates(spec: Spec) -> dict[str, tuple[Expr, str]]:
    """Return kind -> (its candidates, operator that compares them with the kind's threshold).

    The candidates of a kind are its per-pipeline signal where it is down
    (``== 0``) or above the lowest threshold any pipeline has (above its own
    implies above the lowest, so no result changes): every pipeline that may
    fire and usually only those. The gauges are read raw; only these few
    series are recorded, never the full per-pipeline signal. Where the
    condition allows, the filter comes before the aggregation, which then
    groups a handful of series instead of every pipeline's.
    """
    zero = number(0)

    def low(name: str) -> Expr:
        return number(lowest_threshold(spec, name))

    newest_update = _max_by("pipeline_last_update_timestamp_seconds")
    return {
        "down": (binop(_max_by("pipeline_up"), "==", zero), "*"),
        # the larger of the two ratios is above x iff one of them is; the runs
        # ratio gets a label of its own so that ``or`` keeps both for ``max``
        "error_rate": (
            agg(
                "max",
                binop(
                    binop(selector(ERROR_RATIO), ">", low("error_rate")),
                    "or",
                    call(
                        "label_replace",
                        binop(selector(RUN_ERROR_RATIO), ">", low("error_rate")),
                        "ratio",
                        "runs",
                        "",
                        "",
                    ),
                ),
                _BY,
            ),
            ">",
        ),
        # the largest of a pipeline's series is above x iff one of them is
        "sla": (
            agg("max", binop(selector("pipeline_last_run_duration_seconds"), ">", low("sla")), _BY),
            ">",
        ),
        # stale for longer than x iff the newest update is older than time() - x
        "staleness": (
            binop(
                call("time"),
                "-",
                binop(newest_update, "<", binop(call("time"), "-", low("staleness"))),
            ),
            ">",
        ),
        "dependency": (
            binop(_max_by("pipeline_dependency_up", "pipeline", "dependency"), "==", zero),
            "*",
        ),
    }


def exporter_down_rule(spec: Spec) -> dict[str, Any]:
    """Return PipelineExporterDown: an exporter target down, or no exporter target at all.

    Exporter targets are those labelled ``pipemedic_target="exporter"``
    (:data:`EXPORTER_LABEL`), whatever their job is called. It has no
    pipeline of its own; ``pipeline`` is the scrape job, so the receiver opens
    one incident for the exporter, not one per pipeline (``pipemedic-exporter``
    when there is no exporter target at all).
    """
    k = kind("exporter_down")
    targets = selector("up", {EXPORTER_LABEL: EXPORTER_TARGET})
    down = binop(targets, "==", number(0))
    missing = call("label_replace", call("absent", targets), "job", EXPORTER_JOB, "", "")
    expr = call("label_replace", binop(down, "or", missing), "pipeline", "$1", "job", "(.+)")
    for_ = format_duration(for_seconds(spec.defaults, "exporter_down"))
    return alert_rule(k, expr, for_, params_for(spec.defaults, "exporter_down").labels())


def _apply_keep_firing(files: list[RuleFile], keep_firing_for: str) -> None:
    """Set (or, for ``0s``, drop) ``keep_firing_for`` on every alert of ``files``."""
    for alert in (a for f in files for a in f.alerts()):
        alert.pop("keep_firing_for", None)
        if parse_duration(keep_firing_for) > 0:
            alert["keep_firing_for"] = keep_firing_for


def generate(spec: Spec, timing: Timing = PRODUCTION) -> list[RuleFile]:
    """Return the rule files for a spec, deterministically (same spec, same rules)."""
    overrides = for_overrides(spec, PIPELINE_KINDS)
    data = spec_data(spec, PIPELINE_KINDS, overrides)
    alerts: list[dict[str, Any]] = []
    matched: list[dict[str, Any]] = []
    for name, (signal, op) in candidates(spec).items():
        k = kind(name)
        matched.append(record(candidates_metric(k), signal))
        expr = joined(selector(candidates_metric(k)), op, k, data)
        matched.append(record(matched_metric(k), expr, series_labels(k)))
        alerts += labelled_alert_rules(k, matched_metric(k), spec, overrides[name])
    alerts.append(exporter_down_rule(spec))
    group = {
        "name": "pipemedic-pipelines",
        "rules": [*data.rules, *error_ratio_rules(timing.rate_window), *matched, *alerts],
    }
    files = [RuleFile("pipemedic-pipelines", [group])]
    slo = slo_file(spec, timing.rate_window)
    if slo is not None:
        files.append(slo)
    if timing.keep_firing_for is not None:
        _apply_keep_firing(files, timing.keep_firing_for)
    return files
