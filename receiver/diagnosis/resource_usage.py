"""Resource and performance incidents: memory, disk, CPU, contention, slow runs."""

from __future__ import annotations

from receiver.diagnosis import queries
from receiver.diagnosis.performance import over_sla, why_slow
from receiver.diagnosis.probe import Finding, Probe

__all__ = ["check_resource_usage"]


async def check_resource_usage(probe: Probe) -> Finding | None:
    """Compare the resource gauges with the spec's thresholds, then explain a slow run.

    All three gauges are read first so the evidence is complete; the first one
    over its threshold (memory, disk, CPU) is the cause. A last run over its
    SLA is then explained against the pipeline's recent runs
    (:func:`why_slow`); otherwise the most frequent resources error reason
    decides.
    """
    p, t = probe.pipeline, probe.thresholds
    memory = await probe.value(queries.memory_ratio(p), "memory usage / memory limit")
    disk = await probe.value(queries.disk_free(p), "free disk bytes")
    cpu = await probe.value(queries.cpu_ratio(p), "CPU usage ratio (0..1)")
    slow = await over_sla(probe)
    if memory is not None and memory >= t.memory_ratio:
        return Finding(
            "memory_limit",
            f"memory at {memory:.0%} of its limit (threshold {t.memory_ratio:.0%})",
        )
    if disk is not None and disk < t.disk_free_bytes:
        return Finding(
            "disk_full",
            f"{disk:.0f} bytes of disk free (threshold {t.disk_free_bytes:.0f} bytes)",
        )
    if cpu is not None and cpu >= t.cpu_ratio:
        return Finding("cpu_saturation", f"CPU at {cpu:.0%} (threshold {t.cpu_ratio:.0%})")
    if slow:
        return await why_slow(probe)
    return await probe.dominant_cause("resources")
