"""Several worker processes record into one directory; the exporter serves their sum."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

from exporter_helpers import multiprocess_worker

from exporters.app import create_app
from exporters.config import ExporterConfig
from exporters.multiprocess import DirectoryReader, worker_registry
from exporters.registry import PipelineRegistry
from exporters.testing import sample_value

WORKERS = 4
RUNS = 6


async def test_worker_processes_add_up(aiohttp_client: Any, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(WORKERS) as pool:
        done = pool.starmap(multiprocess_worker, [(str(tmp_path), w, RUNS) for w in range(WORKERS)])
    assert done == [RUNS] * WORKERS
    assert len(list(tmp_path.glob("pipemedic-*.json"))) == WORKERS

    own = PipelineRegistry()
    own.pipeline("shared_etl").heartbeat(sample=False)  # the serving process records too
    app = create_app(
        own, config=ExporterConfig(multiprocess_dir=tmp_path, probe_dependencies=False)
    )
    client = await aiohttp_client(app)
    body = await (await client.get("/metrics")).text()
    failures = WORKERS * (RUNS // 3)
    assert (
        sample_value(body, "pipeline_runs_total", pipeline="shared_etl", status="failure")
        == failures
    )
    assert (
        sample_value(body, "pipeline_runs_total", pipeline="shared_etl", status="success")
        == WORKERS * RUNS - failures
    )
    assert (
        sample_value(body, "pipeline_records_processed_total", pipeline="shared_etl")
        == WORKERS * RUNS * 10
    )
    assert (
        sample_value(
            body,
            "pipeline_errors_total",
            pipeline="shared_etl",
            category="connectivity",
            reason="connection_error",
        )
        == failures
    )
    assert (
        sample_value(body, "pipeline_run_duration_seconds_count", pipeline="shared_etl")
        == WORKERS * RUNS
    )
    assert sample_value(body, "pipeline_up", pipeline="shared_etl") == 1
    for w in range(WORKERS):
        assert sample_value(body, "pipeline_memory_usage_bytes", pipeline=f"own_{w}") == w
    assert body.count('pipeline_up{pipeline="shared_etl"}') == 1


def _forked_child(directory: str) -> None:
    with _PARENT[0].pipeline("etl").run():
        pass
    os._exit(0)  # skip the parent's (pytest's) exit handlers


_PARENT: list[PipelineRegistry] = []


def test_a_forked_child_does_not_count_the_parents_numbers_twice(tmp_path: Path) -> None:
    parent = worker_registry(tmp_path)
    _PARENT.append(parent)
    with parent.pipeline("etl").run():
        pass
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_forked_child, args=(str(tmp_path),))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    merged = {s.name: s for s in DirectoryReader(tmp_path)()}
    assert merged["etl"].runs_success == 2
