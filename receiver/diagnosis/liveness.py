"""Why a pipeline is down: its exporter, its credentials, a dependency, memory, or it stopped.

``pipeline_up`` is 0 when the heartbeat is older than the pipeline's
``heartbeat_timeout`` or the pipeline reported itself down; the series
vanishes when the target exporting it cannot be scraped. The order follows
what an on-call engineer rules out first: whether the metrics path itself
is broken, then what the pipeline could not reach, then what killed it.
"""

from __future__ import annotations

from receiver.diagnosis import queries
from receiver.diagnosis.probe import Finding, Probe
from receiver.diagnosis.prometheus import sample_value

__all__ = ["is_down", "why_down"]


async def is_down(probe: Probe) -> bool:
    """Tell whether the pipeline is down, or unseen because its exporter is down."""
    up = await probe.once(queries.pipeline_up(probe.pipeline), "pipeline liveness (1 up, 0 down)")
    if up is not None:
        return up == 0
    return bool(await _targets_down(probe))


async def _targets_down(probe: Probe) -> list[str]:
    baseline = probe.thresholds.baseline
    rows = await probe.rows(
        queries.exporter_targets_up(probe.pipeline, baseline),
        f"up of the scrape targets that exported the pipeline within {baseline}",
    )
    labels = [row.get("metric") or {} for row in rows if sample_value(row) == 0]
    return sorted(f"{m.get('job', '?')} {m.get('instance', '?')}" for m in labels)


async def _last_run(probe: Probe) -> str:
    """Read the last run's end and the last success; say how the last run ended."""
    p = probe.pipeline
    ended = await probe.value(queries.run_end_age(p), "seconds since the last run finished")
    succeeded = await probe.value(
        queries.last_success_age(p), "seconds since the last successful run finished"
    )
    if ended is None:
        return "no finished run reported"
    outcome = "succeeded" if succeeded is not None and succeeded <= ended + 1 else "failed"
    return f"its last run {outcome}, {ended:.0f}s ago"


async def why_down(probe: Probe) -> Finding | None:
    """Name why a down pipeline is down; None when no evidence decides (reported itself down).

    The heartbeat's age and the last run's outcome are read as evidence.
    Exporter target down -> ``exporter_down``; expired credentials ->
    ``credential_expired``; a dependency probe down -> ``dependency_down``;
    memory at its limit before the heartbeat stopped -> ``memory_limit``;
    the most frequent error reason of any category -> its cause; a heartbeat
    older than the timeout with none of these -> ``process_stopped``.
    """
    p, t = probe.pipeline, probe.thresholds
    targets = await _targets_down(probe)
    if targets:
        return Finding(
            "exporter_down",
            f"the target exporting {p!r} is down ({', '.join(targets)}: up 0); "
            "its metrics are not being collected",
        )
    age = await probe.once(queries.heartbeat_age(p), "seconds since the last sign of life")
    timeout = probe.spec.heartbeat_timeout_seconds
    last_run = await _last_run(probe)
    reasons = await probe.error_reasons()
    if reasons and reasons[0].cause == "credential_expired":
        return await probe.dominant_cause()
    down = await probe.dependencies_down()
    if down:
        return Finding(
            "dependency_down",
            f"pipeline down and dependency probe down: {', '.join(down)} "
            "(pipeline_dependency_up 0)",
        )
    peak = await probe.value(
        queries.peak_memory_ratio(p, probe.window),
        f"highest memory use / limit over the last {probe.window}",
    )
    if peak is not None and peak >= t.memory_ratio:
        return Finding(
            "memory_limit",
            f"memory reached {peak:.0%} of its limit before the pipeline went down "
            f"(threshold {t.memory_ratio:.0%})",
        )
    found = await probe.dominant_cause()
    if found is not None:
        return found
    if age is not None and age > timeout:
        return Finding(
            "process_stopped",
            f"no heartbeat for {age:.0f}s (timeout {timeout:g}s) and no error, dependency or "
            f"memory evidence: the process stopped ({last_run})",
        )
    return None
