"""The linter catches what pint's core checks catch, each with file:line and field path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rules.lint import lint_files, lint_texts

REPO = Path(__file__).resolve().parents[2]

GOOD_LABELS = """\
        labels: {severity: warning, sev: SEV4, category: resources, team: data-platform}
        annotations: {summary: s, description: d, runbook_url: https://r.example/x}
"""


def alert(expr: str, extra: str = "", labels: str = GOOD_LABELS, for_: str = "5m") -> str:
    for_line = f"        for: {for_}\n" if for_ else ""
    return (
        "groups:\n  - name: g\n    rules:\n      - alert: A\n"
        f"        expr: '{expr}'\n{for_line}{labels}{extra}"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (alert("max by (pipeline) (pipeline_up) == 0", for_=""), "has no 'for'"),
        (
            alert(
                "max by (pipeline) (pipeline_up) == 0",
                labels="        labels: {severity: warning}\n"
                "        annotations: {summary: s, description: d, runbook_url: u}\n",
            ),
            "lacks the label 'sev'",
        ),
        (
            alert("pipeline_up == 0", labels=GOOD_LABELS.replace("summary: s, ", "")),
            "lacks the annotation 'summary'",
        ),
        (
            alert(
                "max by (pipeline) (pipeline_up) == 0",
                labels=GOOD_LABELS.replace("severity: warning", "severity: urgent"),
            ),
            "'urgent' is not a valid severity",
        ),
        (
            alert(
                "max by (pipeline) (pipeline_up) == 0",
                labels=GOOD_LABELS.replace("category: resources", "category: network"),
            ),
            "'network' is not a valid category",
        ),
        (alert("rate(pipeline_up[5m]) > 0"), "rate() over 'pipeline_up', which is not a counter"),
        (alert("max by (pipeline) (pipelin_up) == 0"), "selector 'pipelin_up' never matches"),
        (
            alert('max by (pipeline) (pipeline_up{dependency="db"}) == 0'),
            "pipeline_up has no 'dependency' label",
        ),
        (
            alert('sum by (pipeline) (rate(pipeline_runs_total{status="ok"}[5m])) > 0'),
            "status is one of failure, success",
        ),
        (alert("max by (pipeline) (pipeline_up) =="), "invalid PromQL"),
        ("groups: [unclosed\n", "invalid YAML"),
        ("rules: []\n", "a rule file needs a list of groups"),
    ],
)
def test_lint_finds(text: str, expected: str) -> None:
    problems = lint_texts({"custom.rules.yml": text})
    assert any(expected in str(p) for p in problems), [str(p) for p in problems]
    assert all(str(p).startswith("custom.rules.yml:") for p in problems)


def test_lint_names_the_line_and_path() -> None:
    problems = lint_texts({"c.rules.yml": alert("rate(pipeline_up[5m]) > 0")})
    assert [str(p) for p in problems] == [
        "c.rules.yml:5: groups[0].rules[0].expr: rate() over 'pipeline_up', which is not a "
        "counter (counters end in _total, _count, _sum or _bucket) [counter]"
    ]


def test_duplicate_alert_names_with_conflicting_labels() -> None:
    a = alert("max by (pipeline) (pipeline_up) == 0")
    b = alert(
        "max by (pipeline) (pipeline_up) == 0", labels=GOOD_LABELS.replace("sev: SEV4", "sev: SEV1")
    )
    problems = lint_texts({"a.rules.yml": a, "b.rules.yml": b})
    assert any("duplicate alert name with conflicting labels" in str(p) for p in problems)
    # same name, same labels: fine
    assert lint_texts({"a.rules.yml": a, "b.rules.yml": a}) == []


def test_labels_from_group_left_and_recorded_series_count() -> None:
    text = (
        "groups:\n  - name: g\n    rules:\n"
        "      - record: pipeline:x:spec\n        expr: vector(1)\n"
        "        labels: {pipeline: a, team: t, sev: SEV3, severity: warning}\n"
        "      - alert: A\n"
        "        expr: '(max by (pipeline) (pipeline_up) == 0) * on (pipeline) "
        "group_left (team, sev, severity) pipeline:x:spec'\n"
        "        for: 1m\n        labels: {category: data}\n"
        "        annotations: {summary: s, description: d, runbook_url: u}\n"
    )
    assert lint_texts({"r.rules.yml": text}) == []


def test_the_custom_example_lints_clean() -> None:
    assert lint_files(sorted((REPO / "rules/custom").glob("*.rules.yml"))) == []


def test_check_fails_on_a_bad_custom_rule(rules_cli: Callable[..., Any], tmp_path: Path) -> None:
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "bad.rules.yml").write_text(alert("rate(pipeline_up[5m]) > 0", for_=""))
    res = rules_cli("check", "--spec", str(REPO / "rules/pipelines.yml"), "--custom", str(custom))
    assert res.code == 1
    assert "bad.rules.yml:4: groups[0].rules[0]: alert 'A' has no 'for'" in res.err
    assert "not a counter" in res.err


def matched_record(labels: str) -> str:
    return (
        "groups:\n  - name: g\n    rules:\n"
        "      - record: pipeline:x_alert:matched\n"
        "        expr: 'max by (pipeline) (pipeline_up) == 0'\n"
        f"        labels: {labels}\n"
        "      - alert: A\n        expr: pipeline:x_alert:matched\n        for: 1m\n"
        "        labels: {team: t, sev: SEV3, severity: warning}\n"
        "        annotations: {summary: s, description: d, runbook_url: u}\n"
    )


def test_a_label_the_selected_record_carries_counts_and_is_checked() -> None:
    # the alert has no static category: its series bring it from the record's labels
    assert lint_texts({"r.rules.yml": matched_record("{category: data}")}) == []
    wrong = lint_texts({"r.rules.yml": matched_record("{category: network}")})
    assert [str(p) for p in wrong] == [
        "r.rules.yml:6: groups[0].rules[0].labels.category: 'network' is not a valid "
        "category (one of connectivity, data, resources, logic) [label-values]"
    ]
    missing = lint_texts({"r.rules.yml": matched_record("{other: x}")})
    assert any("lacks the label 'category'" in str(p) for p in missing)
