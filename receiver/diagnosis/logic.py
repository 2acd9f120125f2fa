"""Logic incidents: bugs in transformation code, wrong configuration."""

from __future__ import annotations

from receiver.diagnosis import queries
from receiver.diagnosis.probe import Finding, Probe

__all__ = ["check_logic"]


async def check_logic(probe: Probe) -> Finding | None:
    """Tell a code bug from a configuration error by the logic error reasons.

    Neither has an automatic fix (the default recovery table escalates both),
    but the post-mortem and the people paged need to know which it is.
    """
    await probe.value(
        queries.failed_ratio(probe.pipeline, probe.window),
        f"records failed / processed over {probe.window}",
    )
    return await probe.dominant_cause("logic")
