"""The generated layout stays cheap for Prometheus without changing what its alerts mean.

Each raw exporter metric is read by one recording rule, each signal by one
candidates rule, however many ``for`` rules its alert kind has, and the only
full-size series written per pipeline is ``pipeline:error_ratio:rate5m``.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from rules.generate import generate
from rules.output import render_all, write_files
from rules.promql import parse, selectors_in
from rules.promtool import check_rules
from rules.spec import parse_spec
from rules.specdata import CONSTANT_SUFFIXES


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
        # failed runs by one rule, the other runs by another: each series is read once
        "pipeline_runs_total": 2,
        "pipeline_records_failed_total": 1,
        "pipeline_records_processed_total": 1,
        "pipeline_awaiting_first_report_timestamp_seconds": 1,
        "pipeline_errors_total": 1,  # schema changes
        "pipeline_last_run_output_records": 1,
        "pipeline_dependency_cycle": 1,
        "pipeline_upstream_info": 1,
    }


def test_a_kind_split_by_for_reads_its_signal_once(tmp_path: Path) -> None:
    text = many_alike(20, down_for=4)
    rules = rules_of(text)
    down = [r for r in rules if r.get("alert") == "PipelineDown"]
    assert len(down) == 3  # default for, 2m, 5m
    readers = [r for r in rules if re.search(r"\bpipeline_up\b", str(r.get("expr")))]
    assert [r.get("record") for r in readers] == ["pipeline:down_alert:candidates"]
    # the join with the spec is recorded once; each ``for`` rule selects its pipelines
    # from that record by the ``for_override`` label (from their info series)
    assert [str(r["expr"]) for r in down] == [
        'pipeline:down_alert:matched{for_override=""}',
        'pipeline:down_alert:matched{for_override="2m"}',
        'pipeline:down_alert:matched{for_override="5m"}',
    ]
    write_files(tmp_path, render_all(generate(parse_spec(text, "x.yml")), "x.yml"))
    assert check_rules(sorted(tmp_path.glob("*.rules.yml"))).ok


def test_only_the_error_ratio_is_recorded_for_every_pipeline() -> None:
    # every other record is a spec constant or a candidates rule (filtered by
    # == 0 or > threshold): writing a full-size series costs every cycle
    slo = "pipelines:\n  a:\n    slo:\n      objective: 0.99\n"
    for text in (many_alike(20), slo):
        records = {str(r["record"]) for r in rules_of(text) if "record" in r}
        full = {
            name
            for name in records
            if not name.endswith((*CONSTANT_SUFFIXES, "_alert:candidates", "_alert:matched"))
            and not name.startswith("pipeline:slo_")
        }
        assert full == {
            "pipeline:error_ratio:rate5m",
            "pipeline:run_error_ratio:rate5m",
            "pipeline:runs_failed:rate5m",
            # only pipelines with row counts: their median (a subquery) once, not twice
            "pipeline:output_records:median_ratio",
        }
        # ... but the runs records only for pipelines whose failure rate is above 0
        exprs = {str(r.get("record")): str(r["expr"]) for r in rules_of(text)}
        assert exprs["pipeline:runs_failed:rate5m"] == (
            'sum by (pipeline) (rate(pipeline_runs_total{status="failure"}[5m]) > 0)'
        )
        assert exprs["pipeline:run_error_ratio:rate5m"].startswith("pipeline:runs_failed:rate5m / ")


def test_error_rate_candidates_combine_the_ratios_after_filtering() -> None:
    # the ``or``/``max`` of the two ratios touches only pipelines above the lowest
    # threshold, and keeps both ratios of a pipeline (``or`` ignores metric names)
    rules = {str(r.get("record")): str(r["expr"]) for r in rules_of(many_alike(3))}
    assert rules["pipeline:error_rate_alert:candidates"] == (
        "max by (pipeline) (pipeline:error_ratio:rate5m > 0.05 or label_replace("
        'pipeline:run_error_ratio:rate5m > 0.05, "ratio", "runs", "", ""))'
    )


def test_slo_rates_read_only_slo_pipelines() -> None:
    slo = "    slo:\n      objective: 0.99\n"
    text = f"pipelines:\n  a.b:\n{slo}  c: {{}}\n  d:\n{slo}"
    rules = {str(r.get("record")): str(r["expr"]) for r in rules_of(text)}
    # an alternation of the escaped names: an index lookup of exactly those series
    assert rules["pipeline:slo_records_failed:rate5m"] == (
        'sum by (pipeline) (rate(pipeline_records_failed_total{pipeline=~"a\\\\.b|d"}[5m]))'
    )
