"""Why a run was slow: the host, the volume, a dependency, or the run itself.

The runbook's ``performance`` incidents go to the resource handler; a run
over its SLA is compared with the pipeline's recent runs (their mean over
the spec's ``diagnosis.baseline``) before anything is blamed. Several
pipelines slow at once on one host is the runbook's "contención de recursos
entre pipelines"; more records per run than usual is volume; a dependency
probe slower than usual is a slow dependency. A slow run with none of these
is the run's own problem; a run as long as usual means the SLA is tighter
than the pipeline has ever been.
"""

from __future__ import annotations

from typing import Any

from receiver.diagnosis import queries
from receiver.diagnosis.probe import Finding, Probe
from receiver.diagnosis.prometheus import sample_value

__all__ = ["MAX_NEIGHBOURS", "over_sla", "why_slow"]

# Pipelines of one host compared with their baseline per diagnosis (the long
# range is read for these only).
MAX_NEIGHBOURS = 50


async def over_sla(probe: Probe) -> bool:
    """Tell whether the pipeline's last run took longer than its SLA."""
    took = await probe.once(
        queries.last_run_duration(probe.pipeline), "duration of the last finished run (s)"
    )
    return took is not None and took > probe.spec.sla_seconds


async def _slow_on_same_host(probe: Probe) -> list[dict[str, Any]]:
    """Return the pipelines on this one's host whose last run, finished lately, was slow.

    Two questions: which pipelines of the host finished a run within the
    window (a short range over all of them), then which of those (at most
    :data:`MAX_NEIGHBOURS`) took ``slow_ratio`` times their baseline mean.
    """
    t = probe.thresholds
    recent = await probe.rows(
        queries.recent_runs_on_same_host(probe.pipeline, probe.window),
        f"pipelines on the same host with a run finished within {probe.window}",
    )
    names = sorted({str((r.get("metric") or {}).get("pipeline", "")) for r in recent} - {""})
    if not names:
        return []
    neighbours = sorted(names, key=lambda n: n != probe.pipeline)[:MAX_NEIGHBOURS]
    return await probe.rows(
        queries.slow_runs(neighbours, t.baseline, t.slow_ratio),
        f"of those, last run >= {t.slow_ratio:g}x the mean over {t.baseline}",
    )


async def why_slow(probe: Probe) -> Finding | None:
    """Name why the last run exceeded its SLA (resource gauges are the caller's to read first).

    Several slow pipelines on the host -> ``resource_contention``; records
    per run ``volume_ratio`` times the baseline -> ``volume_exceeded``; a
    dependency probe ``slow_ratio`` times its baseline -> ``dependency_slow``;
    else the run against its recent runs: slower -> ``run_slow``, as usual ->
    ``sla_too_tight``. The most frequent resources error reason comes before
    the last two.
    """
    p, t = probe.pipeline, probe.thresholds
    took = await probe.once(queries.last_run_duration(p), "duration of the last finished run (s)")
    if took is None:
        return None
    mean = await probe.value(
        queries.mean_run_duration(p, t.baseline), f"mean run duration over {t.baseline} (s)"
    )
    ratio = took / mean if mean else None
    slow = await _slow_on_same_host(probe)
    names = sorted({str((r.get("metric") or {}).get("pipeline", "?")) for r in slow})
    if len(names) >= t.contention_pipelines:
        host = str((slow[0].get("metric") or {}).get("instance", "?"))
        return Finding(
            "resource_contention",
            f"{len(names)} pipelines slow at once on {host}: {', '.join(names)} "
            f"(threshold {t.contention_pipelines})",
        )
    recent = await probe.value(
        queries.records_per_run(p, probe.window), f"records per run over {probe.window}"
    )
    usual = await probe.value(
        queries.records_per_run(p, t.baseline), f"records per run over {t.baseline}"
    )
    if recent is not None and usual and recent / usual >= t.volume_ratio:
        return Finding(
            "volume_exceeded",
            f"{recent:.0f} records per run recently, {recent / usual:.1f}x the "
            f"{usual:.0f} of the last {t.baseline} (threshold {t.volume_ratio:g}x)",
        )
    deps = await probe.rows(
        queries.dependency_probe_slowdown(p, t.baseline),
        f"dependency probe duration / its mean over {t.baseline}",
    )
    slow_deps = sorted(
        f"{(r.get('metric') or {}).get('dependency', '?')} ({sample_value(r):.1f}x)"
        for r in deps
        if sample_value(r) >= t.slow_ratio
    )
    if slow_deps:
        return Finding(
            "dependency_slow",
            f"dependency slower than usual: {', '.join(slow_deps)} (threshold {t.slow_ratio:g}x)",
        )
    found = await probe.dominant_cause("resources")
    if found is not None:
        return found
    if ratio is None:
        return None  # no recent runs to compare with
    if ratio >= t.slow_ratio:
        return Finding(
            "run_slow",
            f"the last run took {took:.0f}s, {ratio:.1f}x its mean of {mean:.0f}s over "
            f"{t.baseline}, with no resource, volume or dependency to blame",
        )
    return Finding(
        "sla_too_tight",
        f"the last run took {took:.0f}s, over its sla {probe.spec.sla} but as long as usual "
        f"(mean {mean:.0f}s over {t.baseline}): the SLA is tighter than the pipeline's runs",
    )
