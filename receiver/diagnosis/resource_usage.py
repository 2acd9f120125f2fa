"""Resource incidents: memory at its limit, disk full, CPU saturated."""

from __future__ import annotations

from receiver.diagnosis import queries
from receiver.diagnosis.probe import Finding, Probe

__all__ = ["check_resource_usage"]


async def check_resource_usage(probe: Probe) -> Finding | None:
    """Compare the pipeline's resource gauges with their limits, then its error reasons.

    All three gauges are read first so the evidence is complete; the first one
    over its threshold (memory, disk, CPU) is the cause. Without a gauge over
    its threshold, the most frequent resources error reason decides.
    """
    p = probe.pipeline
    memory = await probe.value(queries.memory_ratio(p), "memory usage / memory limit")
    disk = await probe.value(queries.disk_free(p), "free disk bytes")
    cpu = await probe.value(queries.cpu_ratio(p), "CPU usage ratio (0..1)")
    if memory is not None and memory >= queries.MEMORY_RATIO_LIMIT:
        return Finding(
            "memory_limit",
            f"memory at {memory:.0%} of its limit (threshold {queries.MEMORY_RATIO_LIMIT:.0%})",
        )
    if disk is not None and disk < queries.DISK_FREE_MIN_BYTES:
        return Finding(
            "disk_full",
            f"{disk:.0f} bytes of disk free (threshold {queries.DISK_FREE_MIN_BYTES} bytes)",
        )
    if cpu is not None and cpu >= queries.CPU_RATIO_LIMIT:
        return Finding(
            "cpu_saturation",
            f"CPU at {cpu:.0%} (threshold {queries.CPU_RATIO_LIMIT:.0%})",
        )
    return await probe.dominant_cause("resources")
