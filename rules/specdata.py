"""Turn the spec's per-pipeline settings into a few constant series, and join candidates with them.

Prometheus charges every recording rule ~25 us per cycle however trivial, so
the per-pipeline data is one rule per pipeline that differs from the
defaults, shared by every alert kind, plus a few dozen shared constants:

* ``pipeline:alert_spec:info{pipeline, team, runbook_url, impact,
  <threshold params>, for_<kind>, severity_<kind>} 1``: a listed pipeline's
  settings as labels; thresholds in :func:`rules.promql.number`'s form
  (``max_error_rate="0.02"``), ``for_<kind>``/``severity_<kind>`` only where
  the pipeline's ``for``/``severity`` of that kind is its own;
* ``pipemedic:alert_spec:default{...} 1``: the same labels (no pipeline, no
  ``for_<kind>``) from the defaults, for every pipeline the spec does not list;
* ``pipemedic:<param>:value{<param>="0.02"} 0.02``: one per distinct
  threshold, so a candidate compares with its pipeline's threshold by label;
* ``pipemedic:alert_sev:map{degradation, impact, sev, severity} 1``: the SEV
  table (:mod:`rules.severity`), so ``sev``/``severity`` follow from the
  kind's degradation and the pipeline's ``impact``.

:func:`joined` gives a kind's candidates their alert labels in one pass for
listed and unlisted pipelines alike. It touches only the candidates (a
handful of series) and reads the info series once per kind.

Example::

    data = spec_data(spec, pipeline_kinds(), for_overrides(spec, pipeline_kinds()))
    joined(selector("pipeline:sla_alert:candidates"), (">",), kind("sla"), data)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rules.alerts import AlertKind, Params, kind, params_for
from rules.promql import Expr, agg, binop, call, number, selector
from rules.rulefile import FOR_LABEL, constant
from rules.severity import DEGRADATIONS, IMPACTS, sev_for, severity_label
from rules.spec import PipelineSpec, Spec

__all__ = [
    "CONSTANT_SUFFIXES",
    "DEFAULT_METRIC",
    "INFO_METRIC",
    "SEV_MAP_METRIC",
    "SpecData",
    "for_label",
    "joined",
    "severity_label_of",
    "spec_data",
    "value_metric",
]

INFO_METRIC = "pipeline:alert_spec:info"
DEFAULT_METRIC = "pipemedic:alert_spec:default"
SEV_MAP_METRIC = "pipemedic:alert_sev:map"
# How the names of constant series end (``:spec``: the SLO group's per-pipeline data).
CONSTANT_SUFFIXES: tuple[str, ...] = (":info", ":value", ":map", ":default", ":spec")
_BY = ("pipeline",)


def value_metric(param: str) -> str:
    """Return the series of one threshold parameter, one per distinct value."""
    return f"pipemedic:{param}:value"


def for_label(kind_name: str) -> str:
    """Return the info label that holds a pipeline's own ``for`` of a kind."""
    return f"for_{kind_name}"


def severity_label_of(kind_name: str) -> str:
    """Return the info label that holds a pipeline's own ``severity`` of a kind."""
    return f"severity_{kind_name}"


@dataclass
class SpecData:
    """The constant rules, and which pipelines and labels the joins must handle."""

    rules: list[dict[str, Any]] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)
    # kinds where some listed pipeline has its own ``for`` / (or the defaults set a) ``severity``
    own_for: set[str] = field(default_factory=set)
    own_severity: set[str] = field(default_factory=set)


def _differs(p: PipelineSpec, base: dict[str, Params], own_for: bool) -> bool:
    """Tell whether ``p``'s thresholds or labels of a kind differ from the defaults' ``base``."""
    return own_for or any(params_for(p, n) != params for n, params in base.items())


def _spec_labels(p: PipelineSpec, kinds: tuple[str, ...]) -> dict[str, str]:
    """Return what every kind's join reads of ``p``: team, runbook, impact, thresholds, severity."""
    labels = {"team": p.team, "runbook_url": p.runbook_url, "impact": p.impact}
    for n in kinds:
        for param, value in zip(kind(n).params, params_for(p, n).values, strict=True):
            labels[param] = number(value).text
    for n in kinds:
        if n in p.severity:
            labels[severity_label_of(n)] = p.severity[n]
    return labels


def _sev_table(kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    used = sorted({kind(n).degradation for n in kinds}, key=DEGRADATIONS.__getitem__)
    rules = []
    for degradation in used:
        for impact in IMPACTS:
            sev = sev_for(degradation, impact)
            labels = {"degradation": degradation, "impact": impact, "sev": sev}
            rules.append(constant(SEV_MAP_METRIC, 1, {**labels, "severity": severity_label(sev)}))
    return rules


def spec_data(spec: Spec, kinds: Iterable[str], fors: dict[str, dict[str, str]]) -> SpecData:
    """Return the constants of ``kinds``: defaults, threshold values, SEV table, listed pipelines.

    A pipeline is listed where its threshold or labels of some kind differ
    from the defaults', or its ``for`` does (``fors``: kind -> {pipeline:
    for}, the pipelines whose ``for`` differs).
    """
    names = tuple(kinds)
    data = SpecData()
    base = {n: params_for(spec.defaults, n) for n in names}
    defaults = _spec_labels(spec.defaults, names)
    data.own_severity.update(n for n in names if severity_label_of(n) in defaults)
    data.rules.append(constant(DEFAULT_METRIC, 1, defaults))
    info: list[dict[str, Any]] = []
    # threshold parameter -> every value it takes
    values: dict[str, set[float]] = {}

    def add_values(p: PipelineSpec) -> None:
        for n in names:
            for param, value in zip(kind(n).params, params_for(p, n).values, strict=True):
                values.setdefault(param, set()).add(value)

    add_values(spec.defaults)
    for name, p in spec.pipelines.items():
        own_for = {n: fors[n][name] for n in names if name in fors.get(n, {})}
        if not _differs(p, base, bool(own_for)):
            continue
        data.listed.append(name)
        labels = {"pipeline": name, **_spec_labels(p, names)}
        labels.update({for_label(n): v for n, v in own_for.items()})
        data.own_for.update(own_for)
        data.own_severity.update(n for n in names if severity_label_of(n) in labels)
        info.append(constant(INFO_METRIC, 1, labels))
        add_values(p)
    for param, seen in values.items():
        data.rules += [
            constant(value_metric(param), v, {param: number(v).text}) for v in sorted(seen)
        ]
    data.rules += _sev_table(names)
    data.rules += info
    return data


def joined(signal: Expr, ops: tuple[str, ...], k: AlertKind, data: SpecData) -> Expr:
    """Give ``signal`` its alert labels: a listed pipeline's own settings, else the defaults'.

    The settings come as helper labels (``impact``, the threshold's, the
    kind's ``for_<kind>``/``severity_<kind>``), from the pipeline's info
    series or, ``or on(pipeline)``, the defaults' series; then each threshold
    filters by its value with its operator of ``ops`` (several: any of them,
    a band), the SEV table gives ``sev``/``severity``, a
    pipeline's own ``for``/``severity`` become ``for_override``/``severity``,
    and the helpers are dropped.
    """
    helpers = ["impact", *k.params]
    if k.kind in data.own_severity:
        helpers.append(severity_label_of(k.kind))
    expr = binop(
        signal, "*", selector(DEFAULT_METRIC), on=(), group_left=("team", "runbook_url", *helpers)
    )
    if k.kind in data.own_for:
        helpers.append(for_label(k.kind))
    if data.listed:
        info = selector(INFO_METRIC)
        own = binop(signal, "*", info, on=_BY, group_left=("team", "runbook_url", *helpers))
        expr = binop(own, "or", expr, on=_BY, newline=True)
    if k.params:
        compared = [
            binop(expr, op, selector(value_metric(param)), on=(param,), group_left=())
            for param, op in zip(k.params, ops, strict=True)
        ]
        expr = compared[0]
        for other in compared[1:]:
            expr = binop(expr, "or", other)
    sev_map = selector(SEV_MAP_METRIC, degradation=k.degradation)
    expr = binop(expr, "*", sev_map, on=("impact",), group_left=("sev", "severity"))
    if k.kind in data.own_severity:
        expr = call("label_replace", expr, "severity", "$1", severity_label_of(k.kind), "(.+)")
    if k.kind in data.own_for:
        expr = call("label_replace", expr, FOR_LABEL, "$1", for_label(k.kind), "(.+)")
    # one series per candidate goes in and out: ``max`` only drops the helper labels
    return agg("max", expr, without=helpers)
