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
from receiver.diagnosis.performance import MAX_NEIGHBOURS
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
    [ev] = [e for e in d.evidence if e.query == str(queries.errors_by_reason(P, "15m"))]
    assert ev.result == [{"labels": {"category": category, "reason": reason}, "value": "7"}]
    assert [e.query for e in d.evidence] == prom.asked  # every query asked is evidence


@pytest.mark.parametrize(
    ("category", "gathered"),
    [
        ("connectivity", ["pipeline_up", "dependency_up", "staleness"]),
        ("data", ["failed_ratio", "staleness", "checkpoint_age"]),
        ("resources", ["memory_ratio", "disk_free", "cpu_ratio", "last_run_duration"]),
        ("logic", ["failed_ratio"]),
    ],
)
async def test_each_handler_gathers_its_evidence_even_when_all_is_well(
    category: str, gathered: list[str]
) -> None:
    prom = StaticPrometheus()
    d = await run(alert(category), prom)
    expected = {_query(name) for name in [*gathered, "errors_by_reason"]}
    assert expected <= set(prom.asked)
    assert [e.query for e in d.evidence] == prom.asked


def _query(name: str) -> str:
    build = getattr(queries, name)
    return str(build(P, "15m") if name in ("failed_ratio", "errors_by_reason") else build(P))


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
    assert len(d.evidence) >= 4, "an unknown cause still shows what was looked at"


async def test_inconclusive_handler_falls_back_to_the_dominant_reason() -> None:
    prom = StaticPrometheus(errors(("resources", "disk_full", 5)))
    d = await run(alert("data"), prom)
    assert (d.cause, d.handler) == ("disk_full", "dominant_error_reason")
    assert "check_data_integrity found nothing conclusive" in d.summary
    assert prom.asked.count(str(queries.errors_by_reason(P, "15m"))) == 1  # asked once, reused


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
    assert prom.asked == [str(queries.errors_by_reason(P, "15m"))]


async def test_prometheus_failing_half_way_is_unknown_with_the_error_and_the_evidence_so_far() -> (
    None
):
    failure = PrometheusError("Prometheus at http://127.0.0.1:9/api/v1/query unreachable: refused")
    prom = StaticPrometheus({queries.pipeline_up(P): 1, queries.dependency_up(P): failure})
    d = await run(alert("connectivity"), prom)
    assert (d.cause, d.handler) == ("unknown", "check_infrastructure")
    assert d.error == str(failure)
    assert [e.query for e in d.evidence] == [str(queries.pipeline_up(P))]


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


# -- a pipeline that is down (liveness.py) ----------------------------------------------
SPEC_P = SPEC.pipeline(P)
T = SPEC_P.diagnosis


def down() -> dict[str, Answer]:
    """``pipeline_up`` 0: the heartbeat is old or the pipeline reported itself down."""
    return {str(queries.pipeline_up(P)): 0}


async def test_an_unseen_pipeline_whose_exporter_target_is_down_is_exporter_down() -> None:
    targets = queries.exporter_targets_up(P, T.baseline)
    prom = StaticPrometheus({targets: [row(0, job="pipelines", instance="10.0.0.7:9108")]})
    d = await run(alert(name="PipelineDown"), prom)
    assert d.cause == "exporter_down"
    assert "pipelines 10.0.0.7:9108" in d.summary


@pytest.mark.parametrize(
    ("evidence", "cause"),
    [
        ({"heartbeat_age": SPEC_P.heartbeat_timeout_seconds + 60}, "process_stopped"),
        ({"peak_memory_ratio": T.memory_ratio + 0.05}, "memory_limit"),
        ({"dependency_up": [row(0, dependency="warehouse")]}, "dependency_down"),
    ],
)
async def test_why_a_pipeline_is_down(evidence: dict[str, Answer], cause: str) -> None:
    built = {
        "heartbeat_age": queries.heartbeat_age(P),
        "peak_memory_ratio": queries.peak_memory_ratio(P, "15m"),
        "dependency_up": queries.dependency_up(P),
    }
    prom = StaticPrometheus({**down(), **{built[k]: v for k, v in evidence.items()}})
    d = await run(alert("connectivity", "PipelineDown"), prom)
    assert (d.cause, d.handler) == (cause, "check_infrastructure")


async def test_expired_credentials_explain_a_down_pipeline_before_its_probes() -> None:
    answers = {**down(), queries.dependency_up(P): [row(0, dependency="api")]}
    answers.update(errors(("connectivity", "auth_expired", 40), ("connectivity", "timeout", 3)))
    prom = StaticPrometheus(answers)
    d = await run(alert("connectivity", "PipelineDown"), prom)
    assert d.cause == "credential_expired"
    assert str(queries.dependency_up(P)) not in prom.asked  # decided before the probes


async def test_a_down_pipeline_with_no_evidence_is_left_to_the_fallback() -> None:
    d = await run(alert("connectivity", "PipelineDown"), StaticPrometheus(down()))
    assert (d.cause, d.error) == ("unknown", None)


# -- stale output (freshness.py) --------------------------------------------------------
def stale(**ages: float) -> dict[str, Answer]:
    """Output older than max_staleness, plus run ages (seconds) by query name."""
    answers: dict[str, Answer] = {
        str(queries.pipeline_up(P)): 1,
        str(queries.staleness(P)): SPEC_P.max_staleness_seconds + 600,
    }
    for name, age in ages.items():
        answers[str(getattr(queries, name)(P))] = age
    return answers


async def test_a_run_started_longer_ago_than_the_sla_and_not_finished_is_run_hung() -> None:
    prom = StaticPrometheus(
        stale(run_start_age=SPEC_P.sla_seconds + 100, run_end_age=SPEC_P.sla_seconds + 4000)
    )
    d = await run(alert("data", "PipelineDataStale"), prom)
    assert (d.cause, d.handler) == ("run_hung", "check_data_integrity")


async def test_no_run_since_the_data_was_refreshed_is_not_scheduled() -> None:
    age = SPEC_P.max_staleness_seconds + 600
    prom = StaticPrometheus(stale(run_start_age=age + 50, run_end_age=age + 40))
    d = await run(alert("data", "PipelineDataStale"), prom)
    assert d.cause == "not_scheduled"


async def test_a_run_still_within_its_sla_is_neither_hung_nor_missed() -> None:
    started = SPEC_P.sla_seconds / 2  # after the last refresh, half its sla ago
    prom = StaticPrometheus(stale(run_start_age=started, run_end_age=SPEC_P.sla_seconds * 9))
    d = await run(alert("data", "PipelineDataStale"), prom)
    assert d.cause == "unknown"


async def test_a_stale_upstream_is_upstream_stale_naming_it() -> None:
    answers = stale(run_start_age=600, run_end_age=500, last_success_age=500)
    answers[str(queries.upstreams(P))] = [row(1, upstream="raw_orders"), row(1, upstream="fx")]
    answers[str(queries.staleness("raw_orders"))] = SPEC_P.max_staleness_seconds * 2
    answers[str(queries.staleness("fx"))] = 60
    d = await run(alert("data", "PipelineDataStale"), StaticPrometheus(answers))
    assert d.cause == "upstream_stale"
    assert "raw_orders" in d.summary and "fx" not in d.summary


async def test_a_failed_last_run_is_its_dominant_error_reason() -> None:
    answers = stale(run_start_age=900, run_end_age=800, last_success_age=90_000)
    answers.update(errors(("data", "schema_change", 3)))
    d = await run(alert("data", "PipelineDataStale"), StaticPrometheus(answers))
    assert d.cause == "schema_change" and d.summary.startswith("the last run failed")


# -- a slow run (performance.py) --------------------------------------------------------
def slow(took: float, mean: float, **more: Answer) -> dict[str, Answer]:
    return {
        str(queries.last_run_duration(P)): took,
        str(queries.mean_run_duration(P, T.baseline)): mean,
        **more,
    }


@pytest.mark.parametrize(
    ("took", "mean", "cause"),
    [
        (SPEC_P.sla_seconds + 600, SPEC_P.sla_seconds + 500, "sla_too_tight"),
        (SPEC_P.sla_seconds * 2, SPEC_P.sla_seconds / 2, "run_slow"),
    ],
)
async def test_a_run_over_its_sla_against_its_usual_runs(
    took: float, mean: float, cause: str
) -> None:
    d = await run(alert("resources", "PipelineSLAViolation"), StaticPrometheus(slow(took, mean)))
    assert (d.cause, d.handler) == (cause, "check_resource_usage")


async def test_a_run_over_its_sla_with_no_earlier_runs_is_not_named() -> None:
    prom = StaticPrometheus({queries.last_run_duration(P): SPEC_P.sla_seconds * 2})
    d = await run(alert("resources", "PipelineSLAViolation"), prom)
    assert d.cause == "unknown"  # no baseline: neither run_slow nor sla_too_tight


async def test_more_records_per_run_than_usual_is_volume_exceeded() -> None:
    answers = slow(
        SPEC_P.sla_seconds * 2,
        SPEC_P.sla_seconds / 2,
        **{
            str(queries.records_per_run(P, "15m")): 5000 * T.volume_ratio,
            str(queries.records_per_run(P, T.baseline)): 5000,
        },
    )
    d = await run(alert("resources"), StaticPrometheus(answers))
    assert d.cause == "volume_exceeded"


async def test_several_slow_pipelines_on_one_host_is_resource_contention() -> None:
    recent = queries.recent_runs_on_same_host(P, "15m")
    finished = [row(1, pipeline=name, instance="node-3") for name in ("billing", "etl", "idle")]
    slow_ones = queries.slow_runs(["etl", "billing", "idle"], T.baseline, T.slow_ratio)
    rows = [row(2, pipeline=name, instance="node-3") for name in ("etl", "billing")]
    answers = slow(
        SPEC_P.sla_seconds * 2,
        SPEC_P.sla_seconds / 2,
        **{str(recent): finished, str(slow_ones): rows},
    )
    d = await run(alert("resources"), StaticPrometheus(answers))
    assert d.cause == "resource_contention" and "node-3" in d.summary
    assert "idle" not in d.summary  # finished lately, but not slow


async def test_the_long_range_is_read_only_for_pipelines_that_ran_lately() -> None:
    many = [row(1, pipeline=f"p{i:03d}", instance="node-3") for i in range(200)]
    answers = slow(SPEC_P.sla_seconds * 2, SPEC_P.sla_seconds / 2)
    answers[str(queries.recent_runs_on_same_host(P, "15m"))] = [*many, row(1, pipeline=P)]
    prom = StaticPrometheus(answers)
    await run(alert("resources"), prom)
    (asked,) = [q for q in prom.asked if "pipeline_run_duration_seconds_sum{pipeline=~" in q]
    # the last run, the duration sum and the count each select the same 50
    assert asked.count("|") == 3 * (MAX_NEIGHBOURS - 1) and 'pipeline=~"etl|p000|' in asked


async def test_a_gauge_over_its_limit_wins_over_a_slow_run() -> None:
    answers = slow(SPEC_P.sla_seconds * 2, SPEC_P.sla_seconds / 2)
    answers[str(queries.cpu_ratio(P))] = T.cpu_ratio + 0.05
    d = await run(alert("resources"), StaticPrometheus(answers))
    assert d.cause == "cpu_saturation"
