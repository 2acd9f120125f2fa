"""``pipemedic demo [--keep-running] [--free-ports] [--output DIR]``: the whole loop, on loopback.

Exit codes: 0 every incident ended as the scenario expects, 1 one did not
(the summary says which and why), 2 the demo could not start (a port in
use, a server binary missing, a file not found).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from pipemedic.demo.runner import REPO, DemoError, DemoOptions, run_demo
from pipemedic.stack import ServerError
from rules.errors import RulesError

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    options = DemoOptions(
        output=args.output,
        spec=args.spec,
        free_ports=args.free_ports,
        keep_running=args.keep_running,
        deadline_seconds=args.deadline,
        json_lines=args.log_format == "json",
    )
    try:
        return asyncio.run(run_demo(options))
    except (DemoError, ServerError, RulesError, OSError) as exc:
        print(f"pipemedic demo: {exc}", file=sys.stderr)
        return 2


def register(sub: Any) -> None:
    """Add ``demo`` to the top-level parser."""
    parser = sub.add_parser(
        "demo",
        help="run the whole loop on a real Prometheus and Alertmanager, with injected faults",
        description=(
            "Start demo pipelines (with the exporter), a receiver, Alertmanager and "
            "Prometheus on loopback; inject five faults; show what is detected, diagnosed, "
            "run and recovered; print a summary and write the post-mortems."
        ),
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the summary, leave the stack up and print its URLs until Ctrl-C",
    )
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help="use free loopback ports instead of the default deployment's "
        "(9108, 9099, 9090, 9093); the demo actions are pointed at them",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("demo-output"),
        help="where the summary, the post-mortems and the run folder go (default demo-output)",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        default=REPO / "rules" / "pipelines.yml",
        help="the spec with the demo pipelines (default: the repository's rules/pipelines.yml)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=150.0,
        metavar="SECONDS",
        help="stop waiting for the incidents this long after the faults (default 150)",
    )
    parser.set_defaults(func=_run)
