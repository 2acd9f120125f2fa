"""Fixtures of the exporter tests: a settable clock, a fresh registry, a real exporter process."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from exporter_helpers import FakeClock, StartExporter, wait_until

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


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/-/healthy", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[StartExporter]:
    """Run `pipemedic exporter --listen 127.0.0.1:PORT --spec ...` as its own process.

    ``exporter(spec_yaml, port, *extra_args, env={...})`` returns its base URL.
    """
    procs: list[subprocess.Popen[bytes]] = []

    def start(spec_yaml: str, port: int, *args: str, env: dict[str, str] | None = None) -> str:
        spec_file = tmp_path / f"pipelines-{len(procs)}.yml"
        spec_file.write_text(spec_yaml)
        log = (tmp_path / f"exporter-{len(procs)}.log").open("wb")
        command = [sys.executable, "-m", "pipemedic", "exporter"]
        command += ["--listen", f"127.0.0.1:{port}", "--spec", str(spec_file), *args]
        procs.append(
            subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )
        )
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url), what="exporter /-/healthy")
        return url

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)
