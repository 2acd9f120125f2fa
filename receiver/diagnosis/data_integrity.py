"""Data incidents: corrupt records, schema changes, volumes over capacity, stale output."""

from __future__ import annotations

from receiver.diagnosis import queries
from receiver.diagnosis.freshness import is_stale, why_stale
from receiver.diagnosis.probe import Finding, Probe

__all__ = ["check_data_integrity"]


async def check_data_integrity(probe: Probe) -> Finding | None:
    """Name the data problem: why the output is stale, else the data error reasons.

    The failed-records ratio, staleness and checkpoint age are gathered as
    evidence (a rollback needs a checkpoint to return to). Output older than
    ``max_staleness`` is explained from the run evidence (:func:`why_stale`);
    otherwise the cause comes from the most frequent data error reason, since
    a high failure ratio alone does not say what is wrong with the data.
    """
    p = probe.pipeline
    await probe.value(
        queries.failed_ratio(p, probe.window), f"records failed / processed over {probe.window}"
    )
    stale = await is_stale(probe)
    await probe.value(queries.checkpoint_age(p), "seconds since the last good checkpoint")
    if stale:
        found = await why_stale(probe)
        if found is not None:
            return found
    return await probe.dominant_cause("data")
