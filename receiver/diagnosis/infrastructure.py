"""Connectivity incidents: pipelines down, APIs down, timeouts, rate limits, expired credentials.

The runbook routes ``pipeline_down`` here: a pipeline that is down (or
unseen because its exporter is) is explained by :func:`why_down`.
"""

from __future__ import annotations

from receiver.diagnosis import queries
from receiver.diagnosis.liveness import is_down, why_down
from receiver.diagnosis.probe import Finding, Probe

__all__ = ["check_infrastructure"]


async def check_infrastructure(probe: Probe) -> Finding | None:
    """Find why the pipeline is down or cannot reach what it needs.

    A down pipeline is explained from its liveness evidence. Otherwise
    expired credentials win over a dependency probe (a probe often fails on
    401 too); a dependency whose probe says down comes next; else the most
    frequent connectivity error reason. Staleness is gathered as evidence
    for the people who read the diagnosis.
    """
    p = probe.pipeline
    if await is_down(probe):
        return await why_down(probe)
    down = await probe.dependencies_down()
    await probe.value(queries.staleness(p), "seconds since the output data was refreshed")
    reasons = await probe.error_reasons("connectivity")
    if reasons and reasons[0].cause == "credential_expired":
        return await probe.dominant_cause("connectivity")
    if down:
        return Finding(
            "dependency_down",
            f"dependency probe down: {', '.join(down)} (pipeline_dependency_up 0)",
        )
    return await probe.dominant_cause("connectivity")
