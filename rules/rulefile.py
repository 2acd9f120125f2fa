"""Building blocks shared by the generated groups: rule files, constants, partitioned alerts.

Per-pipeline settings become constant recording rules (a number with
labels: :func:`constant`; the pipelines group has one per differing
pipeline, :mod:`rules.specdata`); an alert is one rule shared by all
pipelines. Only ``for`` cannot be data in Prometheus, so an alert kind has
one rule per distinct ``for`` value: :func:`labelled_alert_rules` selects
its pipelines from a recorded series by the ``for_override`` label (the
pipelines group; the label comes from the pipeline's info series),
:func:`alert_rules` through the ``pipeline:alert_for:spec`` markers of
:func:`for_constants` (the SLO group, a few pipelines).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import promql_parser

from rules.alerts import AlertKind, for_seconds, keep_firing_for
from rules.durations import format_duration, parse_duration
from rules.promql import Expr, binop, check, number, parse, selector
from rules.spec import PipelineSpec, Spec

__all__ = [
    "FOR_LABEL",
    "FOR_MARKER",
    "PER_PIPELINE_PREFIX",
    "TABLE_PREFIX",
    "RuleFile",
    "alert_rule",
    "alert_rules",
    "constant",
    "for_constants",
    "for_overrides",
    "labelled_alert_rules",
    "record",
    "series_labels",
]

FOR_MARKER = "pipeline:alert_for:spec"
# Static label of the rules of pipelines whose ``for`` differs from the defaults.
FOR_LABEL = "for_override"
_BY = ("pipeline",)


@dataclass
class RuleFile:
    """One generated rule file: its name (without ``.rules.yml``) and its groups."""

    name: str
    groups: list[dict[str, Any]] = field(default_factory=list)

    def alerts(self) -> list[dict[str, Any]]:
        """Return every alerting rule of the file."""
        return [r for g in self.groups for r in g["rules"] if "alert" in r]


# Recording-rule name prefixes, decided here once: ``pipeline:`` for series
# per pipeline (they keep the ``pipeline`` label: rates, ratios, alert
# candidates, a pipeline's spec constants), ``pipemedic:`` for pipemedic's own
# tables that hold no pipeline (defaults, threshold values, the SEV map).
PER_PIPELINE_PREFIX = "pipeline:"
TABLE_PREFIX = "pipemedic:"


def record(name: str, expr: Expr, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Return a recording rule after checking its expression parses and its name's prefix.

    A constant named ``pipeline:`` must carry a ``pipeline`` label; one
    named ``pipemedic:`` must not (``ValueError``: a generator bug).
    """
    constant_ = isinstance(parse(expr.text), promql_parser.NumberLiteral)  # check(expr), once
    with_pipeline = "pipeline" in (labels or {})
    if not name.startswith((PER_PIPELINE_PREFIX, TABLE_PREFIX)):
        raise ValueError(
            f"recording rule {name!r}: name it {PER_PIPELINE_PREFIX}... or {TABLE_PREFIX}..."
        )
    if name.startswith(TABLE_PREFIX) and with_pipeline:
        raise ValueError(
            f"recording rule {name!r} holds a pipeline: name it {PER_PIPELINE_PREFIX}..."
        )
    if name.startswith(PER_PIPELINE_PREFIX) and constant_ and not with_pipeline:
        raise ValueError(f"constant {name!r} has no pipeline label: name it {TABLE_PREFIX}...")
    rule: dict[str, Any] = {"record": name, "expr": expr.text}  # parsed above
    if labels:
        rule["labels"] = labels
    return rule


def constant(name: str, value: float, labels: dict[str, str]) -> dict[str, Any]:
    """Return a recording rule for a spec constant: the number, with labels.

    Prometheus records a scalar result as one series with the rule's labels;
    a bare number costs it less per evaluation than ``vector(number)``.
    """
    return record(name, number(value), labels)


def for_overrides(
    spec: Spec,
    kinds: Iterable[str],
    applies: Callable[[PipelineSpec], bool] = lambda p: True,
) -> dict[str, dict[str, str]]:
    """Return kind -> {pipeline: for} for the listed pipelines whose ``for`` differs."""
    overrides: dict[str, dict[str, str]] = {}
    for name in kinds:
        default_for = for_seconds(spec.defaults, name)
        overrides[name] = {}
        for pipeline, p in spec.pipelines.items():
            mine = for_seconds(p, name)
            if mine != default_for and applies(p):
                overrides[name][pipeline] = format_duration(mine)
    return overrides


def for_constants(
    spec: Spec,
    kinds: Iterable[str],
    applies: Callable[[PipelineSpec], bool] = lambda p: True,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """Return markers for pipelines whose ``for`` differs, and kind -> {pipeline: for}."""
    overrides = for_overrides(spec, kinds, applies)
    rules = [
        constant(FOR_MARKER, 1, {"pipeline": pipeline, "kind": name, "for": for_})
        for name, by_pipeline in overrides.items()
        for pipeline, for_ in by_pipeline.items()
    ]
    return rules, overrides


def alert_rule(
    k: AlertKind,
    expr: Expr,
    for_: str,
    spec: Spec,
    static: dict[str, str] | None = None,
    *,
    category_from_series: bool = False,
) -> dict[str, Any]:
    """Return one alerting rule of a kind with its category, annotations and ``for``.

    ``keep_firing_for`` is the spec's (``defaults.keep_firing_for.<kind>``).

    ``category_from_series``: the selected series already carry the kind's
    ``category`` (:func:`series_labels` on their record), so the rule does
    not repeat it: Prometheus expands every label of an alerting rule as a
    template for every active alert every cycle, static text included.
    """
    rule: dict[str, Any] = {"alert": k.alert, "expr": check(expr).text, "for": for_}
    keep = keep_firing_for(spec, k.kind)
    if keep is not None:
        rule["keep_firing_for"] = keep
    labels = {**({} if category_from_series else {"category": k.category}), **(static or {})}
    if labels:
        rule["labels"] = labels
    rule["annotations"] = {
        "summary": k.summary.go(),
        "description": k.description.go(),
        # annotation templates see the expression's labels, not the rule's static ones
        "runbook_url": (static or {}).get("runbook_url", "{{ $labels.runbook_url }}"),
    }
    return rule


def series_labels(k: AlertKind) -> dict[str, str]:
    """Return the static labels of a kind's recorded alert series (its ``category``)."""
    return {"category": k.category}


def _distinct_for(overrides: dict[str, str]) -> list[str]:
    return sorted(set(overrides.values()), key=lambda d: (parse_duration(d), d))


def labelled_alert_rules(
    k: AlertKind, metric: str, spec: Spec, overrides: dict[str, str]
) -> list[dict[str, Any]]:
    """Return the kind's alert over its recorded, labelled series ``metric``.

    ``metric`` is recorded with :func:`series_labels` (the ``category``).
    One rule, plus one per distinct overridden ``for``: the series of those
    pipelines carry the ``for_override`` label (from their info series), so
    each rule selects its pipelines by that label, reading only the few
    series the kind recorded.
    """
    default_for = format_duration(for_seconds(spec.defaults, k.kind))
    if not overrides:
        return [alert_rule(k, selector(metric), default_for, spec, category_from_series=True)]
    default = selector(metric, {FOR_LABEL: ""})
    rules = [alert_rule(k, default, default_for, spec, category_from_series=True)]
    for value in _distinct_for(overrides):
        only = selector(metric, {FOR_LABEL: value})
        static = {FOR_LABEL: value}
        rules.append(alert_rule(k, only, value, spec, static, category_from_series=True))
    return rules


def alert_rules(
    k: AlertKind, expr: Expr, spec: Spec, for_overrides: dict[str, str]
) -> list[dict[str, Any]]:
    """Return the kind's alert: one rule, plus one per distinct overridden ``for``."""
    default_for = format_duration(for_seconds(spec.defaults, k.kind))
    if not for_overrides:
        return [alert_rule(k, expr, default_for, spec)]
    marker = selector(FOR_MARKER, kind=k.kind)
    rules = [alert_rule(k, binop(expr, "unless", marker, on=_BY), default_for, spec)]
    for value in _distinct_for(for_overrides):
        only = selector(FOR_MARKER, {"for": value}, kind=k.kind)
        # a label of its own: promtool rejects same-name rules with identical labels
        only_expr = binop(expr, "and", only, on=_BY)
        rules.append(alert_rule(k, only_expr, value, spec, {FOR_LABEL: value}))
    return rules
