"""`pipemedic rules` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
from typing import Any


def _todo(args: argparse.Namespace) -> int:
    print("pipemedic rules: not implemented yet")
    return 2


def register(sub: Any) -> None:
    """Add `rules` to the top-level parser."""
    parser = sub.add_parser("rules", help="rules")
    parser.set_defaults(func=_todo)
