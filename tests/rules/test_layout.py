"""The generated layout stays cheap for Prometheus without changing what it records.

Each raw exporter metric is read by one recording rule, each signal by one
candidates rule, however many ``for`` rules its alert kind has.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from rules.generate import generate
from rules.output import render_all, write_files
from rules.promql import parse, selectors_in
from rules.promtool import check_rules
from rules.spec import parse_spec


def many_alike(n: int, down_for: int = 0) -> str:
    """Return a spec of ``n`` pipelines with the same override, one with its own team.

    ``down_for`` more pipelines override only ``for.down`` (2m or 5m).
    """
    lines = ["pipelines:"]
    for i in range(n):
        lines += [f"  q{i:04d}:", f"    sla: {61 + i}m"]
    lines.append("    team: other")
    for i in range(down_for):
        lines += [f"  r{i}:", "    for:", f"      down: {('2m', '5m')[i % 2]}"]
    lines += ["teams:", "  other: {}"]
    return "\n".join(lines) + "\n"


def rules_of(text: str) -> list[dict[str, object]]:
    files = render_all(generate(parse_spec(text, "x.yml")), "x.yml")
    return [r for t in files.values() for g in yaml.safe_load(t)["groups"] for r in g["rules"]]


def test_each_raw_metric_is_read_by_one_rule() -> None:
    readers: dict[str, int] = {}
    for rule in rules_of(many_alike(20)):
        names = {s.name for s in selectors_in(parse(str(rule["expr"])))}
        for name in names:
            if name and name.startswith("pipeline_") and ":" not in name:
                readers[name] = readers.get(name, 0) + 1
    assert readers == {
        "pipeline_up": 1,
        "pipeline_last_run_duration_seconds": 1,
        "pipeline_last_update_timestamp_seconds": 1,
        "pipeline_dependency_up": 1,
        "pipeline_runs_total": 1,
        "pipeline_records_failed_total": 1,
        "pipeline_records_processed_total": 1,
    }


def test_a_kind_split_by_for_reads_its_signal_once(tmp_path: Path) -> None:
    text = many_alike(20, down_for=4)
    rules = rules_of(text)
    down = [r for r in rules if r.get("alert") == "PipelineDown"]
    assert len(down) == 3  # default for, 2m, 5m
    readers = [r for r in rules if "pipeline:up:max" in str(r.get("expr"))]
    assert [r.get("record") for r in readers] == ["pipeline:down_alert:candidates"]
    assert all(str(r["expr"]).startswith("(pipeline:down_alert:candidates ") for r in down)
    write_files(tmp_path, render_all(generate(parse_spec(text, "x.yml")), "x.yml"))
    assert check_rules(sorted(tmp_path.glob("*.rules.yml"))).ok
