"""The simulated pipelines: faults show in the exporter's metrics; control routes repair them."""

from __future__ import annotations

import asyncio
from typing import Any

from exporters import ExporterConfig, PipelineRegistry, create_app
from exporters.render import Exposition
from exporters.testing import sample_value
from pipemedic.demo.scenario import SCENARIO, fault_for
from pipemedic.demo.simulator import SIMULATOR, Simulator
from rules.spec import load_spec

NAMES = [f.pipeline for f in SCENARIO]


def _simulator() -> Simulator:
    return Simulator(PipelineRegistry(load_spec(None)), NAMES, tick_seconds=3600)


def _metric(sim: Simulator, name: str, **labels: str) -> float | None:
    return sample_value(Exposition(sim.registry).render().decode(), name, **labels)


def _fault(pipeline: str) -> Any:
    found = fault_for(pipeline)
    assert found is not None
    return found


def test_each_fault_shows_as_its_category_and_reason() -> None:
    sim = _simulator()
    sim.tick()
    for fault in SCENARIO:
        sim.inject(fault)
    sim.tick()
    for fault in SCENARIO:
        p = fault.pipeline
        errors = _metric(
            sim, "pipeline_errors_total", pipeline=p, category=fault.category, reason=fault.reason
        )
        assert errors is not None and errors > 0, fault.name
        runs_failed = _metric(sim, "pipeline_runs_total", pipeline=p, status="failure")
        if fault.effect == "failed_runs":
            assert runs_failed == 1
        else:
            assert runs_failed in (None, 0)
            assert (_metric(sim, "pipeline_records_failed_total", pipeline=p) or 0) > 0
    memory = _metric(sim, "pipeline_memory_usage_bytes", pipeline="demo_feature_build")
    limit = _metric(sim, "pipeline_memory_limit_bytes", pipeline="demo_feature_build")
    assert memory is not None and limit is not None and memory / limit > 0.9


async def _client(aiohttp_client: Any, sim: Simulator) -> Any:
    app = create_app(sim.registry, config=ExporterConfig(probe_dependencies=False))
    sim.mount(app)
    assert app[SIMULATOR] is sim
    return await aiohttp_client(app)


async def test_fixes_answer_like_real_endpoints_and_are_counted(aiohttp_client: Any) -> None:
    sim = _simulator()
    client = await _client(aiohttp_client, sim)
    orders = _fault("demo_shop_orders")
    sim.inject(orders)
    body = {"incident_id": 7, "attempt": 1}
    first = await client.post("/demo/pipelines/demo_shop_orders/retry", json=body)
    assert first.status == 503  # retryable: the upstream still times out
    wrong = await client.post("/demo/pipelines/demo_shop_orders/scale", json=body)
    assert wrong.status == 409  # not retryable: the wrong fix
    second = await client.post("/demo/pipelines/demo_shop_orders/retry", json={"attempt": 2})
    assert second.status == 200 and (await second.json())["fixed"] == "upstream_timeout"
    again = await client.post("/demo/pipelines/demo_shop_orders/retry")
    assert again.status == 200 and (await again.json())["fixed"] is None
    assert sim.pipelines["demo_shop_orders"].fault is None
    hits = await (await client.get("/demo/hits")).json()
    assert hits["hits"] == {"demo_shop_orders": {"retry": 3, "scale": 1}}
    assert [c["attempt"] for c in hits["calls"]] == [1, 1, 2, None]
    assert [c["status"] for c in hits["calls"]] == [503, 409, 200, 200]


async def test_scale_lowers_the_memory_ratio(aiohttp_client: Any) -> None:
    sim = _simulator()
    client = await _client(aiohttp_client, sim)
    sim.inject(_fault("demo_feature_build"))
    resp = await client.post("/demo/pipelines/demo_feature_build/scale")
    assert resp.status == 200
    sim.tick()
    memory = _metric(sim, "pipeline_memory_usage_bytes", pipeline="demo_feature_build")
    limit = _metric(sim, "pipeline_memory_limit_bytes", pipeline="demo_feature_build")
    assert memory is not None and limit is not None and memory / limit < 0.9


async def test_unknown_pipelines_and_fixes_are_404(aiohttp_client: Any) -> None:
    client = await _client(aiohttp_client, _simulator())
    for path in ("/demo/pipelines/etl_orders/retry", "/demo/pipelines/demo_shop_orders/reboot"):
        resp = await client.post(path)
        assert resp.status == 404
        assert "error" in await resp.json()


async def test_the_pipelines_run_with_the_app(aiohttp_client: Any) -> None:
    sim = Simulator(PipelineRegistry(load_spec(None)), NAMES, tick_seconds=0.01)
    client = await _client(aiohttp_client, sim)
    runs = 0.0
    for _ in range(1000):  # a generous deadline: ~10s
        text = await (await client.get("/metrics")).text()
        runs = sample_value(text, "pipeline_runs_total", pipeline=NAMES[0], status="success") or 0
        if runs > 2:
            break
        await asyncio.sleep(0.01)
    assert runs > 2
    assert sample_value(text, "pipeline_up", pipeline=NAMES[0]) == 1
