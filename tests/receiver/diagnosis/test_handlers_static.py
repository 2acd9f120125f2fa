"""Diagnosis handlers against ``receiver.testing.StaticPrometheus``: the logic, in milliseconds.

The same cases as ``test_diagnosis.py`` (which runs them against a real
Prometheus scraping real metrics), plus the edges a real server makes slow or
awkward to reach: a NaN sample, a query that fails half-way, several
dependencies, ties between reasons. Every answer is keyed by the PromQL that
``receiver.diagnosis.queries`` builds, so a handler that stops asking a query
leaves it out of ``asked`` and the tests say so.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipemedic.vocabulary import CAUSE_NAMES
from receiver.diagnosis import diagnose, queries
from receiver.errors import PrometheusError
from receiver.models import Alert, Diagnosis
from receiver.testing import Answer, StaticPrometheus, row
from rules.spec import load_spec

SPEC = load_spec(None)
P = "etl"


def alert(category: str = "", name: str = "PipelineHighErrorRate", pipeline: str = P) -> Alert:
    labels = {"alertname": name, "pipeline": pipeline, "severity": "critical"}
    if category:
        labels["category"] = category
    return Alert(
        status="firing",
        labels=labels,
        annotations={},
        starts_at=datetime.now(UTC),
        ends_at=None,
        fingerprint="f",
        generator_url="",
    )


def errors(*reasons: tuple[str, str, float]) -> dict[str, Answer]:
    """The errors-by-reason answer: (category, reason, increase) rows."""
    rows = [row(n, category=c, reason=r) for c, r, n in reasons]
    return {queries.errors_by_reason(P, "15m"): rows}


async def run(a: Alert, prom: StaticPrometheus) -> Diagnosis:
    d = await diagnose(a, SPEC.pipeline(a.pipeline), prom)
    assert d.cause in CAUSE_NAMES
    return d


@pytest.mark.parametrize(
    ("category", "reason", "cause", "handler"),
    [
        ("connectivity", "timeout", "network_timeout", "check_infrastructure"),
        ("connectivity", "rate_limited", "rate_limited", "check_infrastructure"),
        ("data", "corrupt_record", "data_corruption", "check_data_integrity"),
        ("data", "schema_change", "schema_change", "check_data_integrity"),
        ("data", "volume_exceeded", "volume_exceeded", "check_data_integrity"),
        ("logic", "bug", "logic_error", "check_logic"),
        ("logic", "config", "config_error", "check_logic"),
        ("resources", "out_of_memory", "memory_limit", "check_resource_usage"),
    ],
)
async def test_error_reasons_lead_to_their_cause_with_evidence(
    category: str, reason: str, cause: str, handler: str
) -> None:
    prom = StaticPrometheus(errors((category, reason, 7)))
    d = await run(alert(category), prom)
    assert (d.cause, d.handler, d.error) == (cause, handler, None)
    assert reason in d.summary and "7 errors" in d.summary
    [ev] = [e for e in d.evidence if e.query == queries.errors_by_reason(P, "15m")]
    assert ev.result == [{"labels": {"category": category, "reason": reason}, "value": "7"}]
    assert [e.query for e in d.evidence] == prom.asked  # every query asked is evidence


async def test_the_handlers_ask_their_evidence_queries_in_order() -> None:
    asked = {}
    for category in ("connectivity", "data", "resources", "logic"):
        prom = StaticPrometheus()
        await run(alert(category), prom)
        asked[category] = prom.asked
    window = queries.errors_by_reason(P, "15m")
    assert asked["connectivity"] == [
        queries.pipeline_up(P),
        queries.dependency_up(P),
        queries.staleness(P),
        window,
    ]
    assert asked["data"] == [
        queries.failed_ratio(P, "15m"),
        queries.staleness(P),
        queries.checkpoint_age(P),
        window,
    ]
    assert asked["resources"] == [
        queries.memory_ratio(P),
        queries.disk_free(P),
        queries.cpu_ratio(P),
        window,
    ]
    assert asked["logic"] == [queries.failed_ratio(P, "15m"), window]


async def test_a_dependency_probe_down_is_dependency_down_naming_only_the_down_ones() -> None:
    prom = StaticPrometheus(
        {
            queries.dependency_up(P): [
                row(1, dependency="orders_api"),
                row(0, dependency="warehouse"),
                row(0, dependency="ledger"),
            ]
        }
    )
    d = await run(alert(name="PipelineDependencyDown"), prom)
    assert (d.cause, d.handler) == ("dependency_down", "check_infrastructure")
    assert "ledger, warehouse" in d.summary and "orders_api" not in d.summary


async def test_expired_credentials_win_over_a_failing_probe() -> None:
    prom = StaticPrometheus(
        {
            queries.dependency_up(P): [row(0, dependency="warehouse")],
            **errors(("connectivity", "auth_expired", 3), ("connectivity", "timeout", 1)),
        }
    )
    d = await run(alert("connectivity"), prom)
    assert d.cause == "credential_expired"


async def test_a_failing_probe_wins_over_other_connectivity_reasons() -> None:
    prom = StaticPrometheus(
        {
            queries.dependency_up(P): [row(0, dependency="warehouse")],
            **errors(("connectivity", "timeout", 9)),
        }
    )
    d = await run(alert("connectivity"), prom)
    assert d.cause == "dependency_down"


@pytest.mark.parametrize(
    ("memory", "disk", "cpu", "cause"),
    [
        (0.95, 50e9, 0.1, "memory_limit"),
        (0.2, 100e6, 0.1, "disk_full"),
        (0.2, 50e9, 0.97, "cpu_saturation"),
        (0.95, 100e6, 0.97, "memory_limit"),  # memory is looked at first
        (0.2, 100e6, 0.97, "disk_full"),  # then disk
    ],
)
async def test_resource_gauges_over_their_limit(
    memory: float, disk: float, cpu: float, cause: str
) -> None:
    prom = StaticPrometheus(
        {
            queries.memory_ratio(P): memory,
            queries.disk_free(P): disk,
            queries.cpu_ratio(P): cpu,
        }
    )
    d = await run(alert("resources", "PipelineSLAViolation"), prom)
    assert (d.cause, d.handler) == (cause, "check_resource_usage")
    notes = {e.note for e in d.evidence}
    assert {"memory usage / memory limit", "free disk bytes", "CPU usage ratio (0..1)"} <= notes


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
async def test_a_gauge_that_is_not_a_number_is_no_cause(value: float) -> None:
    prom = StaticPrometheus({queries.memory_ratio(P): value, queries.cpu_ratio(P): value})
    d = await run(alert("resources"), prom)
    assert (d.cause, d.error) == ("unknown", None)


async def test_healthy_resources_are_not_a_cause() -> None:
    prom = StaticPrometheus(
        {queries.memory_ratio(P): 0.3, queries.disk_free(P): 80e9, queries.cpu_ratio(P): 0.2}
    )
    d = await run(alert("resources"), prom)
    assert (d.cause, d.error) == ("unknown", None)
    assert len(d.evidence) == 4, "an unknown cause still shows what was looked at"


async def test_inconclusive_handler_falls_back_to_the_dominant_reason() -> None:
    prom = StaticPrometheus(errors(("resources", "disk_full", 5)))
    d = await run(alert("data"), prom)
    assert (d.cause, d.handler) == ("disk_full", "dominant_error_reason")
    assert "check_data_integrity found nothing conclusive" in d.summary
    assert prom.asked.count(queries.errors_by_reason(P, "15m")) == 1  # asked once, reused


async def test_the_most_frequent_reason_decides_and_ties_go_by_name() -> None:
    prom = StaticPrometheus(
        errors(("data", "schema_change", 2), ("data", "corrupt_record", 9), ("data", "custom", 50))
    )
    d = await run(alert("data"), prom)
    assert d.cause == "data_corruption"  # "custom" is more frequent but names no cause
    tie = StaticPrometheus(errors(("data", "schema_change", 4), ("data", "corrupt_record", 4)))
    assert (await run(alert("data"), tie)).cause == "data_corruption"


async def test_an_alert_without_category_or_known_name_uses_the_dominant_reason() -> None:
    prom = StaticPrometheus(errors(("connectivity", "timeout", 3)))
    d = await run(alert(name="CustomAlert"), prom)
    assert (d.cause, d.handler) == ("network_timeout", "dominant_error_reason")
    assert prom.asked == [queries.errors_by_reason(P, "15m")]


async def test_prometheus_failing_half_way_is_unknown_with_the_error_and_the_evidence_so_far() -> (
    None
):
    failure = PrometheusError("Prometheus at http://127.0.0.1:9/api/v1/query unreachable: refused")
    prom = StaticPrometheus({queries.pipeline_up(P): 1, queries.dependency_up(P): failure})
    d = await run(alert("connectivity"), prom)
    assert (d.cause, d.handler) == ("unknown", "check_infrastructure")
    assert d.error == str(failure)
    assert [e.query for e in d.evidence] == [queries.pipeline_up(P)]


async def test_an_alert_without_pipeline_is_unknown_and_asks_nothing() -> None:
    prom = StaticPrometheus()
    d = await run(alert("data", pipeline=""), prom)
    assert d.cause == "unknown" and d.error and "pipeline" in d.error
    assert d.evidence == () and prom.asked == []


async def test_static_prometheus_returns_copies_and_lists_what_it_could_not_answer() -> None:
    rows = [row(2.5, job="x")]
    prom = StaticPrometheus({"up": rows})
    first = await prom.query("up")
    first[0]["metric"]["job"] = "changed"
    assert await prom.query("up") == [{"metric": {"job": "x"}, "value": [1_700_000_000.0, "2.5"]}]
    assert await prom.query("absent") == []
    await prom.query("absent")
    assert prom.unanswered == ["absent"]
    assert [r["value"][1] for r in [row(1e9), row(float("nan")), row(float("-inf"))]] == [
        "1000000000",
        "NaN",
        "-Inf",
    ]
