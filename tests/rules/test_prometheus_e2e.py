"""The generated rules, loaded into a real Prometheus scraping the real exporter, fire."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from exporters.app import create_app
from exporters.config import ExporterConfig
from rules.generate import EXPORTER_LABEL, EXPORTER_TARGET, generate
from rules.output import render_all, write_files
from rules.spec import Spec, parse_spec

SPEC = """\
defaults:
  for: {down: 0s, exporter_down: 1m, error_rate: 0s}
pipelines:
  etl_orders:
    team: commerce
    impact: most
    runbook_url: https://runbooks.example/etl_orders
teams:
  commerce: {}
  data-platform: {}
"""


def scraping(spec: Spec, port: int, folder: Path) -> str:
    """Write the spec's rules into ``folder``; return a Prometheus config scraping the exporter."""
    rules_dir = folder / "rules"
    write_files(rules_dir, render_all(generate(spec), spec.source))
    return (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{rules_dir}/*.rules.yml']\n"
        "scrape_configs:\n"
        "  - job_name: pipemedic-exporter\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        f"    relabel_configs: [{{target_label: {EXPORTER_LABEL}, "
        f"replacement: {EXPORTER_TARGET}}}]\n"
    )


async def firing(session: aiohttp.ClientSession, url: str, name: str) -> dict[str, dict[str, str]]:
    async with session.get(f"{url}/api/v1/alerts") as resp:
        body = await resp.json()
    return {
        a["labels"]["pipeline"]: a["labels"]
        for a in body["data"]["alerts"]
        if a["labels"]["alertname"] == name and a["state"] == "firing"
    }


async def test_pipeline_down_fires_with_labels_from_the_spec(
    aiohttp_server: Any, prometheus_server: Callable[..., Any], tmp_path: Path
) -> None:
    spec = parse_spec(SPEC, "e2e.yml")
    exporter = await aiohttp_server(create_app(spec=spec), host="127.0.0.1")
    # start Prometheus off the loop: the exporter shares this loop and must keep serving
    prom = await asyncio.to_thread(prometheus_server, scraping(spec, exporter.port, tmp_path))

    async with aiohttp.ClientSession() as session:
        events = [
            {"pipeline": "etl_orders", "event": "heartbeat"},
            {"pipeline": "adhoc_job", "event": "heartbeat"},
            {"pipeline": "healthy_job", "event": "heartbeat"},
            {"pipeline": "etl_orders", "event": "down"},
            {"pipeline": "adhoc_job", "event": "down"},
        ]
        async with session.post(f"{exporter.make_url('/events')}", json=events) as resp:
            assert resp.status < 300, await resp.text()

        deadline = time.monotonic() + 60
        alerts: dict[str, dict[str, str]] = {}
        while time.monotonic() < deadline:
            alerts = await firing(session, prom.url, "PipelineDown")
            if {"etl_orders", "adhoc_job"} <= set(alerts):
                break
            await asyncio.sleep(0.5)
        assert {"etl_orders", "adhoc_job"} <= set(alerts), alerts
        assert "healthy_job" not in alerts

    listed = alerts["etl_orders"]
    assert (listed["team"], listed["sev"], listed["severity"]) == ("commerce", "SEV1", "critical")
    assert listed["category"] == "connectivity"
    assert listed["runbook_url"] == "https://runbooks.example/etl_orders"
    # not in the spec: covered by the defaults
    unlisted = alerts["adhoc_job"]
    assert (unlisted["team"], unlisted["sev"], unlisted["severity"]) == (
        "data-platform",
        "SEV3",
        "warning",
    )


async def test_exporter_down_watches_targets_by_the_label_prometheus_yml_sets(
    aiohttp_server: Any, prometheus_server: Callable[..., Any], tmp_path: Path, repo_root: Path
) -> None:
    """prometheus.yml's exporter jobs and the generated rule agree on one label, not a job name.

    A job of any name that copies the exporter job's relabelling is watched:
    its target down fires PipelineExporterDown; the live exporter does not.
    """
    import socket

    import yaml

    deployment = yaml.safe_load((repo_root / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in deployment["scrape_configs"]}
    relabel = jobs["pipemedic-exporter"]["relabel_configs"]
    assert jobs["pipemedic-pushgateway"]["relabel_configs"] == relabel

    spec = parse_spec(SPEC.replace("exporter_down: 1m", "exporter_down: 0s"), "e2e.yml")
    exporter = await aiohttp_server(create_app(spec=spec), host="127.0.0.1")
    with socket.socket() as s:  # a port nobody listens on: a target that is down
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    rules_dir = tmp_path / "rules"
    write_files(rules_dir, render_all(generate(spec), spec.source))
    scrape = [
        {
            **jobs["pipemedic-exporter"],
            "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
        },
        {
            "job_name": "team-airflow-metrics",
            "static_configs": [{"targets": [f"127.0.0.1:{dead}"]}],
            "relabel_configs": relabel,
        },
        {"job_name": "unwatched", "static_configs": [{"targets": [f"127.0.0.1:{dead}"]}]},
    ]
    config = yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [f"{rules_dir}/*.rules.yml"],
            "scrape_configs": scrape,
        }
    )
    prom = await asyncio.to_thread(prometheus_server, config)
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 60
        alerts: dict[str, dict[str, str]] = {}
        while time.monotonic() < deadline and "team-airflow-metrics" not in alerts:
            alerts = await firing(session, prom.url, "PipelineExporterDown")
            await asyncio.sleep(0.5)
        assert "team-airflow-metrics" in alerts, alerts
    assert alerts["team-airflow-metrics"][EXPORTER_LABEL] == EXPORTER_TARGET
    assert "unwatched" not in alerts  # a down target without the label is not an exporter
    # the live exporter is up: at most the absent() of the first cycle, before any scrape,
    # still kept firing (keep_firing_for), never its target down
    assert alerts.get("pipemedic-exporter", {}).get("instance") is None, alerts


NEVER_SPEC = """\
defaults:
  heartbeat_timeout: 2s
  for: {never_reported: 0s}
pipelines:
  nightly_export:
    team: commerce
    impact: many
  orders_sync:
    team: commerce
teams:
  commerce: {}
  data-platform: {}
"""


async def _wait_for(
    session: aiohttp.ClientSession, url: str, name: str, done: Callable[[set[str]], bool]
) -> dict[str, dict[str, str]]:
    """Poll Prometheus' firing alerts of ``name`` until ``done(pipelines)`` (at most a minute)."""
    deadline = time.monotonic() + 60
    alerts: dict[str, dict[str, str]] = {}
    while time.monotonic() < deadline:
        alerts = await firing(session, url, name)
        if done(set(alerts)):
            break
        await asyncio.sleep(0.5)
    return alerts


async def test_a_listed_pipeline_that_never_reports_fires_until_it_does(
    aiohttp_server: Any, prometheus_server: Callable[..., Any], tmp_path: Path
) -> None:
    """The exporter started with the spec exports its pipelines as awaiting a first report."""
    spec = parse_spec(NEVER_SPEC, "never.yml")
    config = ExporterConfig(probe_dependencies=False, expect_listed=True)
    exporter = await aiohttp_server(create_app(spec=spec, config=config), host="127.0.0.1")
    prom = await asyncio.to_thread(prometheus_server, scraping(spec, exporter.port, tmp_path))
    events = exporter.make_url("/events")

    async with aiohttp.ClientSession() as session:
        async with session.post(events, json=[{"pipeline": "orders_sync", "event": "heartbeat"}]):
            pass
        name = "PipelineNeverReported"
        alerts = await _wait_for(session, prom.url, name, lambda p: "nightly_export" in p)
        assert set(alerts) == {"nightly_export"}, alerts  # orders_sync reported
        labels = alerts["nightly_export"]
        assert (labels["team"], labels["category"], labels["sev"]) == (
            "commerce",
            "connectivity",
            "SEV2",
        )

        # its first report ends the wait: the series goes, the alert resolves
        body = [{"pipeline": "nightly_export", "event": "heartbeat"}]
        async with session.post(events, json=body) as resp:
            assert resp.status < 300, await resp.text()
        alerts = await _wait_for(session, prom.url, name, lambda p: not p)
        assert alerts == {}
