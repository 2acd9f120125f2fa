"""The demo's run folder: spec copy, generated rules and server configurations are all valid."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from pipemedic.demo.configs import Ports, alertmanager_config, prometheus_config, receiver_config
from pipemedic.demo.runspec import DEMO_FOR, demo_spec_text, repoint, write_rules
from pipemedic.demo.scenario import SCENARIO
from pipemedic.stack import find_binary
from receiver.config import parse_config
from rules.generate import PRODUCTION, Timing, generate
from rules.output import render_all
from rules.promtool import check_rules
from rules.spec import load_spec, parse_spec

PORTS = Ports(exporter=41001, receiver=41002, prometheus=41003, alertmanager=41004)


def test_repoint_moves_only_the_default_control_address() -> None:
    url = "http://127.0.0.1:9108/demo/pipelines/x/retry"
    assert repoint(url, "127.0.0.1:41001") == "http://127.0.0.1:41001/demo/pipelines/x/retry"
    other = "http://127.0.0.1:9300/pipelines/etl_orders/retry"
    assert repoint(other, "127.0.0.1:41001") == other
    assert repoint("https://airflow.example/api/retry", "127.0.0.1:41001").startswith("https://")


def test_spec_copy_has_demo_timing_and_this_runs_port(repo_root: Path) -> None:
    source = repo_root / "rules" / "pipelines.yml"
    spec = parse_spec(demo_spec_text(source.read_text(), PORTS.address("exporter")), "copy")
    original = load_spec(source)
    assert set(spec.pipelines) == set(original.pipelines)
    for name, p in spec.pipelines.items():
        assert dict(p.for_) == DEMO_FOR, name
        assert p.heartbeat_timeout_seconds == 10
        # thresholds, teams and severities are the spec's own
        assert p.max_error_rate == original.pipelines[name].max_error_rate
        assert p.team == original.pipelines[name].team
    for fault in SCENARIO:
        actions = spec.pipeline(fault.pipeline).actions
        if fault.fix is None:
            assert fault.strategy is None and not actions
            continue
        assert fault.strategy is not None
        url = actions[fault.strategy]["http"]["url"]
        assert url == f"http://127.0.0.1:41001/demo/pipelines/{fault.pipeline}/{fault.fix}"
    etl = spec.pipeline("etl_orders").actions["retry_with_backoff"]["http"]["url"]
    assert etl == original.pipeline("etl_orders").actions["retry_with_backoff"]["http"]["url"]


def test_every_fault_maps_to_its_strategy_in_the_spec(repo_root: Path) -> None:
    spec = load_spec(repo_root / "rules" / "pipelines.yml")
    for fault in SCENARIO:
        assert spec.pipeline(fault.pipeline).strategy_for(fault.cause) == fault.strategy


def test_demo_rules_pass_promtool_and_are_seconds_long(repo_root: Path, tmp_path: Path) -> None:
    text = demo_spec_text((repo_root / "rules" / "pipelines.yml").read_text(), "127.0.0.1:41001")
    spec = parse_spec(text, str(tmp_path / "pipelines.yml"))
    files = write_rules(spec, tmp_path / "rules")
    result = check_rules(files)
    assert result.ok, result.output
    doc = yaml.safe_load((tmp_path / "rules" / "pipemedic-pipelines.rules.yml").read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    alerts = [r for r in rules if "alert" in r]
    assert all("keep_firing_for" not in a for a in alerts)
    high = [a for a in alerts if a["alert"] == "PipelineHighErrorRate"]
    assert [a["for"] for a in high] == ["5s"]  # one rule: no pipeline overrides its for
    rates = [r["expr"] for r in rules if r.get("record", "").endswith(":rate5m")]
    assert rates and all("[5m]" not in e for e in rates)
    assert any("[15s]" in e for e in rates)


def test_production_timing_is_the_default(repo_root: Path) -> None:
    spec = load_spec(repo_root / "rules" / "pipelines.yml")
    assert render_all(generate(spec), "x") == render_all(generate(spec, PRODUCTION), "x")
    committed = (repo_root / "rules" / "generated" / "pipemedic-pipelines.rules.yml").read_text()
    assert "[5m]" in committed and "keep_firing_for: 5m" in committed


@pytest.mark.parametrize("bad", ["0s", "soon"])
def test_timing_refuses_a_bad_window(bad: str) -> None:
    with pytest.raises(ValueError, match=r"rate_window|duration"):
        Timing(rate_window=bad)


def test_server_configs_from_the_deployment_files_are_accepted(
    repo_root: Path, tmp_path: Path
) -> None:
    (tmp_path / "rules").mkdir()
    prom = tmp_path / "prometheus.yml"
    prom.write_text(
        prometheus_config(repo_root / "prometheus.yml", PORTS, [tmp_path / "rules" / "*.yml"])
    )
    am = tmp_path / "alertmanager.yml"
    am.write_text(alertmanager_config(repo_root / "alertmanager.yml", PORTS))
    for argv in (
        [find_binary("promtool"), "check", "config", str(prom)],
        [find_binary("amtool"), "check-config", str(am)],
    ):
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
    prom_doc = yaml.safe_load(prom.read_text())
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in prom_doc["scrape_configs"]}
    assert jobs["pipemedic-exporter"] == ["127.0.0.1:41001"]
    assert "pipemedic-pushgateway" not in jobs
    assert prom_doc["global"]["evaluation_interval"] == "1s"
    am_doc = yaml.safe_load(am.read_text())
    assert am_doc["route"]["group_wait"] == "1s"
    hook = am_doc["receivers"][0]["webhook_configs"][0]
    assert hook["url"] == "http://127.0.0.1:41002/alerts" and hook["send_resolved"] is True
    # what the shipped file says about routing stays
    shipped = yaml.safe_load((repo_root / "alertmanager.yml").read_text())
    assert am_doc["inhibit_rules"] == shipped["inhibit_rules"]
    assert am_doc["route"]["group_by"] == shipped["route"]["group_by"]


def test_receiver_config_is_valid(tmp_path: Path) -> None:
    text = receiver_config(PORTS, tmp_path, tmp_path / "pipelines.yml")
    config = parse_config(yaml.safe_load(text), "demo receiver.yml")
    assert config.listen == "127.0.0.1:41002"
    assert config.prometheus_url == "http://127.0.0.1:41003"
    assert config.recovery.verify_window_seconds == 10
