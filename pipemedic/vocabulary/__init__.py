"""The names every part of pipemedic shares, each kept in one table.

* :mod:`~pipemedic.vocabulary.causes`: categories, error reasons and the
  causes diagnosis names (default strategy or why it escalates, the symptom
  that must clear, what prevents it);
* :mod:`~pipemedic.vocabulary.alerts`: the generated alert kinds (name,
  category, degradation, threshold, timing);
* :mod:`~pipemedic.vocabulary.metrics`: every metric family (name, type,
  labels, help) and the label patterns;
* :mod:`~pipemedic.vocabulary.states`: incident states and action outcomes.

The rule generator and linter, the exporter's renderer, diagnosis, recovery
and its verification, the SEV computation and the post-mortem read these
tables; nothing else lists the names again.
"""

from pipemedic.vocabulary.alerts import ALERT_KINDS, AlertKind, alert_kind, by_alert
from pipemedic.vocabulary.causes import (
    CATEGORIES,
    CAUSE_NAMES,
    CAUSES,
    DEFAULT_RECOVERY,
    REASON_CAUSE,
    REASONS,
    Category,
    Cause,
    Symptom,
    category_of_reason,
    cause,
)
from pipemedic.vocabulary.metrics import METRICS, Metric, Source, metric
from pipemedic.vocabulary.states import IncidentState, Outcome

__all__ = [
    "ALERT_KINDS",
    "CATEGORIES",
    "CAUSES",
    "CAUSE_NAMES",
    "DEFAULT_RECOVERY",
    "METRICS",
    "REASONS",
    "REASON_CAUSE",
    "AlertKind",
    "Category",
    "Cause",
    "IncidentState",
    "Metric",
    "Outcome",
    "Source",
    "Symptom",
    "alert_kind",
    "by_alert",
    "category_of_reason",
    "cause",
    "metric",
]
