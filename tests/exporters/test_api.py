"""The Python API: runs, failures with category/reason, heartbeats, liveness at scrape time."""

from __future__ import annotations

import asyncio
import errno
import math

import pytest
from exporter_helpers import FakeClock

from exporters.errors import CardinalityError, InvalidEventError
from exporters.registry import PipelineRegistry
from exporters.render import Exposition
from exporters.testing import sample_value


def scrape(registry: PipelineRegistry) -> str:
    return Exposition(registry).render().decode()


def test_successful_run_counts_records_duration_and_success_time(
    registry: PipelineRegistry, clock: FakeClock
) -> None:
    orders = registry.pipeline("etl_orders")
    with orders.run() as run:
        run.processed(100)
        run.failed(3)
    body = scrape(registry)
    assert sample_value(body, "pipeline_runs_total", pipeline="etl_orders", status="success") == 1
    assert sample_value(body, "pipeline_runs_total", pipeline="etl_orders", status="failure") == 0
    assert sample_value(body, "pipeline_records_processed_total", pipeline="etl_orders") == 100
    assert sample_value(body, "pipeline_records_failed_total", pipeline="etl_orders") == 3
    assert sample_value(body, "pipeline_run_duration_seconds_count", pipeline="etl_orders") == 1
    assert sample_value(body, "pipeline_last_success_timestamp_seconds", pipeline="etl_orders") == (
        clock.now
    )
    assert sample_value(body, "pipeline_last_run_duration_seconds", pipeline="etl_orders") >= 0
    assert sample_value(body, "pipeline_up", pipeline="etl_orders") == 1


def test_exception_is_recorded_with_category_and_reraised(registry: PipelineRegistry) -> None:
    orders = registry.pipeline("etl_orders")
    with pytest.raises(OSError) as raised, orders.run():
        raise OSError(errno.ENOSPC, "No space left on device")
    assert raised.value.errno == errno.ENOSPC
    body = scrape(registry)
    assert sample_value(body, "pipeline_runs_total", pipeline="etl_orders", status="failure") == 1
    assert (
        sample_value(
            body,
            "pipeline_errors_total",
            pipeline="etl_orders",
            category="resources",
            reason="disk_full",
        )
        == 1
    )
    assert sample_value(body, "pipeline_last_success_timestamp_seconds", pipeline="etl_orders") is (
        None
    )


def test_decorator_records_each_call_sync_and_async(registry: PipelineRegistry) -> None:
    orders = registry.pipeline("etl_orders")

    @orders.track
    def job(fail: bool) -> str:
        if fail:
            raise MemoryError
        return "done"

    @orders.track
    async def ajob() -> int:
        await asyncio.sleep(0)
        raise TimeoutError("upstream")

    assert job(False) == "done"
    with pytest.raises(MemoryError):
        job(True)
    with pytest.raises(TimeoutError):
        asyncio.run(ajob())
    body = scrape(registry)
    assert sample_value(body, "pipeline_runs_total", pipeline="etl_orders", status="success") == 1
    assert sample_value(body, "pipeline_runs_total", pipeline="etl_orders", status="failure") == 2
    for category, reason in (("resources", "out_of_memory"), ("connectivity", "timeout")):
        value = sample_value(
            body, "pipeline_errors_total", pipeline="etl_orders", category=category, reason=reason
        )
        assert value == 1, (category, reason)


def test_explicit_fail_without_exception(registry: PipelineRegistry) -> None:
    orders = registry.pipeline("etl_orders")
    with orders.run() as run:
        run.fail("data", "corrupt_record")
    body = scrape(registry)
    assert sample_value(body, "pipeline_runs_total", pipeline="etl_orders", status="failure") == 1
    assert (
        sample_value(
            body,
            "pipeline_errors_total",
            pipeline="etl_orders",
            category="data",
            reason="corrupt_record",
        )
        == 1
    )


def test_pipeline_up_falls_to_zero_when_heartbeat_is_older_than_timeout(
    registry: PipelineRegistry, clock: FakeClock
) -> None:
    orders = registry.pipeline("etl_orders")  # heartbeat_timeout 1m in the spec
    other = registry.pipeline("not_in_spec")  # defaults: 5m
    orders.heartbeat()
    other.heartbeat()
    exposition = Exposition(registry)
    body = exposition.render().decode()
    assert sample_value(body, "pipeline_up", pipeline="etl_orders") == 1
    clock.advance(61)  # nobody calls anything
    body = exposition.render().decode()
    assert sample_value(body, "pipeline_up", pipeline="etl_orders") == 0
    assert sample_value(body, "pipeline_up", pipeline="not_in_spec") == 1
    clock.advance(300)
    body = exposition.render().decode()
    assert sample_value(body, "pipeline_up", pipeline="not_in_spec") == 0
    orders.heartbeat()
    body = exposition.render().decode()
    assert sample_value(body, "pipeline_up", pipeline="etl_orders") == 1


def test_mark_down_until_next_sign_of_life(registry: PipelineRegistry) -> None:
    orders = registry.pipeline("etl_orders")
    orders.heartbeat()
    orders.mark_down()
    assert sample_value(scrape(registry), "pipeline_up", pipeline="etl_orders") == 0
    orders.heartbeat()
    assert sample_value(scrape(registry), "pipeline_up", pipeline="etl_orders") == 1


def test_heartbeat_exports_resource_gauges(registry: PipelineRegistry) -> None:
    orders = registry.pipeline("etl_orders")
    orders.heartbeat(
        memory_bytes=2e9,
        memory_limit_bytes=4e9,
        disk_free_bytes=1e6,
        cpu_usage_ratio=0.5,
        sample=False,
    )
    body = scrape(registry)
    assert sample_value(body, "pipeline_memory_usage_bytes", pipeline="etl_orders") == 2e9
    assert sample_value(body, "pipeline_memory_limit_bytes", pipeline="etl_orders") == 4e9
    assert sample_value(body, "pipeline_disk_free_bytes", pipeline="etl_orders") == 1e6
    assert sample_value(body, "pipeline_cpu_usage_ratio", pipeline="etl_orders") == 0.5


def test_heartbeat_samples_own_memory_when_not_given(registry: PipelineRegistry) -> None:
    registry.pipeline("etl_orders").heartbeat(disk_path="/")
    body = scrape(registry)
    assert sample_value(body, "pipeline_memory_usage_bytes", pipeline="etl_orders") > 1e6
    assert sample_value(body, "pipeline_disk_free_bytes", pipeline="etl_orders") > 0


def test_data_updated_checkpoint_and_error(registry: PipelineRegistry, clock: FakeClock) -> None:
    orders = registry.pipeline("etl_orders")
    orders.data_updated()
    orders.checkpoint(at=clock.now - 10)
    orders.error("connectivity", "rate_limited", count=4)
    body = scrape(registry)
    assert sample_value(body, "pipeline_last_update_timestamp_seconds", pipeline="etl_orders") == (
        clock.now
    )
    assert sample_value(body, "pipeline_checkpoint_timestamp_seconds", pipeline="etl_orders") == (
        clock.now - 10
    )
    assert (
        sample_value(
            body,
            "pipeline_errors_total",
            pipeline="etl_orders",
            category="connectivity",
            reason="rate_limited",
        )
        == 4
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda p: p.error("network", "timeout"),
        lambda p: p.error("data", "Bad Reason"),
        lambda p: p.error("data", "corrupt_record", count=0),
        lambda p: p.heartbeat(cpu_usage_ratio=1.5, sample=False),
        lambda p: p.heartbeat(memory_bytes=math.nan, sample=False),
        lambda p: p.heartbeat(memory_bytes=-1, sample=False),
    ],
)
def test_bad_arguments_are_refused_with_field_name(
    registry: PipelineRegistry, call: object
) -> None:
    orders = registry.pipeline("etl_orders")
    with pytest.raises(InvalidEventError):
        call(orders)  # type: ignore[operator]


@pytest.mark.parametrize("name", ['a"b', "a\nb", "pipeline-é", "", "x" * 200, "with space"])
def test_bad_pipeline_names_are_refused(registry: PipelineRegistry, name: str) -> None:
    with pytest.raises(InvalidEventError, match="pipeline"):
        registry.pipeline(name)


def test_cardinality_bound_refuses_new_pipelines(clock: FakeClock) -> None:
    registry = PipelineRegistry(clock=clock, max_pipelines=3, max_error_series=2)
    for i in range(3):
        registry.pipeline(f"p{i}")
    with pytest.raises(CardinalityError, match="maximum of 3"):
        registry.pipeline("p3")
    registry.pipeline("p0")  # known ones still work
    assert len(registry) == 3
    p0 = registry.pipeline("p0")
    p0.error("data", "corrupt_record")
    p0.error("data", "schema_change")
    with pytest.raises(CardinalityError, match="error category/reason"):
        p0.error("logic", "bug")
    assert registry.refused == 2
