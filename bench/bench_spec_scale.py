"""Benchmark `rules check` and `rules generate` against the number of pipelines (issue 21).

Both must be linear in the pipelines: for 1,000, 10,000 and 50,000 pipelines
of a heavy spec (~230 bytes a pipeline, as in the issue's 50 MB probe: every
pipeline overrides thresholds, team, runbook and description; every 5th has
an SLO and a dependency; every 10th an action) it reports the wall time of
each command and its CPU time per pipeline (this process's: promtool's own is
not counted) as a ratio to the 1,000-pipeline run of the same process (1.0 is
linear; the goal is <= 1.5 at 50,000). CPU time, because the wall time on a
shared 2-core machine measures the neighbours too; after one untimed run, so
that one-time costs (imports, compiling the schema) do not flatter the larger
sizes. It also times the refusal
of a 500-byte "billion laughs" spec (goal: milliseconds).

Run: ``.venv/bin/python -m bench bench_spec_scale`` (BENCH_SPEC_SIZES=1000,10000
to choose the sizes).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from pathlib import Path

from pipemedic.cli import main as pipemedic
from rules.errors import SpecError
from rules.spec import load_spec

SIZES = [int(n) for n in os.environ.get("BENCH_SPEC_SIZES", "1000,10000,50000").split(",")]


def heavy_spec(n: int) -> str:
    """Return a spec of ``n`` pipelines where every pipeline differs from the defaults."""
    lines = ["defaults:", "  team: core", "pipelines:"]
    for i in range(n):
        lines += [
            f"  p{i:06d}:",
            f"    description: Pipeline {i} loads table t{i} into the warehouse every hour.",
            f"    sla: {30 + i % 50}m",
            f"    max_error_rate: {0.01 + (i % 40) / 1000:.3f}",
            f"    team: t{i % 3}",
            f"    runbook_url: https://runbooks.example/pipelines/p{i:06d}",
        ]
        if i % 5 == 0:
            lines += [
                f"    slo: {{objective: 0.99{i % 9}}}",
                f"    dependencies: [{{name: db{i % 4}, tcp: '127.0.0.1:{5000 + i % 100}'}}]",
            ]
        if i % 10 == 0:
            lines += [
                "    actions:",
                "      retry_with_backoff:",
                f"        http: {{url: 'http://127.0.0.1:9300/p{i}/retry', method: POST}}",
            ]
    lines += ["teams:", "  core: {}", "  t0: {}", "  t1: {}", "  t2: {}"]
    return "\n".join(lines) + "\n"


def billion_laughs() -> str:
    """Return a spec of nine levels of nine aliases: 9^9 strings from under 500 bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    lines.append("pipelines: {p: {description: *a8}}")
    return "\n".join(lines) + "\n"


def _timed(*argv: str) -> tuple[float, float]:
    """Return (wall seconds, CPU seconds of this process) of one pipemedic command."""
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = pipemedic(list(argv))
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited {code}")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-spec-") as tmp:
        root = Path(tmp)
        laughs = root / "laughs.yml"
        laughs.write_text(billion_laughs())
        start = time.perf_counter()
        try:
            load_spec(laughs)
            raise SystemExit("the billion laughs spec loaded")
        except SpecError:
            refused_ms = (time.perf_counter() - start) * 1000
        print(
            f"billion laughs ({laughs.stat().st_size} bytes): refused in {refused_ms:.1f} ms",
            flush=True,
        )
        print(
            f"{'pipelines':>10} {'MB':>6} {'check s':>8} {'cpu us/pipe':>12} {'ratio':>6}"
            f" {'generate s':>11} {'cpu us/pipe':>12} {'ratio':>6}",
            flush=True,
        )
        base: tuple[float, float] | None = None
        empty = root / "no-custom"
        # one untimed run first: imports, the schema validator, the entry point scan
        warm = root / "warm.yml"
        warm.write_text(heavy_spec(SIZES[0]))
        _timed("rules", "check", "--spec", str(warm), "--custom", str(empty))
        for n in SIZES:
            spec = root / f"spec{n}.yml"
            spec.write_text(heavy_spec(n))
            out = root / f"out{n}"
            check = _timed("rules", "check", "--spec", str(spec), "--custom", str(empty))
            gen = _timed(
                "rules", "generate", "--spec", str(spec), "--out", str(out), "--custom", str(empty)
            )
            per = (check[1] / n * 1e6, gen[1] / n * 1e6)
            base = base or per
            print(
                f"{n:>10,} {spec.stat().st_size / 1e6:>6.1f} {check[0]:>8.2f} {per[0]:>12.0f}"
                f" {per[0] / base[0]:>6.2f} {gen[0]:>11.2f} {per[1]:>12.0f}"
                f" {per[1] / base[1]:>6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
