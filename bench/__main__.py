"""Run benchmarks: ``python -m bench [NAME ...]`` (default: every ``bench_*.py``).

Each benchmark measures pipemedic against a baseline in the same run and
prints the ratio, since absolute times on a shared machine mean little.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = argv or sorted(p.stem for p in here.glob("bench_*.py"))
    for name in names:
        module = importlib.import_module(f"bench.{name.removesuffix('.py')}")
        print(f"=== {module.__name__} ===", flush=True)
        started = time.monotonic()
        module.main()
        print(f"=== {module.__name__}: {time.monotonic() - started:.1f}s ===", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
