"""Pipelines the spec lists are exported from start-up as awaiting their first report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporters.errors import CardinalityError
from exporters.probes import _record
from exporters.registry import PipelineRegistry
from exporters.render import Exposition
from exporters.state import PipelineState
from exporters.testing import sample_value
from rules.spec import parse_spec

AWAITING = "pipeline_awaiting_first_report_timestamp_seconds"
SPEC = "pipelines:\n  nightly: {}\n  hourly: {}\n"


def render(registry: PipelineRegistry) -> str:
    return Exposition(registry).render().decode()


def test_listed_pipelines_await_until_they_report_and_probes_do_not_count() -> None:
    registry = PipelineRegistry(parse_spec(SPEC), clock=lambda: 1000.0)
    registry.expect_listed()
    body = render(registry)
    assert sample_value(body, AWAITING, pipeline="nightly") == 1000.0
    assert sample_value(body, AWAITING, pipeline="hourly") == 1000.0
    assert sample_value(body, "pipeline_up", pipeline="nightly") is None  # no PipelineDown

    registry.apply([_record("nightly", "warehouse", True, 0.1, 1001.0)])  # the exporter's probe
    registry.pipeline("hourly").heartbeat()
    body = render(registry)
    assert sample_value(body, AWAITING, pipeline="nightly") == 1000.0
    assert sample_value(body, AWAITING, pipeline="hourly") is None


def test_a_report_in_another_process_ends_the_wait() -> None:
    """Worker processes' states merge into the exporter's (multiprocess mode)."""
    registry = PipelineRegistry(parse_spec(SPEC), clock=lambda: 1000.0)
    registry.expect_listed()
    waiting = PipelineState.from_dict(registry.snapshot()[0])
    assert waiting.awaiting_since == 1000.0  # it survives the snapshot
    silent_worker = PipelineState(waiting.name, 300.0)
    silent_worker.awaiting_since = 1000.0
    waiting.merge(silent_worker)
    assert waiting.awaiting_since == 1000.0
    reporting_worker = PipelineState(waiting.name, 300.0)
    reporting_worker.seen(1001.0)
    waiting.merge(reporting_worker)
    assert waiting.awaiting_since is None


def test_more_listed_pipelines_than_the_bound_is_refused() -> None:
    registry = PipelineRegistry(parse_spec(SPEC), max_pipelines=1)
    with pytest.raises(CardinalityError, match="max-pipelines"):
        registry.expect_listed()


def test_the_exporter_command_names_a_spec_over_the_bound(tmp_path: Path) -> None:
    spec = tmp_path / "pipelines.yml"
    spec.write_text(SPEC)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipemedic",
            "exporter",
            "--spec",
            str(spec),
            "--max-pipelines",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert str(spec) in done.stdout and "max-pipelines" in done.stdout
