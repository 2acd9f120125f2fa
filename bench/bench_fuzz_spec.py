"""Fuzz the spec loader longer than `make test` does (issue 21).

Runs tests/rules/test_spec_fuzz.py with the ``bench`` Hypothesis profile
(5,000 examples a property instead of 150). It has no baseline to compare
with: what it reports is whether any text made the loader raise anything
but a SpecError naming the file.

Run: ``.venv/bin/python -m bench bench_fuzz_spec``
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def main() -> None:
    tests = Path(__file__).resolve().parent.parent / "tests" / "rules" / "test_spec_fuzz.py"
    env = {**os.environ, "HYPOTHESIS_PROFILE": "bench"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the spec loader fuzz failed (exit {proc.returncode})")


if __name__ == "__main__":
    main()
