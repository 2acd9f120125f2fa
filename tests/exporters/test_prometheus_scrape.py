"""A real Prometheus scrapes the standalone exporter (`pipemedic exporter`); values come back
through Prometheus' HTTP API, dependency probes included."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from exporter_helpers import StartExporter, wait_until

from pipemedic.stack import PrometheusServer, free_port


def http_json(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def query(prom: PrometheusServer, promql: str) -> dict[str, float]:
    url = f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    result = http_json(url)["data"]["result"]
    return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in result}


def test_prometheus_reads_back_events_and_probes(
    prometheus_server: Callable[..., PrometheusServer], exporter: StartExporter
) -> None:
    exporter_port = free_port()
    closed_port = free_port()
    prom = prometheus_server(f"""
global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
  - job_name: pipemedic-exporter
    static_configs: [{{targets: ["127.0.0.1:{exporter_port}"]}}]
""")
    spec = f"""
pipelines:
  etl_orders:
    heartbeat_timeout: 10m
    dependencies:
      - {{name: prometheus_api, http: "{prom.url}/-/ready", interval: 1s, timeout: 2s}}
      - {{name: warehouse, tcp: "127.0.0.1:{closed_port}", interval: 1s, timeout: 1s}}
"""
    url = exporter(spec, exporter_port)
    accepted = http_json(
        url + "/events",
        [
            {
                "pipeline": "etl_orders",
                "event": "run_finished",
                "status": "failure",
                "duration_seconds": 812.5,
                "records_processed": 10000,
                "records_failed": 730,
                "category": "connectivity",
                "reason": "timeout",
            },
            {"pipeline": "etl_orders", "event": "heartbeat", "memory_bytes": 123456789},
        ],
    )
    assert accepted == {"accepted": 2}

    def value(promql: str) -> float | None:
        found = query(prom, promql)
        return next(iter(found.values())) if found else None

    wait_until(
        lambda: value('pipeline_records_failed_total{pipeline="etl_orders"}') == 730,
        what="records_failed in Prometheus",
    )
    assert value('pipeline_records_processed_total{pipeline="etl_orders"}') == 10000
    assert (
        value(
            'pipeline_errors_total{pipeline="etl_orders",category="connectivity",reason="timeout"}'
        )
        == 1
    )
    assert value('pipeline_memory_usage_bytes{pipeline="etl_orders"}') == 123456789
    assert value('pipeline_up{pipeline="etl_orders",job="pipemedic-exporter"}') == 1
    wait_until(
        lambda: value('pipeline_dependency_up{dependency="prometheus_api"}') == 1,
        what="http probe up",
    )
    wait_until(
        lambda: value('pipeline_dependency_up{dependency="warehouse"}') == 0, what="tcp probe down"
    )
    assert value('pipeline_dependency_probe_duration_seconds{dependency="prometheus_api"}') >= 0
    assert value('up{job="pipemedic-exporter"}') == 1

    http_json(url + "/events", {"pipeline": "etl_orders", "event": "down"})
    wait_until(lambda: value('pipeline_up{pipeline="etl_orders"}') == 0, what="pipeline_up 0")
