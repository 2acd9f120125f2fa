"""Every field path of a JSON document, for the fuzz tests that mutate one field at a time."""

from __future__ import annotations

from typing import Any

__all__ = ["json_paths"]


def json_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Return the path of every value below ``doc`` (keys and list indexes), not ``doc`` itself."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += json_paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += json_paths(value, (*prefix, i))
    return out
