"""Fixtures for the rules tests: run `pipemedic rules ...` in-process, write specs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipemedic.cli import main


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def rules_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run ``pipemedic rules <args>`` in this process and capture its output."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(["rules", *args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str], Path]:
    """Write spec YAML to a temporary pipelines.yml and return its path."""

    def write(text: str, name: str = "pipelines.yml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
