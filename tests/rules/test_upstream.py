"""Declared upstreams: `rules check` refuses a cycle, naming it and the file:line of each edge."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rules.errors import SpecError
from rules.spec import parse_spec
from rules.upstream import find_cycles

CYCLIC = """\
pipelines:
  raw_orders:
    upstream:
      - shop_api_sync
      - clean_orders
  clean_orders:
    upstream: [raw_orders]
  shop_api_sync: {}
  report:
    upstream: [clean_orders, report]
"""


def test_check_names_each_cycle_and_the_line_of_every_edge(
    rules_cli: Callable[..., Any], write_spec: Callable[[str], Path]
) -> None:
    path = write_spec(CYCLIC)
    res = rules_cli("check", "--spec", str(path))
    assert res.code == 1
    lines = [line for line in res.err.splitlines() if "form a cycle" in line]
    assert lines == [
        f"{path}:5: pipelines.raw_orders.upstream[1]: declared upstreams form a cycle "
        f"clean_orders -> raw_orders -> clean_orders: clean_orders -> raw_orders at {path}:5 "
        f"(pipelines.raw_orders.upstream[1]); raw_orders -> clean_orders at {path}:7 "
        f"(pipelines.clean_orders.upstream[0])",
        f"{path}:10: pipelines.report.upstream[1]: declared upstreams form a cycle "
        f"report -> report: report -> report at {path}:10 (pipelines.report.upstream[1])",
    ]


def test_upstream_is_per_pipeline_and_kept_in_the_spec() -> None:
    with pytest.raises(SpecError, match=r"t.yml:2: defaults.upstream: upstream is declared per"):
        parse_spec("defaults:\n  upstream: [a]\n", "t.yml")
    with pytest.raises(SpecError, match=r"pipelines.b.upstream\[0\]: 'bad name' does not match"):
        parse_spec("pipelines:\n  b:\n    upstream: ['bad name']\n", "t.yml")
    spec = parse_spec("pipelines:\n  b:\n    upstream: [a, c]\n", "t.yml")
    assert spec.pipeline("b").upstream == ("a", "c")
    assert spec.pipeline("a").upstream == ()


def test_openlineage_section() -> None:
    spec = parse_spec(
        """
openlineage:
  run_ttl: 6h
  lineage_ttl: 3d
  pipelines:
    - {namespace: "airflow://prod*", job: "orders_*", pipeline: etl_orders}
    - {job: "dbt-run-*", pipeline: dbt_nightly}
""",
        "t.yml",
    )
    ol = spec.openlineage
    assert (ol.run_ttl_seconds, ol.lineage_ttl_seconds) == (6 * 3600, 3 * 86400)
    assert ol.pipeline_for("airflow://prod-eu", "orders_dag") == "etl_orders"
    assert ol.pipeline_for("airflow://staging", "orders_dag") is None
    assert ol.pipeline_for("dbt", "dbt-run-shop") == "dbt_nightly"
    with pytest.raises(SpecError, match=r"openlineage\.pipelines"):
        parse_spec("openlineage:\n  pipelines:\n    - {pipeline: x}\n", "t.yml")
    with pytest.raises(SpecError, match=r"openlineage.pipelines\[0\].pipeline"):
        parse_spec("openlineage:\n  pipelines:\n    - {job: x, pipeline: 'a b'}\n", "t.yml")


def test_find_cycles_handles_large_graphs_without_recursion() -> None:
    chain = {f"p{i}": [f"p{i + 1}"] for i in range(50_000)}
    assert find_cycles(chain) == []
    chain["p50000"] = ["p0"]
    (cycle,) = find_cycles(chain)
    assert cycle[0] == cycle[-1] == "p0" and len(cycle) == 50_002
    assert find_cycles({"a": ["b", "c"], "b": ["a"], "c": ["d"], "d": ["c"]}) == [
        ["a", "b", "a"],
        ["c", "d", "c"],
    ]
