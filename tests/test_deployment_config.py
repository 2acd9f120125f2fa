"""prometheus.yml and alertmanager.yml are the real, working default deployment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipemedic.stack import find_binary


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_promtool_checks_prometheus_yml(repo_root: Path) -> None:
    res = _run(find_binary("promtool"), "check", "config", "prometheus.yml", cwd=repo_root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr


def test_amtool_checks_alertmanager_yml(repo_root: Path) -> None:
    res = _run(find_binary("amtool"), "check-config", "alertmanager.yml", cwd=repo_root)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    "labels",
    [
        ["alertname=PipelineDown", "pipeline=etl_orders", "severity=critical"],
        ["alertname=PipelineHighErrorRate", "pipeline=etl_orders"],
        ["alertname=PipelineExporterDown", "job=pipemedic-exporter"],
    ],
)
def test_every_alert_routes_to_the_receiver(repo_root: Path, labels: list[str]) -> None:
    res = _run(
        find_binary("amtool"),
        "config",
        "routes",
        "test",
        "--config.file=alertmanager.yml",
        "--verify.receivers=pipemedic",
        *labels,
        cwd=repo_root,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_pipeline_incident_pages_and_never_reaches_the_receiver(repo_root: Path) -> None:
    labels = ["alertname=PipelineIncident", "pipeline=etl_orders", "sev=SEV1", "incident=7"]
    argv = [find_binary("amtool"), "config", "routes", "test", "--config.file=alertmanager.yml"]
    res = _run(*argv, "--verify.receivers=paging", *labels, cwd=repo_root)
    assert res.returncode == 0, res.stdout + res.stderr
    res = _run(*argv, *labels, cwd=repo_root)
    assert res.stdout.strip() == "paging", res.stdout + res.stderr


def test_pipeline_down_inhibits_lesser_alerts(repo_root: Path) -> None:
    import yaml

    config = yaml.safe_load((repo_root / "alertmanager.yml").read_text())
    (rule,) = config["inhibit_rules"]
    assert rule["source_matchers"] == ['alertname="PipelineDown"']
    assert rule["equal"] == ["pipeline"]
    target = rule["target_matchers"][0]
    for name in ("PipelineHighErrorRate", "PipelineSLAViolation", "PipelineDataStale"):
        assert name in target
    webhook = config["receivers"][0]["webhook_configs"][0]
    assert webhook["send_resolved"] is True
    assert webhook["url"].endswith("/alerts")
