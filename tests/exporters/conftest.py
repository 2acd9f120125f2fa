"""Fixtures of the exporter tests: a settable clock and a fresh registry per test."""

from __future__ import annotations

import pytest
from exporter_helpers import FakeClock

from exporters.registry import PipelineRegistry
from rules.spec import Spec, parse_spec

SPEC_YAML = """
defaults:
  heartbeat_timeout: 5m
pipelines:
  etl_orders:
    heartbeat_timeout: 1m
"""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def spec() -> Spec:
    return parse_spec(SPEC_YAML, "test.yml")


@pytest.fixture
def registry(spec: Spec, clock: FakeClock) -> PipelineRegistry:
    return PipelineRegistry(spec, clock=clock, max_pipelines=50)
