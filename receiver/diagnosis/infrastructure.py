"""Connectivity incidents: APIs down, timeouts, rate limits, expired credentials."""

from __future__ import annotations

from receiver.diagnosis import queries
from receiver.diagnosis.probe import Finding, Probe
from receiver.diagnosis.prometheus import sample_value

__all__ = ["check_infrastructure"]


async def check_infrastructure(probe: Probe) -> Finding | None:
    """Find why the pipeline cannot reach what it needs.

    Expired credentials win over a dependency probe (a probe often fails on
    401 too); a dependency whose probe says down comes next; else the most
    frequent connectivity error reason. Liveness and staleness are gathered as
    evidence for the people who read the diagnosis.
    """
    p = probe.pipeline
    await probe.value(queries.pipeline_up(p), "pipeline liveness (1 up, 0 down)")
    deps = await probe.rows(queries.dependency_up(p), "dependency probes (1 up, 0 down)")
    await probe.value(queries.staleness(p), "seconds since the output data was refreshed")
    reasons = await probe.error_reasons("connectivity")
    if reasons and reasons[0].cause == "credential_expired":
        return await probe.dominant_cause("connectivity")
    down = sorted(
        str((row.get("metric") or {}).get("dependency", "?"))
        for row in deps
        if sample_value(row) == 0
    )
    if down:
        return Finding(
            "dependency_down",
            f"dependency probe down: {', '.join(down)} (pipeline_dependency_up 0)",
        )
    return await probe.dominant_cause("connectivity")
