"""The generated alerts: the vocabulary's alert kinds with their annotations.

Each kind's name, category, degradation, threshold and timing are a row of
:mod:`pipemedic.vocabulary.alerts`; this module adds what only the rules
need, the ``summary`` and ``description`` templates (rendered again by the
generated promtool tests). :func:`params_for` turns a pipeline's spec into
the per-pipeline data the shared rules join on: threshold, ``team``,
``sev``, ``severity``, ``runbook_url``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipemedic.vocabulary import alerts as vocabulary
from rules.durations import parse_duration
from rules.severity import sev_for, severity_label
from rules.spec import PipelineSpec
from rules.templates import Label, Template, Value

__all__ = ["JOIN_LABELS", "KINDS", "AlertKind", "Params", "kind", "params_for"]

# Labels every per-pipeline alert takes from the joined spec series.
JOIN_LABELS: tuple[str, ...] = ("team", "sev", "severity", "runbook_url")


@dataclass(frozen=True)
class AlertKind:
    """One generated alert: its vocabulary row and its annotations."""

    row: vocabulary.AlertKind
    summary: Template
    description: Template

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
    def keep_firing_for(self) -> str | None:
        return self.row.keep_firing_for

    @property
    def param(self) -> str:
        """Name its threshold: the info label and ``pipemedic:<param>:value`` series."""
        return self.row.threshold or f"{self.row.kind}_alert_labels"


def _t(*parts: str | Label | Value) -> Template:
    return Template(tuple(parts))


_P = Label("pipeline")

# kind -> (summary, description)
ANNOTATIONS: dict[str, tuple[Template, Template]] = {
    "down": (
        _t("Pipeline ", _P, " is down"),
        _t(
            "pipeline_up of ",
            _P,
            " has been ",
            Value(),
            " (no fresh heartbeat, or the pipeline reported itself down).",
        ),
    ),
    "exporter_down": (
        _t("Pipeline exporter ", Label("job"), " is down"),
        _t(
            "Prometheus cannot scrape ",
            Label("job"),
            " ",
            Label("instance"),
            " (or has no target for it): pipeline metrics are not being collected.",
        ),
    ),
    "error_rate": (
        _t("Pipeline ", _P, " error rate is high"),
        _t(
            _P,
            ": ",
            Value("humanizePercentage"),
            " of records (or runs) failed over the last 5m, above its max_error_rate.",
        ),
    ),
    "sla": (
        _t("Pipeline ", _P, " run exceeded its SLA"),
        _t(_P, ": the last run took ", Value("humanizeDuration"), ", longer than its sla."),
    ),
    "staleness": (
        _t("Pipeline ", _P, " data is stale"),
        _t(
            _P,
            ": output data was last refreshed ",
            Value("humanizeDuration"),
            " ago, longer than its max_staleness.",
        ),
    ),
    "dependency": (
        _t("Dependency ", Label("dependency"), " of pipeline ", _P, " is down"),
        _t(
            _P,
            ": the probe of its dependency ",
            Label("dependency"),
            " has been failing (pipeline_dependency_up = ",
            Value(),
            ").",
        ),
    ),
    "burn_page": (
        _t("Pipeline ", _P, " is burning its error budget fast"),
        _t(
            _P,
            ": the error budget is burning ",
            Value(),
            "x faster than its SLO allows (1h and 5m, or 6h and 30m windows): page.",
        ),
    ),
    "burn_ticket": (
        _t("Pipeline ", _P, " is burning its error budget"),
        _t(
            _P,
            ": the error budget is burning ",
            Value(),
            "x faster than its SLO allows (1d and 2h, or 3d and 6h windows): ticket.",
        ),
    ),
}

KINDS: tuple[AlertKind, ...] = tuple(
    AlertKind(row, *ANNOTATIONS[row.kind]) for row in vocabulary.ALERT_KINDS
)

_BY_KIND = {k.kind: k for k in KINDS}


def kind(name: str) -> AlertKind:
    """Return the alert kind named in the spec (``down``, ``error_rate``...)."""
    return _BY_KIND[name]


@dataclass(frozen=True)
class Params:
    """What one pipeline's alert of one kind joins: threshold and labels."""

    value: float
    team: str
    sev: str
    severity: str
    runbook_url: str

    def labels(self) -> dict[str, str]:
        """Return the joined labels, in JOIN_LABELS order."""
        return {
            "team": self.team,
            "sev": self.sev,
            "severity": self.severity,
            "runbook_url": self.runbook_url,
        }


def _threshold(p: PipelineSpec, kind_name: str) -> float:
    field = _BY_KIND[kind_name].row.threshold
    if field is None:
        return 1.0  # label-only kinds: the joined series is a multiplier of 1
    value = getattr(p, field)
    assert isinstance(value, float | int), f"PipelineSpec.{field} is not a number"
    return float(value)


def params_for(p: PipelineSpec, kind_name: str) -> Params:
    """Return the threshold and labels of ``p`` for one alert kind."""
    sev = sev_for(_BY_KIND[kind_name].degradation, p.impact)
    return Params(
        value=_threshold(p, kind_name),
        team=p.team,
        sev=sev,
        severity=p.severity.get(kind_name, severity_label(sev)),
        runbook_url=p.runbook_url,
    )


def for_seconds(p: PipelineSpec, kind_name: str) -> float:
    """Return the ``for`` of a pipeline's alert of one kind, in seconds."""
    return parse_duration(p.for_.get(kind_name, "0s"))
