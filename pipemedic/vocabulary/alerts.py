"""The alert kinds pipemedic generates, one row each.

A kind ties the spec's vocabulary (``for.<kind>``, ``severity.<kind>``,
``keep_firing_for.<kind>``) to the alert name users' routes and silences rely on, the
incident category diagnosis starts from, the service degradation that with
the pipeline's ``impact`` gives the SEV (the receiver's table and the rules'
``pipemedic:alert_sev:map`` alike), the spec fields its thresholds come
from, its production ``for`` and ``keep_firing_for``, and the rule module
that writes its signal, annotations and promtool cases. Adding a kind is one
:class:`AlertKind` row plus that module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from pipemedic.vocabulary.causes import Category, Symptom

__all__ = ["ALERT_KINDS", "AlertKind", "alert_kind", "by_alert"]


@dataclass(frozen=True)
class AlertKind:
    """One generated alert.

    ``thresholds``: the spec fields the signal is compared with, in the
    order of the rule module's operators (none: the alert fires on a
    condition alone, e.g. ``pipeline_up == 0``); ``for_``: the production
    ``for`` (the spec's ``for.<kind>`` overrides it); ``keep_firing_for``:
    how long it keeps firing after the condition clears (``None``: not at
    all; the spec's ``keep_firing_for.<kind>`` overrides it); ``rule_module``:
    the module under ``rules/kinds/`` with its ``RULES``; ``clears``: the
    alert's own condition, present while ``signal op threshold`` returns a
    series (the threshold: the spec field first in ``thresholds``, else 0),
    which verifies a pipeline that had no recovery of its own (a downstream
    pipeline once its upstream recovered); ``None``: only "not reported down".
    """

    kind: str
    alert: str
    category: Category
    degradation: str
    thresholds: tuple[str, ...]
    for_: str
    keep_firing_for: str | None
    rule_module: str
    clears: Symptom | None = None


def _row(
    kind: str,
    alert: str,
    category: Category,
    degradation: str,
    thresholds: tuple[str, ...] = (),
    *,
    for_: str,
    keep_firing_for: str | None = None,
    clears: Symptom | None = None,
) -> AlertKind:
    module = f"rules.kinds.{kind}"
    return AlertKind(
        kind, alert, category, degradation, thresholds, for_, keep_firing_for, module, clears
    )


_C = Category

ALERT_KINDS: Final[tuple[AlertKind, ...]] = (
    _row("down", "PipelineDown", _C.CONNECTIVITY, "unavailable", for_="1m", keep_firing_for="2m"),
    _row(
        "exporter_down",
        "PipelineExporterDown",
        _C.CONNECTIVITY,
        "significant",
        for_="2m",
        keep_firing_for="2m",
    ),
    _row(
        "error_rate",
        "PipelineHighErrorRate",
        _C.DATA,
        "significant",
        ("max_error_rate",),
        for_="5m",
        keep_firing_for="5m",
        clears=Symptom("failed_ratio", ">", "its failed ratio still above max_error_rate"),
    ),
    _row(
        "sla",
        "PipelineSLAViolation",
        _C.RESOURCES,
        "performance",
        ("sla_seconds",),
        for_="0s",
        clears=Symptom("last_run_duration", ">", "its last run still longer than its sla"),
    ),
    _row(
        "staleness",
        "PipelineDataStale",
        _C.DATA,
        "performance",
        ("max_staleness_seconds",),
        for_="5m",
        clears=Symptom("staleness", ">", "its output data still older than max_staleness"),
    ),
    _row(
        "dependency",
        "PipelineDependencyDown",
        _C.CONNECTIVITY,
        "significant",
        for_="2m",
        keep_firing_for="2m",
        clears=Symptom("dependency_up", "==", "a dependency probe still down"),
    ),
    _row(
        "never_reported",
        "PipelineNeverReported",
        _C.CONNECTIVITY,
        "unavailable",
        ("heartbeat_timeout_seconds",),
        for_="1m",
        clears=Symptom("heartbeat_age", ">", "still no sign of life within heartbeat_timeout"),
    ),
    _row(
        "schema_change",
        "PipelineSchemaChange",
        _C.DATA,
        "significant",
        for_="0s",
        clears=Symptom("schema_changes", ">", "new schema changes of its outputs"),
    ),
    _row(
        "volume_anomaly",
        "PipelineVolumeAnomaly",
        _C.DATA,
        "performance",
        ("volume_min_ratio", "volume_max_ratio"),
        for_="5m",
    ),
    _row(
        "circular_dependency",
        "PipelineCircularDependency",
        _C.LOGIC,
        "significant",
        for_="5m",
    ),
    _row(
        "burn_page",
        "PipelineErrorBudgetBurn",
        _C.DATA,
        "significant",
        ("slo_error_budget",),
        for_="2m",
        keep_firing_for="5m",
    ),
    _row(
        "burn_ticket",
        "PipelineErrorBudgetBurnSlow",
        _C.DATA,
        "performance",
        ("slo_error_budget",),
        for_="15m",
        keep_firing_for="15m",
    ),
)

_BY_KIND: Final[Mapping[str, AlertKind]] = MappingProxyType({k.kind: k for k in ALERT_KINDS})
_BY_ALERT: Final[Mapping[str, AlertKind]] = MappingProxyType({k.alert: k for k in ALERT_KINDS})


def alert_kind(kind: str) -> AlertKind:
    """Return the row of a kind as the spec names it (``down``, ``error_rate``...)."""
    return _BY_KIND[kind]


def by_alert(alertname: str) -> AlertKind | None:
    """Return the row of a generated alert by its name, or None for anyone else's alert."""
    return _BY_ALERT.get(alertname)
