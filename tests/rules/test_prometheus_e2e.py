"""The generated rules, loaded into a real Prometheus scraping the real exporter, fire."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from exporters.app import create_app
from rules.generate import generate
from rules.output import render_all, write_files
from rules.spec import parse_spec

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
    rules_dir = tmp_path / "rules"
    write_files(rules_dir, render_all(generate(spec), spec.source))
    config = (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{rules_dir}/*.rules.yml']\n"
        "scrape_configs:\n"
        "  - job_name: pipemedic-exporter\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter.port}']}}]\n"
    )
    # start Prometheus off the loop: the exporter shares this loop and must keep serving
    prom = await asyncio.to_thread(prometheus_server, config)

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
