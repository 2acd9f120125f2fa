"""An alert storm at a size the suite can afford (the full sizes are bench/bench_storm.py).

300 pipelines alert at once on a real SQLite store: every incident is opened
and diagnosed once, the open-incident gauge follows without recounting, and no
event reloads the incident list (the per-event cost does not grow with the
number of open incidents). Resolving a third of them lowers the gauge the same
way. The events run in batches, and the post-mortem drafts put off meanwhile
are all written (once per escalation or resolution) when the pool is idle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from core_helpers import FakeDiagnose, FakeFiring, FakeRecover, alert_doc, later, notification_doc

from receiver.incidents.lifecycle import Lifecycle
from receiver.metrics import ReceiverMetrics
from receiver.models import Incident, Notification
from receiver.report.postmortem import render_postmortem
from receiver.store.sqlite.store import SqliteStore
from receiver.worker.pool import WorkerPool
from rules.spec import Spec, parse_spec

STORM = 300


@dataclass
class CountingStore:
    """The real SQLite store, counting how often the whole incident list is read."""

    store: SqliteStore
    listings: list[dict[str, Any]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def list_incidents(self, **kwargs: Any) -> list[Incident]:
        self.listings.append(kwargs)
        return await self.store.list_incidents(**kwargs)


@dataclass
class CountingDrafts:
    """The real post-mortem renderer, counting the drafts per incident and state, and how
    many diagnoses had been made when each was written."""

    diagnose: FakeDiagnose
    drafts: list[tuple[int, str]] = field(default_factory=list)
    diagnosed: list[int] = field(default_factory=list)

    def __call__(self, incident: Incident, spec: Spec | None = None) -> str:
        self.drafts.append((incident.id, incident.state))
        self.diagnosed.append(len(self.diagnose.calls))
        return render_postmortem(incident, spec)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await SqliteStore.open(tmp_path / "storm.db")
    yield s
    await s.close()


def open_gauge(metrics: ReceiverMetrics) -> float:
    return sum(
        metrics.registry.get_sample_value("pipemedic_incidents_open", {"sev": sev}) or 0.0
        for sev in ("SEV1", "SEV2", "SEV3", "SEV4", "SEV5")
    )


async def test_a_storm_is_digested_without_reloading_the_open_incidents(
    store: SqliteStore,
) -> None:
    counting = CountingStore(store)
    metrics = ReceiverMetrics()
    spec = parse_spec("pipelines: {}\n", "spec.yml")
    diagnose = FakeDiagnose()
    drafts = CountingDrafts(diagnose)
    lifecycle = Lifecycle(counting, spec, metrics=metrics, render_postmortem=drafts)  # type: ignore[arg-type]
    workers = WorkerPool(
        counting,  # type: ignore[arg-type]  # the real store behind a counter
        lifecycle,
        diagnose=diagnose,
        recover=FakeRecover("escalated"),
        firing=FakeFiring(True),
        metrics=metrics,
        concurrency=4,
        poll_interval=0.05,
        sweep_seconds=3600,  # the periodic recount (which lists incidents) stays out of this test
    )
    storm = [alert_doc(f"storm_{i}", fingerprint=f"s{i}") for i in range(STORM)]
    for chunk in range(0, STORM, 50):
        await store.ingest(Notification.from_json(notification_doc(*storm[chunk : chunk + 50])))
    await workers.start()
    try:
        listed_at_start = len(counting.listings)
        await workers.run_until_idle(deadline_seconds=120)
        assert len(counting.listings) == listed_at_start  # no reload per event
        assert len(diagnose.calls) == STORM  # each opened incident diagnosed once
        assert open_gauge(metrics) == STORM  # escalated incidents are open
        assert sorted(drafts.drafts) == [(i, "escalated") for i in range(1, STORM + 1)]
        # put off until the burst was diagnosed (but for the last few, in flight alone)
        put_off = [n for n in drafts.diagnosed if n == STORM]
        assert len(put_off) >= STORM - workers.concurrency
        assert not lifecycle.drafts_due
        resolved = [
            {**doc, "status": "resolved", "endsAt": later(60).isoformat()} for doc in storm[:100]
        ]
        await store.ingest(Notification.from_json(notification_doc(*resolved)))
        workers.wake()
        await workers.run_until_idle(deadline_seconds=120)
        assert len(counting.listings) == listed_at_start
        assert open_gauge(metrics) == STORM - 100
    finally:
        await workers.stop()
    incidents = await store.list_incidents(limit=1000)
    assert len(incidents) == STORM
    assert sorted(i.state for i in incidents) == ["escalated"] * 200 + ["resolved"] * 100
    assert all(i.diagnosis is not None for i in incidents)
    assert all(i.postmortem and f"{i.pipeline}" in i.postmortem for i in incidents)
    resolved_drafts = [state for _, state in drafts.drafts[STORM:]]
    assert resolved_drafts == ["resolved"] * 100
