"""Batch jobs push to a real Pushgateway, grouped by job and pipeline, without instance."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import pytest

from exporters.pushgateway import PushError, push_pipeline, pushed_run
from exporters.registry import PipelineRegistry
from exporters.testing import samples
from pipemedic.stack import PushgatewayServer, free_port


def gateway_metrics(gw: PushgatewayServer) -> str:
    with urllib.request.urlopen(gw.url + "/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_pushed_run_lands_in_its_group(
    pushgateway_server: Callable[[], PushgatewayServer],
) -> None:
    gw = pushgateway_server()
    with pushed_run(gw.url, "nightly_export", job="batch") as run:
        run.processed(42)
    with pytest.raises(TimeoutError), pushed_run(gw.url, "nightly_import", job="batch"):
        raise TimeoutError("upstream took too long")

    found = samples(gateway_metrics(gw))
    export = frozenset({"job": "batch", "pipeline": "nightly_export", "instance": ""}.items())
    imp = frozenset({"job": "batch", "pipeline": "nightly_import", "instance": ""}.items())
    assert found[("pipeline_records_processed_total", export)] == 42
    assert found[("pipeline_runs_total", export | {("status", "success")})] == 1
    assert found[("pipeline_runs_total", imp | {("status", "failure")})] == 1
    errors = imp | {("category", "connectivity"), ("reason", "timeout")}
    assert found[("pipeline_errors_total", errors)] == 1
    assert ("pipeline_last_success_timestamp_seconds", export) in found
    assert not any(name == "pipeline_up" for name, _labels in found)

    with urllib.request.urlopen(gw.url + "/api/v1/metrics", timeout=5) as resp:
        groups = [g["labels"] for g in json.loads(resp.read())["data"]]
    assert {"job": "batch", "pipeline": "nightly_export"} in groups
    assert all("instance" not in g for g in groups)


def test_push_to_nowhere_says_where(registry: PipelineRegistry) -> None:
    registry.pipeline("etl_orders").heartbeat()
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PushError, match=url):
        push_pipeline(url, registry, "etl_orders", timeout=2)
