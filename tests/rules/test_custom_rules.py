"""Custom rules over a team's own metrics are first-class (issue 22).

`known_metrics:` in the spec lets custom rules select orchestrator metrics
(Airflow's statsd, dbt, Spark); a `# pipemedic: disable=<check>` comment turns
one check off for one rule; custom rules' own tests run in `rules test`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rules.errors import SpecError
from rules.lint import lint_texts
from rules.spec import parse_spec
from tests.rules.conftest import Run

AIRFLOW_RULE = """\
groups:
  - name: airflow
    rules:
{comment}      - alert: AirflowTaskFailures
        expr: >-
          label_replace(sum by (dag_id) (rate(airflow_ti_failures[5m])),
          "pipeline", "$1", "dag_id", "(.+)") > 0
        for: 5m
        labels:
          severity: warning
          sev: SEV4
          category: logic
          team: data-platform
        annotations:
          summary: "Airflow tasks of {{{{ $labels.pipeline }}}} fail"
          description: "{{{{ $value }}}} task failures a second."
          runbook_url: https://runbooks.example/airflow
"""

AIRFLOW_TEST = """\
rule_files:
  - airflow.rules.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'airflow_ti_failures{{dag_id="nightly_etl"}}'
        values: '0+{per_minute}x20'
      - series: 'airflow_ti_failures{{dag_id="calm_dag"}}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: AirflowTaskFailures
        exp_alerts:
          - exp_labels:
              pipeline: nightly_etl
              dag_id: nightly_etl
              severity: warning
              sev: SEV4
              category: logic
              team: data-platform
            exp_annotations:
              summary: "Airflow tasks of nightly_etl fail"
              description: "0.1 task failures a second."
              runbook_url: https://runbooks.example/airflow
"""


def custom_dir(tmp_path: Path, comment: str = "", per_minute: int = 6) -> Path:
    folder = tmp_path / "custom"
    folder.mkdir(exist_ok=True)
    (folder / "airflow.rules.yml").write_text(AIRFLOW_RULE.format(comment=comment))
    (folder / "airflow.test.yml").write_text(AIRFLOW_TEST.format(per_minute=per_minute))
    return folder


SPEC = "defaults:\n  team: data-platform\n{known}teams:\n  data-platform: {{}}\n"


def check(rules_cli: Callable[..., Run], spec: Path, custom: Path) -> Run:
    return rules_cli("check", "--spec", str(spec), "--custom", str(custom))


def test_an_orchestrator_metric_is_refused_until_the_spec_knows_it(
    rules_cli: Callable[..., Run], write_spec: Callable[[str], Path], tmp_path: Path
) -> None:
    custom = custom_dir(tmp_path)
    res = check(rules_cli, write_spec(SPEC.format(known="")), custom)
    assert res.code == 1
    rule = f"{custom}/airflow.rules.yml:5: groups[0].rules[0].expr: "
    assert rule + "selector 'airflow_ti_failures' never matches" in res.err
    assert "[unknown-metric]" in res.err
    assert rule + "rate() over 'airflow_ti_failures', which is not a counter" in res.err

    by_name = SPEC.format(known="known_metrics: [airflow_ti_failures]\n")
    res = check(rules_cli, write_spec(by_name), custom)
    assert res.code == 0, res.err

    by_regex = SPEC.format(known="known_metrics: ['airflow_.*']\n")
    res = check(rules_cli, write_spec(by_regex), custom)
    assert res.code == 0, res.err


def test_a_disable_comment_turns_off_one_check_for_one_rule(
    rules_cli: Callable[..., Run], write_spec: Callable[[str], Path], tmp_path: Path
) -> None:
    spec = write_spec(SPEC.format(known=""))
    only_one = custom_dir(tmp_path, "      # pipemedic: disable=unknown-metric\n")
    res = check(rules_cli, spec, only_one)
    assert res.code == 1
    assert "never matches" not in res.err
    assert "which is not a counter" in res.err  # the other check still runs

    both = custom_dir(tmp_path, "      # pipemedic: disable=unknown-metric, counter\n")
    res = check(rules_cli, spec, both)
    assert res.code == 0, res.err


def test_a_disable_comment_belongs_to_its_rule_only() -> None:
    other = (
        "      - alert: Other\n        expr: rate(other_metric[5m]) > 0\n        for: 1m\n"
        "        labels: {pipeline: p, severity: info, sev: SEV5, category: logic, team: t}\n"
        "        annotations: {summary: s, description: d, runbook_url: 'https://r'}\n"
    )
    text = AIRFLOW_RULE.format(comment="      # pipemedic: disable=unknown-metric,counter\n")
    problems = lint_texts({"c.rules.yml": text + other})
    assert {(p.path, p.check) for p in problems} == {
        ("groups[0].rules[1].expr", "unknown-metric"),
        ("groups[0].rules[1].expr", "counter"),
    }
    # inside the rule (on its own lines) works too
    inline = AIRFLOW_RULE.format(comment="").replace(
        "        for: 5m\n", "        for: 5m  # pipemedic: disable=unknown-metric,counter\n"
    )
    assert lint_texts({"c.rules.yml": inline}) == []


def test_an_unknown_check_in_a_disable_comment_is_named() -> None:
    text = AIRFLOW_RULE.format(comment="      # pipemedic: disable=unknown-metrics\n")
    problems = [str(p) for p in lint_texts({"c.rules.yml": text})]
    assert any(
        p.startswith("c.rules.yml:4: groups[0].rules[0]: unknown check 'unknown-metrics'")
        for p in problems
    ), problems


def test_a_bad_known_metrics_regex_names_its_line() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec("known_metrics:\n  - ok_metric\n  - 'airflow_(.*'\n", "s.yml")
    assert (
        "s.yml:3: known_metrics[1]: 'airflow_(.*' is neither a metric name nor a valid regex"
        in (str(info.value))
    )


def test_custom_rules_run_in_rules_test_with_their_own_tests(
    rules_cli: Callable[..., Run], write_spec: Callable[[str], Path], tmp_path: Path
) -> None:
    spec = write_spec(SPEC.format(known="known_metrics: [airflow_ti_failures]\n"))
    custom = custom_dir(tmp_path)
    res = rules_cli("test", "--spec", str(spec), "--custom", str(custom))
    assert res.code == 0, res.err
    assert "airflow.test.yml" in res.out
    # the test really runs: a wrong expectation fails `rules test`
    wrong = custom_dir(tmp_path, per_minute=12)
    res = rules_cli("test", "--spec", str(spec), "--custom", str(wrong))
    assert res.code == 1
    assert "AirflowTaskFailures" in res.err


def test_the_readme_examples_are_what_the_code_takes(repo_root: Path) -> None:
    """README's known_metrics block is a valid spec; its relabelling is prometheus.yml's."""
    import re

    import yaml

    from rules.generate import EXPORTER_LABEL, EXPORTER_TARGET

    readme = (repo_root / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    (known,) = [b for b in blocks if b.startswith("known_metrics:")]
    assert parse_spec(known, "README.md").known_metrics == (
        "airflow_ti_failures",
        "airflow_dag_processing_.*",
    )
    # the snippet for other jobs (the quick start's whole prometheus.yml runs in test_readme)
    (relabel,) = [b for b in blocks if b.lstrip().startswith("relabel_configs:")]
    assert EXPORTER_LABEL in relabel
    deployment = yaml.safe_load((repo_root / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in deployment["scrape_configs"]}
    expected = [{"target_label": EXPORTER_LABEL, "replacement": EXPORTER_TARGET}]
    assert yaml.safe_load(relabel)["relabel_configs"] == expected
    assert jobs["pipemedic-exporter"]["relabel_configs"] == expected
