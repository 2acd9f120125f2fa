"""`pipemedic exporter` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
from typing import Any


def _todo(args: argparse.Namespace) -> int:
    print("pipemedic exporter: not implemented yet")
    return 2


def register(sub: Any) -> None:
    """Add `exporter` to the top-level parser."""
    parser = sub.add_parser("exporter", help="exporter")
    parser.set_defaults(func=_todo)
