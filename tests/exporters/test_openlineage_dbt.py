"""A real dbt project (dbt-core + dbt-duckdb) run through `dbt-ol` against a real exporter.

dbt-ol (openlineage-dbt, not written here) posts its events to
``POST /api/v1/lineage`` with its api_key; a real Prometheus scrapes the
exporter with the rules generated from the same spec, and the generated
``PipelineHighErrorRate`` fires for the dbt pipeline after a run with a
failing model and a test run with a failing test. dbt and dbt-ol live in
``.venv-dbt`` (``make dbt-venv``, part of ``make test``).
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from exporter_helpers import StartExporter, wait_until

from exporters.testing import sample_value
from pipemedic.stack import PrometheusServer, free_port
from rules.generate import generate
from rules.output import render_all, write_files
from rules.spec import parse_spec

REPO = Path(__file__).resolve().parents[2]
DBT_BIN = Path(os.environ.get("PIPEMEDIC_DBT_BIN", REPO / ".venv-dbt" / "bin"))
TOKEN = "dbt-ol-key"

SPEC = """\
defaults:
  for: {error_rate: 0s}
openlineage:
  pipelines:
    - {namespace: dbt, job: "dbt-run-shop*", pipeline: shop_dbt}
pipelines:
  shop_dbt:
    team: analytics
    description: the shop's dbt project, run by dbt-ol
teams:
  analytics: {}
  data-platform: {}
"""

PROJECT = {
    "dbt_project.yml": """\
name: shop
version: "1.0"
profile: shop
model-paths: [models]
flags:
  send_anonymous_usage_stats: false
  use_colors: false
""",
    "models/stg_orders.sql": (
        "select * from (values (1, 10.0), (2, 20.5), (2, 7.25)) as t(id, amount)\n"
    ),
    "models/orders.sql": (
        "select id, sum(amount) as amount from {{ ref('stg_orders') }} group by id\n"
    ),
    # the failing model: a column that does not exist
    "models/broken.sql": "select missing_column from {{ ref('orders') }}\n",
    # the failing test: stg_orders.id is not unique (id 2 twice)
    "models/schema.yml": """\
version: 2
models:
  - name: stg_orders
    columns:
      - name: id
        data_tests: [unique, not_null]
  - name: orders
    columns:
      - name: id
        data_tests: [unique]
""",
}


def dbt_ol(project: Path, exporter_url: str, *args: str) -> int:
    """Run `dbt-ol ARGS` in the project, as a user would, with loopback-only settings."""
    if not (DBT_BIN / "dbt-ol").exists():
        pytest.fail(f"{DBT_BIN}/dbt-ol is missing: run `make dbt-venv` (make test does)")
    env = {
        **os.environ,
        "PATH": f"{DBT_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DBT_PROFILES_DIR": str(project),
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_VERSION_CHECK": "false",
        "OPENLINEAGE_URL": exporter_url,
        "OPENLINEAGE_API_KEY": TOKEN,
        "OPENLINEAGE_NAMESPACE": "dbt",
    }
    env.pop("OPENLINEAGE_CONFIG", None)
    done = subprocess.run(
        [str(DBT_BIN / "dbt-ol"), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = done.stdout + done.stderr
    assert "Emitted" in log and "failed to emit" not in log, log
    return done.returncode


def query(prom: PrometheusServer, promql: str) -> list[dict[str, Any]]:
    url = f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:
        result: list[dict[str, Any]] = json.loads(resp.read())["data"]["result"]
    return result


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


@pytest.mark.slow
def test_dbt_ol_failures_fire_the_generated_alert(
    exporter: StartExporter,
    prometheus_server: Callable[..., PrometheusServer],
    tmp_path: Path,
) -> None:
    project = tmp_path / "shop"
    for name, text in PROJECT.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    (project / "profiles.yml").write_text(
        "shop:\n  target: dev\n  outputs:\n    dev:\n"
        f"      type: duckdb\n      path: {tmp_path / 'shop.duckdb'}\n      threads: 1\n"
    )
    spec = parse_spec(SPEC, "dbt.yml")
    rules_dir = tmp_path / "rules"
    write_files(rules_dir, render_all(generate(spec), spec.source))
    port = free_port()
    prom = prometheus_server(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{rules_dir}/*.rules.yml']\n"
        "scrape_configs:\n"
        "  - job_name: pipemedic-exporter\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    url = exporter(SPEC, port, "--no-probes", env={"PIPEMEDIC_EXPORTER_TOKEN": TOKEN})

    # a good run first, so Prometheus has seen the pipeline with no failed run
    assert dbt_ol(project, url, "run", "--select", "stg_orders", "orders") == 0
    wait_until(
        lambda: query(prom, 'pipeline_runs_total{pipeline="shop_dbt",status="failure"} == 0'),
        timeout=60,
        what="Prometheus scraped the first dbt run",
    )
    assert dbt_ol(project, url, "run") == 1  # broken.sql fails
    assert dbt_ol(project, url, "test") == 1  # stg_orders.id is not unique

    text = get(url + "/metrics")
    assert sample_value(text, "pipeline_runs_total", pipeline="shop_dbt", status="success") == 1
    assert sample_value(text, "pipeline_runs_total", pipeline="shop_dbt", status="failure") == 2
    # dbt-ol sends FAIL without an errorMessage: the model's and both runs' are logic/bug
    assert (
        sample_value(
            text, "pipeline_errors_total", pipeline="shop_dbt", category="logic", reason="bug"
        )
        == 3
    )
    assert (
        sample_value(
            text,
            "pipeline_errors_total",
            pipeline="shop_dbt",
            category="data",
            reason="failed_assertion",
        )
        == 1
    )
    assert sample_value(text, "pipeline_records_failed_total", pipeline="shop_dbt") == 1
    orders = f"duckdb://{tmp_path / 'shop.duckdb'}/shop.main.orders"
    assert (
        sample_value(
            text,
            "pipeline_dataset_last_update_timestamp_seconds",
            pipeline="shop_dbt",
            dataset=orders,
        )
        is not None
    )
    graph = json.loads(get(url + "/lineage"))
    names = {d["name"] for d in graph["datasets"]}
    assert {orders, orders.replace(".orders", ".stg_orders")} <= names
    assert "shop_dbt" in graph["pipelines"]

    def firing() -> list[dict[str, Any]]:
        return query(
            prom,
            'ALERTS{alertname="PipelineHighErrorRate",pipeline="shop_dbt",alertstate="firing"}',
        )

    alerts = wait_until(firing, timeout=90, what="PipelineHighErrorRate firing for shop_dbt")
    assert isinstance(alerts, list)
    labels = alerts[0]["metric"]
    assert (labels["team"], labels["category"]) == ("analytics", "data")
