"""Why a pipeline's output data is stale: a hung run, a failed one, stale input, or no run.

Output data goes stale when no run refreshes it. The run timestamps the
exporter keeps (last start, last end, last success) say which of the
runbook's stories it is: a run started and never finished, the last run
failed, the input upstream is itself stale, or no run started at all.
"""

from __future__ import annotations

from receiver.diagnosis import queries
from receiver.diagnosis.liveness import is_down, why_down
from receiver.diagnosis.probe import Finding, Probe

__all__ = ["is_stale", "why_stale"]

# Upstreams looked at per diagnosis (lineage graphs can be wide).
MAX_UPSTREAMS = 20


async def is_stale(probe: Probe) -> bool:
    """Tell whether the output data is older than the pipeline's ``max_staleness``."""
    age = await probe.once(
        queries.staleness(probe.pipeline), "seconds since the output data was refreshed"
    )
    return age is not None and age > probe.spec.max_staleness_seconds


async def why_stale(probe: Probe) -> Finding | None:
    """Name why the data is stale; None when the run evidence decides nothing.

    A down pipeline is explained as down. Then: a run started longer ago
    than the SLA with no end since -> ``run_hung``; the last run failed ->
    the most frequent error reason's cause; an upstream pipeline's output
    older than this pipeline's ``max_staleness`` -> ``upstream_stale``; no
    run started since the data was last refreshed -> ``not_scheduled``.
    """
    p, spec = probe.pipeline, probe.spec
    if await is_down(probe):
        return await why_down(probe)
    stale = await probe.once(queries.staleness(p), "seconds since the output data was refreshed")
    started = await probe.value(queries.run_start_age(p), "seconds since the last run started")
    ended = await probe.value(queries.run_end_age(p), "seconds since the last run finished")
    succeeded = await probe.value(
        queries.last_success_age(p), "seconds since the last successful run finished"
    )
    if started is not None and (ended is None or ended > started) and started > spec.sla_seconds:
        return Finding(
            "run_hung",
            f"a run started {started:.0f}s ago and has not finished "
            f"(sla {spec.sla}; the last run before it ended "
            + (f"{ended:.0f}s ago)" if ended is not None else "never)"),
        )
    if ended is not None and (succeeded is None or succeeded > ended + 1):
        found = await probe.dominant_cause()
        if found is not None:
            return Finding(found.cause, f"the last run failed; {found.summary}")
    upstream = await _stale_upstream(probe)
    if upstream is not None:
        return upstream
    last_run = started if started is not None else ended
    if stale is not None and (last_run is None or last_run >= stale):
        since = f"{last_run:.0f}s ago" if last_run is not None else "never reported"
        return Finding(
            "not_scheduled",
            f"no run started since the data was last refreshed {stale:.0f}s ago "
            f"(last run start: {since})",
        )
    return None


async def _stale_upstream(probe: Probe) -> Finding | None:
    rows = await probe.rows(
        queries.upstreams(probe.pipeline), "upstream pipelines (lineage and the spec)"
    )
    names = sorted({str((r.get("metric") or {}).get("upstream", "")) for r in rows} - {""})
    limit = probe.spec.max_staleness_seconds
    stale: list[str] = []
    for name in names[:MAX_UPSTREAMS]:
        age = await probe.value(
            queries.staleness(name), f"seconds since upstream {name!r} refreshed its data"
        )
        if age is not None and age > limit:
            stale.append(f"{name} ({age:.0f}s)")
    if not stale:
        return None
    return Finding(
        "upstream_stale",
        f"upstream output older than this pipeline's max_staleness {probe.spec.max_staleness}: "
        + ", ".join(stale),
    )
