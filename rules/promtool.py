"""Run the real ``promtool`` on rule files and unit-test files.

The rules package trusts promtool, not itself, for the final word on
whether Prometheus accepts a rule file and whether the unit tests pass.
Paths are passed as argv entries (no shell); a missing promtool is an
error naming the fix, never a silent pass.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipemedic.stack import find_binary

__all__ = ["PromtoolResult", "check_rules", "test_rules"]

_TIMEOUT = 300.0


@dataclass(frozen=True)
class PromtoolResult:
    """What promtool said: success, and its combined output."""

    ok: bool
    output: str


def _run(args: Sequence[str], cwd: Path | None = None) -> PromtoolResult:
    argv = [find_binary("promtool"), *args]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=_TIMEOUT, cwd=cwd, check=False
    )
    return PromtoolResult(proc.returncode == 0, (proc.stdout + proc.stderr).strip())


def check_rules(paths: Sequence[Path]) -> PromtoolResult:
    """Run ``promtool check rules`` on rule files (nothing to check is a success)."""
    if not paths:
        return PromtoolResult(True, "")
    return _run(["check", "rules", *(str(p) for p in paths)])


def test_rules(paths: Sequence[Path]) -> PromtoolResult:
    """Run ``promtool test rules`` on unit-test files (nothing to test is a success)."""
    if not paths:
        return PromtoolResult(True, "")
    return _run(["test", "rules", *(str(p) for p in paths)])
