"""The alert kinds: one row per generated alert, in one visible table.

A kind ties together the spec's vocabulary (``for.<kind>``,
``severity.<kind>``), the alert name fixed in DESIGN.md, the incident
category the receiver diagnoses by (``connectivity`` -> infrastructure,
``data`` -> data integrity, ``resources`` -> resource usage), the service
degradation that, with the pipeline's ``impact``, gives its SEV, and the
annotations. :func:`params_for` turns a pipeline's spec into the per-pipeline
data the shared rules join on: threshold, ``team``, ``sev``, ``severity``,
``runbook_url``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rules.durations import parse_duration
from rules.severity import sev_for, severity_label
from rules.spec import PipelineSpec
from rules.templates import Label, Template, Value

__all__ = ["JOIN_LABELS", "KINDS", "AlertKind", "Params", "kind", "params_for"]

# Labels every per-pipeline alert takes from the joined spec series.
JOIN_LABELS: tuple[str, ...] = ("team", "sev", "severity", "runbook_url")


@dataclass(frozen=True)
class AlertKind:
    """One generated alert: its name, category, degradation and annotations."""

    kind: str
    alert: str
    category: str
    degradation: str
    summary: Template
    description: Template
    # names its threshold: the info label and ``pipemedic:<param>:value`` series
    # (rules.specdata), the SLO group's ``pipeline:<param>:spec``
    param: str
    keep_firing_for: str | None = None


def _t(*parts: str | Label | Value) -> Template:
    return Template(tuple(parts))


_P = Label("pipeline")

KINDS: tuple[AlertKind, ...] = (
    AlertKind(
        "down",
        "PipelineDown",
        "connectivity",
        "unavailable",
        _t("Pipeline ", _P, " is down"),
        _t(
            "pipeline_up of ",
            _P,
            " has been ",
            Value(),
            " (no fresh heartbeat, or the pipeline reported itself down).",
        ),
        "down_alert_labels",
        keep_firing_for="2m",
    ),
    AlertKind(
        "exporter_down",
        "PipelineExporterDown",
        "connectivity",
        "significant",
        _t("Pipeline exporter ", Label("job"), " is down"),
        _t(
            "Prometheus cannot scrape ",
            Label("job"),
            " ",
            Label("instance"),
            " (or has no target for it): pipeline metrics are not being collected.",
        ),
        "exporter_down_alert_labels",
        keep_firing_for="2m",
    ),
    AlertKind(
        "error_rate",
        "PipelineHighErrorRate",
        "data",
        "significant",
        _t("Pipeline ", _P, " error rate is high"),
        _t(
            _P,
            ": ",
            Value("humanizePercentage"),
            " of records (or runs) failed over the last 5m, above its max_error_rate.",
        ),
        "max_error_rate",
        keep_firing_for="5m",
    ),
    AlertKind(
        "sla",
        "PipelineSLAViolation",
        "resources",
        "performance",
        _t("Pipeline ", _P, " run exceeded its SLA"),
        _t(_P, ": the last run took ", Value("humanizeDuration"), ", longer than its sla."),
        "sla_seconds",
    ),
    AlertKind(
        "staleness",
        "PipelineDataStale",
        "data",
        "performance",
        _t("Pipeline ", _P, " data is stale"),
        _t(
            _P,
            ": output data was last refreshed ",
            Value("humanizeDuration"),
            " ago, longer than its max_staleness.",
        ),
        "max_staleness_seconds",
    ),
    AlertKind(
        "dependency",
        "PipelineDependencyDown",
        "connectivity",
        "significant",
        _t("Dependency ", Label("dependency"), " of pipeline ", _P, " is down"),
        _t(
            _P,
            ": the probe of its dependency ",
            Label("dependency"),
            " has been failing (pipeline_dependency_up = ",
            Value(),
            ").",
        ),
        "dependency_alert_labels",
        keep_firing_for="2m",
    ),
    AlertKind(
        "burn_page",
        "PipelineErrorBudgetBurn",
        "data",
        "significant",
        _t("Pipeline ", _P, " is burning its error budget fast"),
        _t(
            _P,
            ": the error budget is burning ",
            Value(),
            "x faster than its SLO allows (1h and 5m, or 6h and 30m windows): page.",
        ),
        "slo_error_budget",
        keep_firing_for="5m",
    ),
    AlertKind(
        "burn_ticket",
        "PipelineErrorBudgetBurnSlow",
        "data",
        "performance",
        _t("Pipeline ", _P, " is burning its error budget"),
        _t(
            _P,
            ": the error budget is burning ",
            Value(),
            "x faster than its SLO allows (1d and 2h, or 3d and 6h windows): ticket.",
        ),
        "slo_error_budget",
        keep_firing_for="15m",
    ),
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
    if kind_name == "error_rate":
        return p.max_error_rate
    if kind_name == "sla":
        return p.sla_seconds
    if kind_name == "staleness":
        return p.max_staleness_seconds
    if kind_name in ("burn_page", "burn_ticket"):
        return p.slo.error_budget if p.slo is not None else 0.0
    return 1.0  # label-only kinds: the joined series is a multiplier of 1


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
