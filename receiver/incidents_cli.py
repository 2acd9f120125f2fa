"""`pipemedic incidents` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
from typing import Any


def _todo(args: argparse.Namespace) -> int:
    print("pipemedic incidents: not implemented yet")
    return 2


def register(sub: Any) -> None:
    """Add `incidents` to the top-level parser."""
    parser = sub.add_parser("incidents", help="incidents")
    parser.set_defaults(func=_todo)
