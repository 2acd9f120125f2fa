"""Multiwindow, multi-burn-rate error-budget alerts for pipelines that declare an ``slo``.

The windows are the Google SRE workbook's (chapter 5, table 5-8): an alert
needs both a long window (the budget really is burning) and a short one (it
still is, so the alert resolves quickly). Every window's error ratio is built
from the SLO pipelines' 5m rates (``sum_over_time`` of recorded rates, a
ratio of sums so every window weighs records alike). Those rates read the raw
counters through a matcher naming the SLO pipelines, so neither the 5m rates
nor the 3d window touch or write the series of any other pipeline.

The objective is data (``pipeline:slo_error_budget:spec{tier}``), so the two
alerts are shared by every SLO pipeline; switching a tier off in the spec
(``slo: {page: false}``) simply emits no budget series for that tier.
"""

from __future__ import annotations

from typing import Any

from rules.alerts import JOIN_LABELS, kind, params_for
from rules.promql import Expr, agg, binop, call, matrix, number, one_of, selector
from rules.rulefile import RuleFile, alert_rules, constant, for_constants, record
from rules.spec import PipelineSpec, Spec

__all__ = ["BUDGET_METRIC", "BURN_WINDOWS", "SHORT_WINDOW", "TIER_KIND", "ratio_metric", "slo_file"]

SHORT_WINDOW = "5m"
BUDGET_METRIC = "pipeline:slo_error_budget:spec"

# tier, burn-rate factor, long window, short window -- budget spent when it fires
BURN_WINDOWS: tuple[tuple[str, float, str, str], ...] = (
    ("page", 14.4, "1h", "5m"),  # 2% of a 30d budget in 1h
    ("page", 6.0, "6h", "30m"),  # 5% of it in 6h
    ("ticket", 3.0, "1d", "2h"),  # 10% of it in 1d
    ("ticket", 1.0, "3d", "6h"),  # 10% of it in 3d
)
TIER_KIND = {"page": "burn_page", "ticket": "burn_ticket"}
_BY = ("pipeline",)


def ratio_metric(window: str) -> str:
    """Return the recorded error ratio of SLO pipelines over ``window``."""
    return f"pipeline:slo_error_ratio:rate{window}"


def _windows() -> list[str]:
    seen: list[str] = []
    for _, _, long, short in BURN_WINDOWS:
        for w in (short, long):
            if w not in seen and w != SHORT_WINDOW:
                seen.append(w)
    return seen


def _only(pipelines: list[str]) -> dict[str, str]:
    """Return a matcher selecting exactly ``pipelines`` (an alternation of escaped names)."""
    return {"pipeline": one_of(pipelines)}


def _ratio_rules(pipelines: list[str], window: str) -> list[dict[str, Any]]:
    """Return the SLO pipelines' 5m rates (read from the raw counters) and every window's ratio.

    The matcher restricts the raw read and the recorded series to SLO
    pipelines: no full-size series is written for the SLO alerts.
    """
    failed = selector("pipeline:slo_records_failed:rate5m")
    processed = selector("pipeline:slo_records_processed:rate5m")
    only = _only(pipelines)

    def rate(metric: str) -> Expr:
        return agg("sum", call("rate", matrix(selector(metric, only), window)), _BY)

    rules = [
        record("pipeline:slo_records_failed:rate5m", rate("pipeline_records_failed_total")),
        record("pipeline:slo_records_processed:rate5m", rate("pipeline_records_processed_total")),
        record(ratio_metric(SHORT_WINDOW), binop(failed, "/", binop(processed, ">", number(0)))),
    ]
    for w in _windows():
        over = binop(
            call("sum_over_time", matrix(failed, w)),
            "/",
            binop(call("sum_over_time", matrix(processed, w)), ">", number(0)),
        )
        rules.append(record(ratio_metric(w), over))
    return rules


def _burn(window: str, tier: str, with_labels: bool) -> Expr:
    return binop(
        selector(ratio_metric(window)),
        "/",
        selector(BUDGET_METRIC, tier=tier),
        on=_BY,
        group_left=JOIN_LABELS if with_labels else None,
    )


def tier_expr(tier: str) -> Expr:
    """Return the burn condition of a tier: any of its (long and short) window rows."""
    rows: Expr | None = None
    for row_tier, factor, long, short in BURN_WINDOWS:
        if row_tier != tier:
            continue
        row = binop(
            binop(_burn(long, tier, True), ">", number(factor)),
            "and",
            binop(_burn(short, tier, False), ">", number(factor)),
            on=_BY,
        )
        rows = row if rows is None else binop(rows, "or", row, on=_BY, newline=True)
    if rows is None:
        raise ValueError(f"no burn windows for tier {tier!r}")
    return rows


def _has_slo(p: PipelineSpec) -> bool:
    return p.slo is not None


def slo_file(spec: Spec, window: str = SHORT_WINDOW) -> RuleFile | None:
    """Return the SLO rule file, or None when no pipeline declares an ``slo``.

    ``window`` is the rate window of the short-window rates (the generator's
    ``Timing``; the rule names keep ``rate5m``).
    """
    if not any(_has_slo(p) for p in spec.pipelines.values()):
        return None
    rules: list[dict[str, Any]] = []
    budgeted: dict[str, None] = {}  # ordered, and O(1) membership (a list was quadratic)
    for tier, kind_name in TIER_KIND.items():
        for name, p in spec.pipelines.items():
            if p.slo is None or not getattr(p.slo, tier):
                continue
            params = params_for(p, kind_name)
            labels = {"pipeline": name, "tier": tier, **params.labels()}
            rules.append(constant(BUDGET_METRIC, params.value, labels))
            budgeted.setdefault(name)
    markers, for_overrides = for_constants(spec, TIER_KIND.values(), _has_slo)
    rules += markers + (_ratio_rules(list(budgeted), window) if budgeted else [])
    for tier, kind_name in TIER_KIND.items():
        rules += alert_rules(kind(kind_name), tier_expr(tier), spec, for_overrides[kind_name])
    return RuleFile("pipemedic-slo", [{"name": "pipemedic-slo", "rules": rules}])
