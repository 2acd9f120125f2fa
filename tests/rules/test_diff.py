"""`pipemedic rules generate` and `diff`: the committed rules are never stale."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def test_committed_generated_rules_are_up_to_date(
    rules_cli: Callable[..., Any], monkeypatch: Any
) -> None:
    monkeypatch.chdir(REPO)
    res = rules_cli("diff")
    assert res.code == 0, res.out + res.err
    assert res.out == ""


def test_diff_exits_1_with_a_unified_diff_when_stale(
    rules_cli: Callable[..., Any], write_spec: Callable[[str], Path], tmp_path: Path
) -> None:
    out = tmp_path / "generated"
    spec = write_spec("pipelines:\n  etl:\n    sla: 30m\n")
    res = rules_cli("diff", "--spec", str(spec), "--out", str(out))
    assert res.code == 1
    assert "+++ " in res.out and "/dev/null" in res.out

    assert rules_cli("generate", "--spec", str(spec), "--out", str(out)).code == 0
    assert rules_cli("diff", "--spec", str(spec), "--out", str(out)).code == 0

    spec.write_text("pipelines:\n  etl:\n    sla: 45m\n")
    res = rules_cli("diff", "--spec", str(spec), "--out", str(out))
    assert res.code == 1
    assert "-    expr: '1800'" in res.out
    assert "+    expr: '2700'" in res.out
    assert "stale" in res.err


def test_generate_removes_files_the_spec_no_longer_makes(
    rules_cli: Callable[..., Any], write_spec: Callable[[str], Path], tmp_path: Path
) -> None:
    out = tmp_path / "generated"
    spec = write_spec("pipelines:\n  etl:\n    slo:\n      objective: 0.99\n")
    rules_cli("generate", "--spec", str(spec), "--out", str(out))
    assert (out / "pipemedic-slo.rules.yml").exists()
    (out / "mine.rules.yml").write_text("groups: []\n")  # not ours: left alone

    spec.write_text("pipelines:\n  etl:\n    sla: 1h\n")
    res = rules_cli("diff", "--spec", str(spec), "--out", str(out))
    assert res.code == 1 and "pipemedic-slo.rules.yml" in res.out
    rules_cli("generate", "--spec", str(spec), "--out", str(out))
    assert not (out / "pipemedic-slo.rules.yml").exists()
    assert (out / "mine.rules.yml").exists()
    assert rules_cli("diff", "--spec", str(spec), "--out", str(out)).code == 0


def test_prometheusrule_format(
    rules_cli: Callable[..., Any], write_spec: Callable[[str], Path], tmp_path: Path
) -> None:
    out = tmp_path / "k8s"
    spec = write_spec("pipelines:\n  etl:\n    sla: 30m\n")
    res = rules_cli(
        "generate", "--spec", str(spec), "--out", str(out), "--format", "prometheusrule"
    )
    assert res.code == 0
    text = (out / "pipemedic-pipelines.prometheusrule.yml").read_text()
    assert "kind: PrometheusRule" in text
    assert (
        rules_cli("diff", "--spec", str(spec), "--out", str(out), "--format", "prometheusrule").code
        == 0
    )
