"""The Prometheus client and the escaping selector builder, against a real Prometheus."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import promql_parser
import pytest

from pipemedic.stack import PrometheusServer, free_port
from receiver.diagnosis.prometheus import PrometheusAPI, PrometheusError, sample_value
from receiver.testing import row
from rules.promql import quote, selector

HOSTILE = [
    "; rm -rf /",
    "$(id)",
    "../../etc/passwd",
    "http://evil.example",
    'x"} or vector(1) #',
    'a\\"}) or up{job=~".+',
    "line\nbreak\r\ttab",
    "back\\slash\\",
    "nul\x00byte",
    "bell\x07 and zero-width\u200b joiner",
    "emoji 🚀 and é",
    "\\u0022",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_selector_values_parse_back_to_exactly_the_value(value: str) -> None:
    expr: Any = promql_parser.parse(selector("pipeline_up", pipeline=value, job="pipelines").text)
    matchers = {m.name: m.value for m in expr.matchers.matchers}
    assert expr.name == "pipeline_up"
    assert matchers == {"pipeline": value, "job": "pipelines"}


def test_lone_surrogates_become_the_replacement_character() -> None:
    assert quote("a\ud800b") == '"a\ufffdb"'


@pytest.mark.parametrize("name", ["pipe-line", "1abc", 'x="y"', "a b", ""])
def test_selector_refuses_label_and_metric_names_that_are_not_identifiers(name: str) -> None:
    with pytest.raises(ValueError, match="invalid label name"):
        selector("pipeline_up", {name: "x"})
    with pytest.raises(ValueError, match="invalid metric name"):
        selector(name or "-", pipeline="x")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    config = (
        "global: {scrape_interval: 500ms, scrape_timeout: 400ms}\n"
        "scrape_configs:\n  - job_name: self\n"
    )
    server = PrometheusServer(config, workdir=tmp_path_factory.mktemp("prom-client"))
    server.config_path.write_text(
        config + f'    static_configs: [{{targets: ["{server.address}"]}}]\n'
    )
    with server:
        yield server


@pytest.fixture
async def prom(prometheus: PrometheusServer) -> AsyncIterator[PrometheusAPI]:
    async with aiohttp.ClientSession() as session:
        yield PrometheusAPI(prometheus.url + "/", session)


async def test_query_returns_an_instant_vector_and_scalars_as_one_row(prom: PrometheusAPI) -> None:
    rows = await prom.query('label_replace(vector(1.5), "pipeline", "p", "", "")')
    assert [(r["metric"], sample_value(r)) for r in rows] == [({"pipeline": "p"}, 1.5)]
    (row,) = await prom.query("scalar(vector(2))")
    assert sample_value(row) == 2.0
    assert await prom.query("vector(1) > 2") == []


@pytest.mark.parametrize("value", [1.5, 1e9, 0.0000001, -3.0, float("nan"), float("inf")])
async def test_static_rows_are_shaped_and_formatted_as_prometheus_answers(
    prom: PrometheusAPI, value: float
) -> None:
    literal = {"nan": "NaN", "inf": "+Inf"}.get(str(value), repr(value))
    (real,) = await prom.query(f'label_replace(vector({literal}), "pipeline", "p", "", "")')
    static = row(value, pipeline="p")
    assert static.keys() == real.keys() and static["metric"] == real["metric"]
    # the time is a JSON number: Prometheus writes a whole second without a fraction (an int)
    assert all(isinstance(r["value"][0], int | float) for r in (static, real))
    assert type(static["value"][1]) is type(real["value"][1]) is str
    assert static["value"][1] == real["value"][1]


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_values_select_nothing_on_a_real_prometheus(
    prom: PrometheusAPI, value: str
) -> None:
    from recovery_evidence import wait_for

    await wait_for(prom, 'up{job="self"}')  # there is data a broken escape would match
    assert await prom.query(selector("up", job=value)) == []
    rows = await prom.query(f"count({selector('up', job=value)}) or vector(0)")
    assert [sample_value(r) for r in rows] == [0.0]


async def test_a_refused_query_says_which_url_and_why(prom: PrometheusAPI) -> None:
    with pytest.raises(
        PrometheusError, match=r"/api/v1/query refused query 'sum\(': HTTP 400: .*parse error"
    ):
        await prom.query("sum(")


async def test_an_unreachable_prometheus_is_an_error_naming_the_url() -> None:
    port = free_port()
    async with aiohttp.ClientSession() as session:
        prom = PrometheusAPI(f"http://127.0.0.1:{port}", session, timeout=2)
        with pytest.raises(PrometheusError, match=f"127.0.0.1:{port}/api/v1/query unreachable"):
            await prom.query("vector(1)")


def test_only_http_base_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="http"):
        PrometheusAPI("file:///etc/passwd", None)  # type: ignore[arg-type]
