"""Generate promtool unit tests for every generated alert, from the same spec.

For each alert kind one test feeds synthetic series for:

* a pipeline not in the spec, above the default threshold: fires with the defaults' labels;
* a pipeline not in the spec, below it: stays silent;
* every listed pipeline whose settings differ, placed *between* the default
  and its own threshold: it fires when its threshold is lower and stays
  silent when it is higher, which proves the override (not the default) applied;
* for the error rate, a quiet pipeline (no records, no runs) that must not
  fire on NaN, one whose runs fail before reading any record, which must,
  and two with both ratios, which fire with the larger one.

Each test also checks that nothing fires before ``for`` has elapsed. The
expected annotations are rendered by :mod:`rules.templates` from the same
definitions the rules use.

Example::

    tests = unit_tests(spec, ["pipemedic-pipelines.rules.yml"])
    # {"pipemedic.test.yml": "rule_files: ..."}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

from rules.alerts import AlertKind, for_seconds, kind, params_for
from rules.durations import format_duration
from rules.generate import EXPORTER_JOB, EXPORTER_LABEL, EXPORTER_TARGET, PUSHGATEWAY_JOB
from rules.rulefile import FOR_LABEL
from rules.slo import BURN_WINDOWS, TIER_KIND
from rules.spec import PipelineSpec, Spec

__all__ = ["MAX_LISTED", "TEST_FILE", "unit_tests"]

TEST_FILE = "pipemedic.test.yml"
# Listed pipelines per test: enough to prove overrides, bounded for huge specs.
MAX_LISTED = 25
_STEP = 60  # seconds between samples and between evaluations
_MARGIN = 10 * 60
_EXPORTER_INSTANCE = "127.0.0.1:9108"


@dataclass
class _Case:
    """One pipeline in a test: its series and, if it must fire, its expected alert."""

    series: list[tuple[str, str]]
    alert: dict[str, Any] | None = None
    for_s: float = 0.0


def _series(metric: str, labels: dict[str, str], values: str) -> tuple[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}", values


def _const(value: float, steps: int) -> str:
    return f"{_num(value)}x{steps}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


class _Builder:
    """Build the cases of one alert kind for one spec."""

    def __init__(self, spec: Spec, k: AlertKind) -> None:
        self.spec = spec
        self.k = k
        self.unlisted = _free_name(spec, "pipemedic_unlisted")
        self.unlisted_ok = _free_name(spec, "pipemedic_unlisted_ok")

    def pipeline(self, name: str) -> PipelineSpec:
        return self.spec.pipeline(name)

    def expected(
        self, name: str, value: float, extra: dict[str, str] | None = None
    ) -> dict[str, Any]:
        p = self.pipeline(name)
        params = params_for(p, self.k.kind)
        labels = {"pipeline": name, "category": self.k.category, **params.labels(), **(extra or {})}
        if name in self.spec.pipelines and for_seconds(p, self.k.kind) != for_seconds(
            self.spec.defaults, self.k.kind
        ):
            labels[FOR_LABEL] = format_duration(for_seconds(p, self.k.kind))
        return {
            "exp_labels": labels,
            "exp_annotations": {
                "summary": self.k.summary.render(labels, value),
                "description": self.k.description.render(labels, value),
                "runbook_url": labels["runbook_url"],
            },
        }

    def listed(self) -> list[str]:
        """Return listed pipelines whose settings or ``for`` differ, at most MAX_LISTED."""
        base = params_for(self.spec.defaults, self.k.kind)
        base_for = for_seconds(self.spec.defaults, self.k.kind)
        out = [
            name
            for name, p in self.spec.pipelines.items()
            if params_for(p, self.k.kind) != base or for_seconds(p, self.k.kind) != base_for
        ]
        return out[:MAX_LISTED]


def _free_name(spec: Spec, name: str) -> str:
    while name in spec.pipelines:
        name += "_x"
    return name


def _between_or_above(default: float, own: float, above: float) -> tuple[float, bool]:
    """Return a value that tells the pipeline's own threshold from the default, and if it fires."""
    if own == default:
        return above, True
    return (default + own) / 2, own < default


def _threshold_cases(b: _Builder, steps: int) -> list[_Case]:
    """Cases for kinds comparing a measured value to a threshold."""
    name = b.k.kind
    d = params_for(b.spec.defaults, name).value
    make = {"error_rate": _error_rate_case, "sla": _sla_case, "staleness": _staleness_case}[name]
    above = (d + 1) / 2 if name == "error_rate" else 2 * d
    cases = [make(b, b.unlisted, above, True, steps), make(b, b.unlisted_ok, d / 2, False, steps)]
    for pipeline in b.listed():
        own = params_for(b.pipeline(pipeline), name).value
        own_above = (own + 1) / 2 if name == "error_rate" else 2 * own
        value, fires = _between_or_above(d, own, max(above, own_above))
        cases.append(make(b, pipeline, value, fires, steps))
    return cases


def _per_minute(ratio: float) -> tuple[int, int]:
    processed = 10_000
    return processed, round(ratio * processed)


def _error_rate_case(b: _Builder, pipeline: str, ratio: float, fires: bool, steps: int) -> _Case:
    processed, failed = _per_minute(ratio)
    labels = {"pipeline": pipeline, "job": EXPORTER_JOB, "instance": _EXPORTER_INSTANCE}
    series = [
        _series("pipeline_records_processed_total", labels, f"0+{processed}x{steps}"),
        _series("pipeline_records_failed_total", labels, f"0+{failed}x{steps}"),
    ]
    observed = failed / processed
    return _Case(series, b.expected(pipeline, observed) if fires else None, _for(b, pipeline))


def _sla_case(b: _Builder, pipeline: str, seconds: float, fires: bool, steps: int) -> _Case:
    seconds = float(math.floor(seconds))
    labels = {"pipeline": pipeline, "job": EXPORTER_JOB, "instance": _EXPORTER_INSTANCE}
    series = [_series("pipeline_last_run_duration_seconds", labels, _const(seconds, steps))]
    return _Case(series, b.expected(pipeline, seconds) if fires else None, _for(b, pipeline))


def _staleness_case(b: _Builder, pipeline: str, age: float, fires: bool, steps: int) -> _Case:
    age = float(math.floor(age))
    labels = {"pipeline": pipeline, "job": EXPORTER_JOB, "instance": _EXPORTER_INSTANCE}
    # the last update keeps a constant age: it advances with the clock
    values = f"{_num(-age)}+{_STEP}x{steps}"
    series = [_series("pipeline_last_update_timestamp_seconds", labels, values)]
    return _Case(series, b.expected(pipeline, age) if fires else None, _for(b, pipeline))


def _for(b: _Builder, pipeline: str) -> float:
    return for_seconds(b.pipeline(pipeline), b.k.kind)


def _mixed_case(b: _Builder, name: str, records: float, runs: float, steps: int) -> _Case:
    """A pipeline with both ratios: it fires with the larger (unlisted: default threshold)."""
    pipeline = _free_name(b.spec, name)
    labels = {"pipeline": pipeline, "job": EXPORTER_JOB, "instance": _EXPORTER_INSTANCE}
    processed, failed = _per_minute(records)
    total, failed_runs = _per_minute(runs)
    series = [
        _series("pipeline_records_processed_total", labels, f"0+{processed}x{steps}"),
        _series("pipeline_records_failed_total", labels, f"0+{failed}x{steps}"),
        _series(
            "pipeline_runs_total",
            {**labels, "status": "success"},
            f"0+{total - failed_runs}x{steps}",
        ),
        _series("pipeline_runs_total", {**labels, "status": "failure"}, f"0+{failed_runs}x{steps}"),
    ]
    observed = max(failed / processed, failed_runs / total)
    return _Case(series, b.expected(pipeline, observed), _for(b, pipeline))


def _mixed_cases(b: _Builder, steps: int) -> list[_Case]:
    """Runs that fail more than records, and records that fail more than runs."""
    d = params_for(b.spec.defaults, "error_rate").value
    return [
        _mixed_case(b, "pipemedic_runs_failing", d / 2, (d + 1) / 2, steps),
        _mixed_case(b, "pipemedic_records_failing", (d + 1) / 2, d / 2, steps),
    ]


def _quiet_cases(b: _Builder, steps: int) -> list[_Case]:
    """A quiet pipeline stays silent; one whose runs fail with zero records fires."""
    quiet = _free_name(b.spec, "pipemedic_quiet")
    failing = _free_name(b.spec, "pipemedic_quiet_failing")
    q = {"pipeline": quiet, "job": EXPORTER_JOB, "instance": _EXPORTER_INSTANCE}
    f = {"pipeline": failing, "job": EXPORTER_JOB, "instance": _EXPORTER_INSTANCE}
    return [
        _Case(
            [
                _series("pipeline_records_processed_total", q, f"0x{steps}"),
                _series("pipeline_records_failed_total", q, f"0x{steps}"),
                _series("pipeline_runs_total", {**q, "status": "success"}, f"5x{steps}"),
            ]
        ),
        _Case(
            [
                _series("pipeline_records_processed_total", f, f"0x{steps}"),
                _series("pipeline_records_failed_total", f, f"0x{steps}"),
                _series("pipeline_runs_total", {**f, "status": "failure"}, f"0+1x{steps}"),
            ],
            b.expected(failing, 1.0),
            _for(b, failing),
        ),
    ]


def _label_cases(b: _Builder, steps: int) -> list[_Case]:
    """Cases for kinds without a threshold (down, dependency): labels must come from the spec."""
    metric = "pipeline_up" if b.k.kind == "down" else "pipeline_dependency_up"
    extra = {} if b.k.kind == "down" else {"dependency": "warehouse"}
    cases: list[_Case] = []
    firing = [b.unlisted, *b.listed()]
    for pipeline in [*firing, b.unlisted_ok]:
        labels = {
            "pipeline": pipeline,
            "job": EXPORTER_JOB,
            "instance": _EXPORTER_INSTANCE,
            **extra,
        }
        fires = pipeline in firing
        cases.append(
            _Case(
                [_series(metric, labels, _const(0 if fires else 1, steps))],
                b.expected(pipeline, 0.0, extra) if fires else None,
                _for(b, pipeline),
            )
        )
    return cases


def _test(name: str, k: AlertKind, cases: list[_Case], true_at_zero: bool) -> dict[str, Any]:
    """Return one promtool test: before ``for`` only ``for: 0s`` alerts, after it all of them."""
    longest = max([c.for_s for c in cases] + [0.0])
    end = int(longest + _MARGIN)
    early = [c.alert for c in cases if c.alert and true_at_zero and c.for_s == 0]
    late = [c.alert for c in cases if c.alert]
    return {
        "name": name,
        "interval": f"{_STEP}s",
        "input_series": [{"series": s, "values": v} for c in cases for s, v in c.series],
        "alert_rule_test": [
            {"eval_time": "30s", "alertname": k.alert, "exp_alerts": early},
            {"eval_time": format_duration(end), "alertname": k.alert, "exp_alerts": late},
        ],
    }


def _steps_for(cases_for: float) -> int:
    return int((cases_for + _MARGIN) // _STEP) + 5


def _longest_for(spec: Spec, kind_name: str) -> float:
    values = [for_seconds(p, kind_name) for p in (spec.defaults, *spec.pipelines.values())]
    return max(values)


def _exporter_tests(spec: Spec) -> list[dict[str, Any]]:
    k = kind("exporter_down")
    params = params_for(spec.defaults, "exporter_down")
    steps = _steps_for(for_seconds(spec.defaults, "exporter_down"))
    end = format_duration(for_seconds(spec.defaults, "exporter_down") + _MARGIN)

    def alert(labels: dict[str, str], value: float) -> dict[str, Any]:
        full = {**labels, "pipeline": labels["job"], "category": k.category, **params.labels()}
        return {
            "exp_labels": full,
            "exp_annotations": {
                "summary": k.summary.render(full, value),
                "description": k.description.render(full, value),
                "runbook_url": params.runbook_url,
            },
        }

    target = {EXPORTER_LABEL: EXPORTER_TARGET}
    exporter = {"job": EXPORTER_JOB, "instance": _EXPORTER_INSTANCE, **target}
    pushgateway = {"job": PUSHGATEWAY_JOB, "instance": "127.0.0.1:9091", **target}
    # any job name: an application serving its own /metrics, labelled as an exporter target
    own = {"job": "team-airflow-metrics", "instance": "127.0.0.1:9102", **target}
    unlabelled = {"job": "node", "instance": "127.0.0.1:9100"}
    return [
        {
            "name": "PipelineExporterDown: a scrape target is down",
            "interval": f"{_STEP}s",
            "input_series": [
                {"series": _series("up", exporter, "")[0], "values": f"0x{steps}"},
                {"series": _series("up", pushgateway, "")[0], "values": f"1x{steps}"},
                {"series": _series("up", own, "")[0], "values": f"0x{steps}"},
                {"series": _series("up", unlabelled, "")[0], "values": f"0x{steps}"},
            ],
            "alert_rule_test": [
                {
                    "eval_time": end,
                    "alertname": k.alert,
                    "exp_alerts": [alert(exporter, 0), alert(own, 0)],
                }
            ],
        },
        {
            "name": "PipelineExporterDown: no exporter target at all (absent)",
            "interval": f"{_STEP}s",
            "input_series": [
                {"series": _series("up", unlabelled, "")[0], "values": f"1x{steps}"},
            ],
            "alert_rule_test": [
                {
                    "eval_time": end,
                    "alertname": k.alert,
                    "exp_alerts": [alert({"job": EXPORTER_JOB, **target}, 1)],
                }
            ],
        },
        {
            "name": "PipelineExporterDown: all targets up",
            "interval": f"{_STEP}s",
            "input_series": [
                {"series": _series("up", exporter, "")[0], "values": f"1x{steps}"},
                {"series": _series("up", pushgateway, "")[0], "values": f"1x{steps}"},
            ],
            "alert_rule_test": [{"eval_time": end, "alertname": k.alert, "exp_alerts": []}],
        },
    ]


def _lowest_factor(tier: str) -> float:
    return min(factor for t, factor, _, _ in BURN_WINDOWS if t == tier)


def _burn_tests(spec: Spec) -> list[dict[str, Any]]:
    """Burn-rate tests: SLO pipelines burning at 0.2 error ratio fire per enabled tier."""
    slo_pipelines = [n for n, p in spec.pipelines.items() if p.slo is not None][:MAX_LISTED]
    if not slo_pipelines:
        return []
    tests: list[dict[str, Any]] = []
    unlisted = _free_name(spec, "pipemedic_unlisted")
    for tier, kind_name in TIER_KIND.items():
        k = kind(kind_name)
        b = _Builder(spec, k)
        longest = _longest_for(spec, kind_name)
        steps = _steps_for(longest)
        for burning in (True, False):
            cases: list[_Case] = []
            for name in [*slo_pipelines, unlisted]:
                p = spec.pipeline(name)
                budget = p.slo.error_budget if p.slo is not None else 0.01
                ratio = min(0.5, 50 * budget) if burning else budget / 10
                processed, failed = _per_minute(ratio)
                labels = {"pipeline": name, "job": EXPORTER_JOB, "instance": _EXPORTER_INSTANCE}
                series = [
                    _series("pipeline_records_processed_total", labels, f"0+{processed}x{steps}"),
                    _series("pipeline_records_failed_total", labels, f"0+{failed}x{steps}"),
                ]
                burn = (failed / processed) / budget
                # a steady burn fires the tier iff it exceeds the tier's lowest factor;
                # a loose objective (large budget) may not reach it even at a 50% ratio
                fires = (
                    burning
                    and p.slo is not None
                    and bool(getattr(p.slo, tier))
                    and burn > _lowest_factor(tier)
                )
                expected = b.expected(name, burn) if fires else None
                cases.append(_Case(series, expected, for_seconds(p, kind_name)))
            what = "burning" if burning else "within budget"
            tests.append(_test(f"{k.alert} ({tier}): {what}", k, cases, False))
    return tests


def unit_tests(spec: Spec, rule_files: list[str]) -> dict[str, str]:
    """Return test file name -> promtool unit-test YAML for the rules generated from ``spec``."""
    tests: list[dict[str, Any]] = []
    for kind_name in ("down", "error_rate", "sla", "staleness", "dependency"):
        k = kind(kind_name)
        b = _Builder(spec, k)
        steps = _steps_for(_longest_for(spec, kind_name))
        if kind_name in ("down", "dependency"):
            cases = _label_cases(b, steps)
        else:
            cases = _threshold_cases(b, steps)
        if kind_name == "error_rate":
            cases += _quiet_cases(b, steps) + _mixed_cases(b, steps)
        true_at_zero = kind_name != "error_rate"
        tests.append(_test(f"{k.alert}: defaults, overrides, unlisted", k, cases, true_at_zero))
    tests += _exporter_tests(spec)
    tests += _burn_tests(spec)
    doc = {
        "rule_files": sorted(rule_files),
        "evaluation_interval": f"{_STEP}s",
        "tests": tests,
    }
    header = (
        f"# Generated by `pipemedic rules test` from {spec.source}: promtool unit tests\n"
        "# for every generated alert. Run with `promtool test rules`.\n"
    )
    text = yaml.safe_dump(doc, sort_keys=False, width=1_000_000, allow_unicode=True)
    return {TEST_FILE: header + text}
