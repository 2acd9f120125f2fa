"""`pipemedic demo` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
from typing import Any


def _todo(args: argparse.Namespace) -> int:
    print("pipemedic demo: not implemented yet")
    return 2


def register(sub: Any) -> None:
    """Add `demo` to the top-level parser."""
    parser = sub.add_parser("demo", help="demo")
    parser.set_defaults(func=_todo)
