"""The exposition: valid Prometheus text and OpenMetrics, cached per pipeline, never `up`."""

from __future__ import annotations

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporters.health import HealthMetrics
from exporters.registry import PipelineRegistry
from exporters.render import FAMILIES, Exposition, escape_label_value, format_value
from exporters.state import DependencyResult
from exporters.testing import sample_value


def populate(registry: PipelineRegistry) -> None:
    for name in ("etl_orders", "etl_users"):
        p = registry.pipeline(name)
        with p.run() as run:
            run.processed(10)
        p.heartbeat(
            memory_bytes=1.0,
            memory_limit_bytes=2.0,
            disk_free_bytes=3.0,
            cpu_usage_ratio=0.25,
            sample=False,
        )
        p.data_updated()
        p.checkpoint()
        p.error("connectivity", "timeout")

    def dep(state: object) -> None:
        state.dependencies["orders_api"] = DependencyResult(True, 0.01, 0.0)  # type: ignore[attr-defined]

    from exporters.changes import Change

    registry.apply([Change("etl_orders", dep)])


def test_every_family_is_valid_text_and_openmetrics(registry: PipelineRegistry) -> None:
    populate(registry)
    exposition = Exposition(registry, HealthMetrics())
    text = exposition.render().decode()
    names = {f.name for f in parse_text(text)}
    assert {n.removesuffix("_total") for n, _k, _h in FAMILIES} <= names
    assert "up" not in names
    om = exposition.render(openmetrics=True).decode()
    assert om.endswith("# EOF\n")
    om_families = {f.name: f for f in parse_openmetrics(om)}
    assert om_families["pipeline_runs"].type == "counter"
    assert om_families["pipeline_run_duration_seconds"].type == "histogram"
    assert "pipemedic_exporter_events_rejected" in om_families
    assert (
        sample_value(text, "pipeline_dependency_up", pipeline="etl_orders", dependency="orders_api")
        == 1
    )


def test_cache_follows_changes(registry: PipelineRegistry) -> None:
    exposition = Exposition(registry)
    p = registry.pipeline("etl_orders")
    for i in range(1, 4):
        with p.run():
            pass
        body = exposition.render().decode()
        assert (
            sample_value(body, "pipeline_runs_total", pipeline="etl_orders", status="success") == i
        )


def test_unknown_liveness_exports_no_up_sample(registry: PipelineRegistry) -> None:
    registry.register("never_heard_of")
    body = Exposition(registry).render().decode()
    assert sample_value(body, "pipeline_up", pipeline="never_heard_of") is None
    assert (
        sample_value(body, "pipeline_runs_total", pipeline="never_heard_of", status="failure") == 0
    )


def test_escaping_and_values() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert format_value(float("inf")) == "+Inf"
    assert format_value(float("nan")) == "NaN"
    assert format_value(3) == "3"
    assert format_value(0.5) == "0.5"
