"""Data incidents: corrupt records, schema changes, volumes over capacity."""

from __future__ import annotations

from receiver.diagnosis import queries
from receiver.diagnosis.probe import Finding, Probe

__all__ = ["check_data_integrity"]


async def check_data_integrity(probe: Probe) -> Finding | None:
    """Name the data problem from the pipeline's data error reasons.

    The failed-records ratio, staleness and checkpoint age are gathered as
    evidence (a rollback needs a checkpoint to return to); the cause comes
    from the most frequent data error reason, since a high failure ratio
    alone does not say what is wrong with the data.
    """
    p = probe.pipeline
    await probe.value(
        queries.failed_ratio(p, probe.window), f"records failed / processed over {probe.window}"
    )
    await probe.value(queries.staleness(p), "seconds since the output data was refreshed")
    await probe.value(queries.checkpoint_age(p), "seconds since the last good checkpoint")
    return await probe.dominant_cause("data")
