"""The alert kinds pipemedic generates, one row each.

A kind ties the spec's vocabulary (``for.<kind>``, ``severity.<kind>``) to
the alert name fixed in DESIGN.md, the incident category diagnosis starts
from, the service degradation that with the pipeline's ``impact`` gives the
SEV (the receiver's table and the rules' ``pipemedic:alert_sev:map`` alike),
the spec field its threshold comes from, its production ``for`` and
``keep_firing_for``, and the rule module that writes its rules and promtool
tests. Adding a kind is one :class:`AlertKind` row plus that module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from pipemedic.vocabulary.causes import Category

__all__ = ["ALERT_KINDS", "AlertKind", "alert_kind", "by_alert"]


@dataclass(frozen=True)
class AlertKind:
    """One generated alert.

    ``threshold``: the spec field compared with (``None``: the alert fires on
    a condition alone, e.g. ``pipeline_up == 0``); ``for_``: the production
    ``for`` (the spec's ``for.<kind>`` overrides it); ``keep_firing_for``:
    how long it keeps firing after the condition clears (``None``: not at all).
    """

    kind: str
    alert: str
    category: Category
    degradation: str
    threshold: str | None
    for_: str
    keep_firing_for: str | None = None


ALERT_KINDS: Final[tuple[AlertKind, ...]] = (
    AlertKind("down", "PipelineDown", Category.CONNECTIVITY, "unavailable", None, "1m", "2m"),
    AlertKind(
        "exporter_down",
        "PipelineExporterDown",
        Category.CONNECTIVITY,
        "significant",
        None,
        "2m",
        "2m",
    ),
    AlertKind(
        "error_rate",
        "PipelineHighErrorRate",
        Category.DATA,
        "significant",
        "max_error_rate",
        "5m",
        "5m",
    ),
    AlertKind(
        "sla", "PipelineSLAViolation", Category.RESOURCES, "performance", "sla_seconds", "0s"
    ),
    AlertKind(
        "staleness",
        "PipelineDataStale",
        Category.DATA,
        "performance",
        "max_staleness_seconds",
        "5m",
    ),
    AlertKind(
        "dependency",
        "PipelineDependencyDown",
        Category.CONNECTIVITY,
        "significant",
        None,
        "2m",
        "2m",
    ),
    AlertKind(
        "burn_page",
        "PipelineErrorBudgetBurn",
        Category.DATA,
        "significant",
        "slo_error_budget",
        "2m",
        "5m",
    ),
    AlertKind(
        "burn_ticket",
        "PipelineErrorBudgetBurnSlow",
        Category.DATA,
        "performance",
        "slo_error_budget",
        "15m",
        "15m",
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
