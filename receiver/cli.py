"""`pipemedic receiver` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
from typing import Any


def _todo(args: argparse.Namespace) -> int:
    print("pipemedic receiver: not implemented yet")
    return 2


def register(sub: Any) -> None:
    """Add `receiver` to the top-level parser."""
    parser = sub.add_parser("receiver", help="receiver")
    parser.set_defaults(func=_todo)
