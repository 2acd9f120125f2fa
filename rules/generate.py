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
2. The recordings some kinds' signals read (their module's ``records``):
   ``pipeline:error_ratio:rate5m`` (failed / processed records, the README's
   error ratio) and ``pipeline:run_error_ratio:rate5m`` (failed / all runs,
   only for the pipelines with failed runs, from
   ``pipeline:runs_failed:rate5m``), the output volume's median. Every
   series costs Prometheus work per pipeline per cycle, so nothing else is
   recorded per pipeline: the gauges are read raw by their candidates.
3. Per kind (one module under :mod:`rules.kinds` each, named by its row in
   :mod:`pipemedic.vocabulary.alerts`), ``pipeline:<kind>_alert:candidates``:
   the signal where it is down (``== 0``) or past the loosest threshold any
   pipeline has, so every pipeline that may fire and usually only those; then
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

Everything is the spec's data: thresholds, ``for``, heartbeat timeouts,
and under ``defaults`` the error-ratio ``rate_window`` and each kind's
``keep_firing_for`` (production values by default; see rules/pipelines.yml
for the trade-offs). ``pipemedic demo`` and its end-to-end test pass a
seconds-long :class:`Timing` that overrides those two (and a spec copy with
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

from rules.alerts import kinds
from rules.durations import parse_duration
from rules.promql import selector
from rules.rulefile import RuleFile, for_overrides, labelled_alert_rules, record, series_labels
from rules.slo import slo_file
from rules.spec import Spec
from rules.specdata import joined, spec_data

__all__ = [
    "EXPORTER_JOB",
    "EXPORTER_LABEL",
    "EXPORTER_TARGET",
    "PRODUCTION",
    "PUSHGATEWAY_JOB",
    "Timing",
    "candidates_metric",
    "generate",
    "matched_metric",
    "pipeline_kinds",
]

# Scrape job names of the exporters in prometheus.yml.
EXPORTER_JOB = "pipemedic-exporter"
PUSHGATEWAY_JOB = "pipemedic-pushgateway"
# The target label every scrape job serving pipeline metrics sets in prometheus.yml
# (the exporter, the Pushgateway, an application's own /metrics), whatever its job name:
#   relabel_configs: [{target_label: pipemedic_target, replacement: exporter}]
EXPORTER_LABEL = "pipemedic_target"
EXPORTER_TARGET = "exporter"


@dataclass(frozen=True)
class Timing:
    """Overrides of the spec's timing, for demos and tests that have seconds, not minutes.

    ``rate_window``: the window of the error-ratio rates; ``keep_firing_for``:
    a duration that replaces every alert's (``0s`` drops it). ``None`` keeps
    the spec's (``defaults.rate_window``, ``defaults.keep_firing_for``);
    ``pipemedic rules generate`` always writes the spec's.
    """

    rate_window: str | None = None
    keep_firing_for: str | None = None

    def __post_init__(self) -> None:
        if self.rate_window is not None and parse_duration(self.rate_window) <= 0:
            raise ValueError(f"Timing.rate_window must be positive, got {self.rate_window!r}")
        if self.keep_firing_for is not None:
            parse_duration(self.keep_firing_for)  # ValueError names a bad duration


PRODUCTION = Timing()


def candidates_metric(kind_name: str) -> str:
    """Return the recorded candidates of a kind: the pipelines whose alert may fire."""
    return f"pipeline:{kind_name}_alert:candidates"


def matched_metric(kind_name: str) -> str:
    """Return the recorded, labelled series of a kind: the pipelines its alert fires for."""
    return f"pipeline:{kind_name}_alert:matched"


def pipeline_kinds() -> tuple[str, ...]:
    """Return the kinds with a per-pipeline signal, in the vocabulary's order."""
    return tuple(k.kind for k in kinds() if k.rules.signal is not None)


def _apply_keep_firing(files: list[RuleFile], keep_firing_for: str) -> None:
    """Set (or, for ``0s``, drop) ``keep_firing_for`` on every alert of ``files``."""
    for alert in (a for f in files for a in f.alerts()):
        alert.pop("keep_firing_for", None)
        if parse_duration(keep_firing_for) > 0:
            alert["keep_firing_for"] = keep_firing_for


def generate(spec: Spec, timing: Timing = PRODUCTION) -> list[RuleFile]:
    """Return the rule files for a spec, deterministically (same spec, same rules)."""
    window = timing.rate_window or spec.defaults.rate_window
    names = pipeline_kinds()
    overrides = for_overrides(spec, names)
    data = spec_data(spec, names, overrides)
    records: list[dict[str, Any]] = []
    matched: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    own: list[dict[str, Any]] = []  # kinds writing their own alert (the exporter's), last
    for k in kinds():
        if k.rules.records is not None:
            records += k.rules.records(spec, window)
        if k.rules.signal is not None:
            signal = k.rules.signal(spec, window)
            matched.append(record(candidates_metric(k.kind), signal.candidates))
            expr = joined(selector(candidates_metric(k.kind)), signal.ops, k, data)
            matched.append(record(matched_metric(k.kind), expr, series_labels(k)))
            alerts += labelled_alert_rules(k, matched_metric(k.kind), spec, overrides[k.kind])
        elif k.rules.alerts is not None:
            own += k.rules.alerts(spec)
    rules = [*data.rules, *records, *matched, *alerts, *own]
    group = {"name": "pipemedic-pipelines", "rules": rules}
    files = [RuleFile("pipemedic-pipelines", [group])]
    slo = slo_file(spec, window)
    if slo is not None:
        files.append(slo)
    if timing.keep_firing_for is not None:
        _apply_keep_firing(files, timing.keep_firing_for)
    return files
