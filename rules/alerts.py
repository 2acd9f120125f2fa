"""The generated alerts: the vocabulary's alert kinds with their rule modules.

Each kind's name, category, degradation, thresholds and timing are a row of
:mod:`pipemedic.vocabulary.alerts`; its module under :mod:`rules.kinds`
adds the signal, annotations and test cases. :func:`params_for` turns a
pipeline's spec into the per-pipeline data the shared rules join on:
thresholds, ``team``, ``sev``, ``severity``, ``runbook_url``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from pipemedic import vocabulary
from rules.durations import parse_duration
from rules.kinds import KindRules, rules_of
from rules.severity import sev_for, severity_label
from rules.spec import PipelineSpec, Spec
from rules.templates import Template

__all__ = [
    "JOIN_LABELS",
    "AlertKind",
    "Params",
    "for_seconds",
    "highest_threshold",
    "keep_firing_for",
    "kind",
    "kinds",
    "lowest_threshold",
    "params_for",
]

# Labels every per-pipeline alert takes from the joined spec series.
JOIN_LABELS: tuple[str, ...] = ("team", "sev", "severity", "runbook_url")


@dataclass(frozen=True)
class AlertKind:
    """One generated alert: its vocabulary row and its rule module's ``RULES``."""

    row: vocabulary.AlertKind
    rules: KindRules

    @property
    def kind(self) -> str:
        return self.row.kind

    @property
    def alert(self) -> str:
        return self.row.alert

    @property
    def category(self) -> str:
        return str(self.row.category)

    @property
    def degradation(self) -> str:
        return self.row.degradation

    @property
    def params(self) -> tuple[str, ...]:
        """Name its thresholds: the info labels and ``pipemedic:<param>:value`` series."""
        return self.row.thresholds

    @property
    def summary(self) -> Template:
        return self.rules.summary

    @property
    def description(self) -> Template:
        return self.rules.description


@cache
def kind(name: str) -> AlertKind:
    """Return the alert kind named in the spec (``down``, ``error_rate``...)."""
    row = vocabulary.alert_kind(name)
    return AlertKind(row, rules_of(row))


def kinds() -> tuple[AlertKind, ...]:
    """Return every alert kind, in the vocabulary's order."""
    return tuple(kind(row.kind) for row in vocabulary.ALERT_KINDS)


@dataclass(frozen=True)
class Params:
    """What one pipeline's alert of one kind joins: thresholds and labels."""

    values: tuple[float, ...]
    team: str
    sev: str
    severity: str
    runbook_url: str

    @property
    def value(self) -> float:
        """Return the first threshold (1 for a label-only kind: a multiplier of 1)."""
        return self.values[0] if self.values else 1.0

    def labels(self) -> dict[str, str]:
        """Return the joined labels, in JOIN_LABELS order."""
        return {
            "team": self.team,
            "sev": self.sev,
            "severity": self.severity,
            "runbook_url": self.runbook_url,
        }


def _threshold(p: PipelineSpec, field: str) -> float:
    value = getattr(p, field)
    assert isinstance(value, float | int), f"PipelineSpec.{field} is not a number"
    return float(value)


def params_for(p: PipelineSpec, kind_name: str) -> Params:
    """Return the thresholds and labels of ``p`` for one alert kind."""
    row = vocabulary.alert_kind(kind_name)
    sev = sev_for(row.degradation, p.impact)
    return Params(
        values=tuple(_threshold(p, f) for f in row.thresholds),
        team=p.team,
        sev=sev,
        severity=p.severity.get(kind_name, severity_label(sev)),
        runbook_url=p.runbook_url,
    )


def _all(spec: Spec) -> tuple[PipelineSpec, ...]:
    return (spec.defaults, *spec.pipelines.values())


def lowest_threshold(spec: Spec, kind_name: str, index: int = 0) -> float:
    """Return the lowest threshold of one kind over the defaults and every listed pipeline."""
    return min(
        params_for(p, kind_name).values[index] for p in (spec.defaults, *spec.pipelines.values())
    )


def highest_threshold(spec: Spec, kind_name: str, index: int = 0) -> float:
    """Return the highest threshold of one kind over the defaults and every listed pipeline."""
    return max(
        params_for(p, kind_name).values[index] for p in (spec.defaults, *spec.pipelines.values())
    )


def keep_firing_for(spec: Spec, kind_name: str) -> str | None:
    """Return the ``keep_firing_for`` of a kind's alerts (``None`` for ``0s``: none)."""
    value = spec.defaults.keep_firing_for.get(kind_name, "0s")
    return value if parse_duration(value) > 0 else None


def for_seconds(p: PipelineSpec, kind_name: str) -> float:
    """Return the ``for`` of a pipeline's alert of one kind, in seconds."""
    return parse_duration(p.for_.get(kind_name, "0s"))
