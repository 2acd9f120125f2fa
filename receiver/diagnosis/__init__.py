"""Diagnosis: turn an alert into a cause, with the Prometheus evidence for it.

The alert's ``category`` label picks the first handler from :data:`HANDLERS`;
an alert without one is routed by its name (:data:`ALERT_HANDLERS`). Each
handler reads the evidence that decides its alerts: a pipeline that is down
is explained by ``liveness`` (exporter target, heartbeat, dependencies, peak
memory), stale output by ``freshness`` (run start, end and success,
upstreams), a run over its SLA by ``performance`` (the run against its
recent runs, the host, the volume, the dependencies). When
that handler finds nothing conclusive, the most frequent error reason of the
pipeline across all categories decides (``pipemedic.vocabulary.REASON_CAUSE``);
only then is the cause ``unknown``. Prometheus unreachable is ``unknown`` with
the error text, never a guess.

Adding a handler is one async function ``(probe) -> Finding | None`` in its
own module and one line in :data:`HANDLERS`. Third-party handlers are entry
points in the group ``pipemedic.diagnosis_handlers`` named by category;
``receiver.plugins`` merges them into a copy of the table that the app
passes in as ``handlers``.

Example::

    diagnosis = await diagnose(alert, spec.pipeline(alert.pipeline), prom)
    diagnosis.cause        # "network_timeout"
    diagnosis.evidence     # (Evidence(query=..., result=[...], note=...), ...)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from pipemedic.vocabulary import ALERT_KINDS
from receiver.diagnosis.data_integrity import check_data_integrity
from receiver.diagnosis.infrastructure import check_infrastructure
from receiver.diagnosis.logic import check_logic
from receiver.diagnosis.probe import Finding, Handler, Probe
from receiver.diagnosis.prometheus import PrometheusError, PrometheusQuery
from receiver.diagnosis.resource_usage import check_resource_usage
from receiver.models import Alert, Diagnosis
from rules.spec import PipelineSpec

__all__ = [
    "ALERT_HANDLERS",
    "HANDLERS",
    "Finding",
    "Handler",
    "Probe",
    "check_data_integrity",
    "check_infrastructure",
    "check_logic",
    "check_resource_usage",
    "diagnose",
    "handler_for",
]

log = logging.getLogger(__name__)

# Alert category label -> first handler. One line per handler.
HANDLERS: Final[dict[str, Handler]] = {
    "connectivity": check_infrastructure,
    "data": check_data_integrity,
    "resources": check_resource_usage,
    "logic": check_logic,
}

# Alert name -> category, for alerts that carry no (known) category label:
# each generated alert kind's category (pipemedic.vocabulary.alerts).
ALERT_HANDLERS: Final[Mapping[str, str]] = {k.alert: str(k.category) for k in ALERT_KINDS}

FALLBACK = "dominant_error_reason"


def handler_for(alert: Alert, handlers: Mapping[str, Handler] = HANDLERS) -> Handler | None:
    """Return the first handler for an alert: by category, else by alert name."""
    handler = handlers.get(alert.category)
    if handler is None:
        handler = handlers.get(ALERT_HANDLERS.get(alert.name, ""))
    return handler


def _name(handler: Handler | None) -> str:
    return getattr(handler, "__name__", type(handler).__name__) if handler else FALLBACK


async def diagnose(
    alert: Alert,
    spec: PipelineSpec,
    prom: PrometheusQuery,
    *,
    window: str = "15m",
    handlers: Mapping[str, Handler] = HANDLERS,
) -> Diagnosis:
    """Diagnose an alert from Prometheus evidence; never raises.

    ``window`` is how far back error counts are looked at; ``handlers`` is
    the category table (built-ins plus installed plugins).
    """
    handler = handler_for(alert, handlers)
    name = _name(handler)
    if not alert.pipeline:
        return Diagnosis(
            cause="unknown",
            handler=name,
            summary="the alert has no pipeline label; nothing to query",
            error="alert label 'pipeline' is missing or empty",
        )
    probe = Probe(prom, alert.pipeline, spec, window)
    try:
        finding = await handler(probe) if handler is not None else None
        if finding is not None:
            return Diagnosis(finding.cause, name, finding.summary, tuple(probe.evidence))
        finding = await probe.dominant_cause()
        if finding is not None:
            lead = f"{name} found nothing conclusive; " if handler is not None else ""
            return Diagnosis(finding.cause, FALLBACK, lead + finding.summary, tuple(probe.evidence))
        return Diagnosis(
            cause="unknown",
            handler=name,
            summary=f"no conclusive evidence in Prometheus for {alert.pipeline!r}",
            evidence=tuple(probe.evidence),
        )
    except PrometheusError as exc:
        return Diagnosis(
            cause="unknown",
            handler=name,
            summary="Prometheus could not be asked; no diagnosis made",
            evidence=tuple(probe.evidence),
            error=str(exc),
        )
    except Exception as exc:  # a handler bug must not lose the incident
        log.exception("diagnosis handler %s failed", name)
        return Diagnosis(
            cause="unknown",
            handler=name,
            summary=f"diagnosis handler {name} failed",
            evidence=tuple(probe.evidence),
            error=f"{type(exc).__name__}: {exc}",
        )
