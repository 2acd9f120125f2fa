"""The ``pipemedic`` command: one parser, one sub-command table.

Each package owns its sub-commands in its own ``cli`` module, which exposes
``register(subparsers)``; this module only lists them. Adding a command group
is one line in ``_COMMAND_GROUPS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pipemedic import __version__, log

# module path -> registers its sub-commands on the top-level parser
_COMMAND_GROUPS: tuple[str, ...] = (
    "rules.cli",
    "exporters.cli",
    "receiver.cli",
    "receiver.report.incidents_cli",
    "receiver.notify.cli",
    "pipemedic.demo.cli",
)

# The end of `pipemedic --help`: what a newcomer runs first (README.md, "Quick start").
FIRST_COMMANDS = """\
first steps:
  pipemedic demo --free-ports --keep-running
      the whole loop on loopback, with injected faults; prints where to look
  pipemedic rules check --spec rules/pipelines.yml
      check your spec and the alerting rules generated from it
  pipemedic receiver --spec rules/pipelines.yml
      receive Alertmanager's alerts and run incidents for your pipelines

`pipemedic COMMAND --help` explains each command; README.md walks through a deployment.
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the full parser; every group registers its own sub-commands."""
    parser = argparse.ArgumentParser(
        prog="pipemedic",
        description="Prometheus alerting and automated incident response for data pipelines.",
        epilog=FIRST_COMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"pipemedic {__version__}",
        help="print the version and exit",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the least important log lines shown (default info)",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text lines, or one JSON object a line (default text)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in _COMMAND_GROUPS:
        module = importlib.import_module(module_name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pipemedic``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    log.configure(args.log_level, args.log_format)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
