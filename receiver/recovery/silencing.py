"""Silence a pipeline's alerts in Alertmanager while its recovery runs (optional).

``silenced(run, ...)`` is an async context manager: it creates the silence
(API v2) on entry and expires it on exit, whatever the recovery did. A
silence that cannot be created or expired is a ``silence_failed`` timeline
entry, never a failed recovery; the silence's own end
(``silence_max_seconds``) bounds one that could not be expired.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from receiver.recovery.run import Run
from receiver.recovery.silences import SilenceError, Silences

__all__ = ["silenced"]


@asynccontextmanager
async def silenced(
    run: Run,
    silences: Silences | None,
    *,
    clock: Callable[[], datetime],
    max_seconds: float,
) -> AsyncIterator[None]:
    """Keep the pipeline silenced for the duration of the block (no-op without ``silences``)."""
    sid = await _create(run, silences, clock, max_seconds) if silences is not None else None
    try:
        yield
    finally:
        if silences is not None and sid is not None:
            await _expire(run, silences, sid)


async def _create(
    run: Run, silences: Silences, clock: Callable[[], datetime], max_seconds: float
) -> str | None:
    labels = {"pipeline": run.incident.pipeline}
    try:
        sid = await silences.create(
            labels,
            starts=clock(),
            until=clock() + timedelta(seconds=max_seconds),
            comment=f"pipemedic incident #{run.incident.id}: {run.strategy} in progress",
        )
    except (SilenceError, ValueError) as exc:
        run.note("silence_failed", {"error": str(exc)})
        return None
    run.note("silence_created", {"id": sid, "matchers": labels})
    return sid


async def _expire(run: Run, silences: Silences, sid: str) -> None:
    try:
        await silences.expire(sid)
    except (SilenceError, ValueError) as exc:
        run.note("silence_failed", {"id": sid, "error": str(exc)})
        return
    run.note("silence_expired", {"id": sid})
