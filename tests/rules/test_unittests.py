"""`pipemedic rules test`: generated promtool unit tests pass, and can fail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rules.generate import generate
from rules.output import render_all, write_files
from rules.promtool import test_rules as promtool_test
from rules.spec import Spec, load_spec, parse_spec
from rules.unittests import unit_tests

REPO = Path(__file__).resolve().parents[2]


def write_rules_and_tests(
    folder: Path, spec: Spec, rules_from: Spec | None = None
) -> dict[str, str]:
    """Write the rules of ``rules_from`` (default ``spec``) and ``spec``'s generated tests.

    Returns the rendered rule files; the tests are ``folder / "pipemedic.test.yml"``.
    """
    wanted = render_all(generate(rules_from or spec), "x")
    write_files(folder, wanted)
    for name, text in unit_tests(spec, sorted(wanted)).items():
        (folder / name).write_text(text)
    return wanted


def test_rules_test_passes_for_the_default_spec_and_custom_rules(
    rules_cli: Callable[..., Any], monkeypatch: Any
) -> None:
    monkeypatch.chdir(REPO)
    res = rules_cli("test")
    assert res.code == 0, res.err
    assert "pipemedic.test.yml" in res.out
    assert "pipeline-resources.test.yml" in res.out


def test_every_generated_alert_is_tested(tmp_path: Path) -> None:
    spec = load_spec(REPO / "rules/pipelines.yml")
    files = generate(spec)
    tests = yaml.safe_load(unit_tests(spec, [])["pipemedic.test.yml"])
    tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"]}
    assert tested == {a["alert"] for f in files for a in f.alerts()}
    names = " ".join(case["name"] for case in tests["tests"])
    assert "absent" in names and "within budget" in names
    series = " ".join(s["series"] for case in tests["tests"] for s in case["input_series"])
    # a pipeline not in the spec, and quiet pipelines
    assert 'pipeline="pipemedic_unlisted"' in series
    assert 'pipeline="pipemedic_quiet"' in series and 'pipeline="pipemedic_quiet_failing"' in series


def test_tests_fail_against_rules_from_another_spec(tmp_path: Path) -> None:
    """The generated tests detect rules that do not match the spec (wrong threshold)."""
    spec = parse_spec(
        "pipelines:\n  etl:\n    max_error_rate: 0.02\n    team: a\n"
        "teams:\n  a: {}\n  data-platform: {}\n"
    )
    other = parse_spec(
        "pipelines:\n  etl:\n    max_error_rate: 0.2\n    team: a\n"
        "teams:\n  a: {}\n  data-platform: {}\n"
    )
    write_rules_and_tests(tmp_path, spec, rules_from=other)
    result = promtool_test([tmp_path / "pipemedic.test.yml"])
    assert not result.ok
    assert "PipelineHighErrorRate" in result.output

    # and the same tests pass against the rules of their own spec
    write_files(tmp_path, render_all(generate(spec), "x"))
    assert promtool_test([tmp_path / "pipemedic.test.yml"]).ok


def test_a_failing_custom_test_fails_the_command(
    rules_cli: Callable[..., Any], tmp_path: Path
) -> None:
    custom = tmp_path / "custom"
    custom.mkdir()
    src = REPO / "rules/custom"
    (custom / "pipeline-resources.rules.yml").write_text(
        (src / "pipeline-resources.rules.yml").read_text().replace("> 0.9", "> 0.99")
    )
    (custom / "pipeline-resources.test.yml").write_text(
        (src / "pipeline-resources.test.yml").read_text()
    )
    res = rules_cli("test", "--spec", str(REPO / "rules/pipelines.yml"), "--custom", str(custom))
    assert res.code == 1
    assert "PipelineMemoryNearLimit" in res.err


def test_burn_tests_expect_no_page_where_the_objective_is_too_loose(tmp_path: Path) -> None:
    """At objective 0.9 a 50% error ratio burns 5x: the page tier (6x, 14.4x) cannot fire."""
    spec = parse_spec(
        "pipelines:\n  loose.one:\n    slo:\n      objective: 0.9\n"
        "  tight-one:\n    slo:\n      objective: 0.995\n"
    )
    write_rules_and_tests(tmp_path, spec)
    doc = yaml.safe_load((tmp_path / "pipemedic.test.yml").read_text())
    page = next(t for t in doc["tests"] if t["name"] == "PipelineErrorBudgetBurn (page): burning")
    fired = {a["exp_labels"]["pipeline"] for a in page["alert_rule_test"][-1]["exp_alerts"]}
    assert fired == {"tight-one"}
    assert promtool_test([tmp_path / "pipemedic.test.yml"]).ok


MIXED_OVERRIDES = (
    "pipelines:\n"
    "  a:\n    impact: most\n    sla: 20m\n    severity: {sla: info}\n    for: {sla: 1m}\n"
    "  b:\n    impact: none\n    max_error_rate: 0.01\n    severity: {down: critical}\n"
    "    for: {down: 3m, error_rate: 3m}\n"
    "  c:\n    team: other\n    runbook_url: https://example.invalid/c\n"
    "  d:\n    impact: many\n    sla: 20m\n    for: {dependency: 5m}\n"
    "  e:\n    impact: most\n    max_staleness: 1h\n    severity: {staleness: info}\n"
    "  f:\n    description: same as the defaults\n"
    "teams:\n  other: {}\n  data-platform: {}\n"
)
# the defaults set a severity of their own: unlisted pipelines take it, listed ones too
DEFAULT_SEVERITY = (
    "defaults:\n  severity: {down: info, sla: critical}\n  impact: many\n"
    "pipelines:\n  a:\n    impact: none\n    severity: {down: critical}\n  b:\n    team: other\n"
    "  c:\n    sla: 10m\n    for: {sla: 3m}\n"
    "teams:\n  other: {}\n  data-platform: {}\n"
)


@pytest.mark.parametrize(("text", "listed"), [(MIXED_OVERRIDES, 5), (DEFAULT_SEVERITY, 3)])
def test_spec_data_joins_give_each_pipeline_its_own_labels_thresholds_and_for(
    tmp_path: Path, text: str, listed: int
) -> None:
    """Every impact, shared and distinct thresholds, own ``for`` and ``severity`` per kind.

    The listed pipelines share one info series each across kinds; the generated
    promtool tests expect each one's exact labels (team, sev, severity,
    runbook_url, for_override), value and ``for``.
    """
    spec = parse_spec(text)
    wanted = write_rules_and_tests(tmp_path, spec)
    info = wanted["pipemedic-pipelines.rules.yml"].count("record: pipeline:alert_spec:info")
    assert info == listed
    result = promtool_test([tmp_path / "pipemedic.test.yml"])
    assert result.ok, result.output


NEW_KINDS = (
    "pipelines:\n"
    "  wide:\n    volume_min_ratio: 0.1\n    volume_max_ratio: 5\n    impact: most\n"
    "  narrow:\n    volume_min_ratio: 0.8\n    volume_max_ratio: 1.2\n"
    "  patient:\n    heartbeat_timeout: 20m\n    for: {never_reported: 3m, schema_change: 2m}\n"
    "  hasty:\n    heartbeat_timeout: 1m\n    severity: {circular_dependency: critical}\n"
)


def test_new_kinds_with_overrides_pass_and_catch_rules_of_another_spec(tmp_path: Path) -> None:
    """Volume bands, heartbeat timeouts and ``for`` of the lineage and never-reported kinds."""
    spec = parse_spec(NEW_KINDS)
    write_rules_and_tests(tmp_path, spec)
    result = promtool_test([tmp_path / "pipemedic.test.yml"])
    assert result.ok, result.output
    doc = yaml.safe_load((tmp_path / "pipemedic.test.yml").read_text())
    fired = {
        t["name"].split(":")[0]: {
            a["exp_labels"]["pipeline"] for a in t["alert_rule_test"][-1]["exp_alerts"]
        }
        for t in doc["tests"]
    }
    # narrow fires between its band and the default's, wide does not; hasty's
    # 1m timeout fires where the default 5m would not, patient's 20m does not
    assert {"narrow", "pipemedic_unlisted", "pipemedic_unlisted_low"} <= fired[
        "PipelineVolumeAnomaly"
    ]
    assert "wide" not in fired["PipelineVolumeAnomaly"]
    assert "hasty" in fired["PipelineNeverReported"]
    assert "patient" not in fired["PipelineNeverReported"]
    assert {"pipemedic_cycle_a", "pipemedic_cycle_b", "hasty"} <= fired[
        "PipelineCircularDependency"
    ]
    assert not any(p.startswith("pipemedic_chain") for p in fired["PipelineCircularDependency"])
    assert "pipemedic_new_series" in fired["PipelineSchemaChange"]

    other = parse_spec(NEW_KINDS.replace("volume_max_ratio: 1.2", "volume_max_ratio: 3"))
    write_files(tmp_path, render_all(generate(other), "x"))
    result = promtool_test([tmp_path / "pipemedic.test.yml"])
    assert not result.ok
    assert "PipelineVolumeAnomaly" in result.output
