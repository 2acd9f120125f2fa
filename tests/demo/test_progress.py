"""The demo's judgement: a summary row flags every way an incident can go wrong."""

from __future__ import annotations

from typing import Any

from pipemedic.demo.progress import Progress, Reporter, kind_of, render_table, summarize
from pipemedic.demo.scenario import SCENARIO, Fault, fault_for
from receiver.models import parse_time


def _fault(pipeline: str) -> Fault:
    found = fault_for(pipeline)
    assert found is not None
    return found


def _incident(fault: Fault, **changes: Any) -> dict[str, Any]:
    steps = [f"{fault.strategy}#1"] if fault.strategy else []
    doc: dict[str, Any] = {
        "id": 1,
        "pipeline": fault.pipeline,
        "state": fault.state,
        "sev": "SEV3",
        "opened_at": "2026-01-01T00:00:00.000Z",
        "resolved_at": "2026-01-01T00:00:16.500Z" if fault.state == "resolved" else None,
        "diagnosis": {"cause": fault.cause},
        "actions": [{"step": s, "outcome": "success"} for s in steps],
        "timeline": [
            {"at": "2026-01-01T00:00:00.000Z", "event": "detected", "detail": {"alert": "A"}},
            {
                "at": "2026-01-01T00:00:01.000Z",
                "event": "recovering",
                "detail": {"cause": fault.cause, "strategy": fault.strategy},
            },
            {"at": "2026-01-01T00:00:09.000Z", "event": "recovered", "detail": {}},
        ],
    }
    doc.update(changes)
    return doc


def test_a_run_as_expected_has_no_problems() -> None:
    incidents = [dict(_incident(f), id=n) for n, f in enumerate(SCENARIO, 1)]
    hits = {f.pipeline: {f.fix: 1} for f in SCENARIO if f.fix}
    rows = summarize(SCENARIO, incidents, hits)
    assert [r.problems for r in rows] == [[] for _ in SCENARIO]
    assert [r.kind for r in rows] == [f.category for f in SCENARIO]
    table = render_table(rows)
    assert "16.5s" in table and "- (needs a person)" in table


def test_every_deviation_is_a_problem() -> None:
    fault = _fault("demo_clickstream")
    twice = _incident(fault)
    twice["actions"] = twice["actions"] * 2
    wrong = _incident(fault, diagnosis={"cause": "unknown"}, state="escalated")
    one = {fault.pipeline: {"rollback": 1}}
    cases = {
        "recorded twice": ([twice], {fault.pipeline: {"rollback": 2}}),
        "control calls": ([_incident(fault)], {fault.pipeline: {"rollback": 2}}),
        "cause 'unknown'": ([wrong], one),
        "no incident": ([], {}),
        "2 incidents": ([_incident(fault), _incident(fault, id=2)], one),
    }
    for needle, (incidents, hits) in cases.items():
        (row,) = summarize([fault], incidents, hits)
        assert any(needle in p for p in row.problems), (needle, row.problems)
        assert "(!)" in render_table([row]) or row.incident is None


def test_kind_follows_the_taxonomy() -> None:
    assert kind_of("network_timeout") == "connectivity"
    assert kind_of("memory_limit") == "resources"
    assert kind_of("unknown") is None


def test_progress_shows_each_entry_once() -> None:
    lines: list[str] = []
    fault = _fault("demo_feature_build")
    since = parse_time("2026-01-01T00:00:00.000Z")
    assert since is not None
    progress = Progress(Reporter(json_lines=False, write=lines.append), since)
    progress.update([_incident(fault)])
    progress.update([_incident(fault)])
    assert len(lines) == 2  # detected, recovered; "recovering" is bookkeeping
    assert lines[0].lstrip().startswith("+0.0s") and "fired" in lines[0]
