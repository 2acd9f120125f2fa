"""Recovery strategy names: the built-in ones and those installed plugins declare.

``pipemedic rules check`` names a strategy in the spec that nobody provides
(a ``recovery`` value or an ``actions`` key), so a typo is caught where the
spec is edited rather than when the receiver starts. Only package metadata is
read: checking a spec runs no plugin code.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterator, Mapping
from typing import Any

from rules.errors import Problem
from rules.yamlpos import Loaded

__all__ = ["BUILTIN_STRATEGIES", "STRATEGY_ENTRY_POINTS", "known_strategies", "strategy_problems"]

# The runbook's recovery strategies (the receiver's table in receiver/recovery/
# strategies.py implements them), plus ``escalate`` (hand over to people).
BUILTIN_STRATEGIES: frozenset[str] = frozenset(
    {
        "retry_with_backoff",
        "scale_resources",
        "rollback_to_checkpoint",
        "refresh_credentials",
        "escalate",
    }
)
# Third-party strategies register under this entry point group.
STRATEGY_ENTRY_POINTS = "pipemedic.recovery_strategies"


_STRATEGY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def known_strategies() -> frozenset[str]:
    """Return the built-in strategies and those installed plugins declare.

    Reads package metadata only: nothing is imported, so checking a spec runs
    no plugin code. The receiver validates the plugins themselves on start.
    """
    declared = {ep.name for ep in importlib.metadata.entry_points(group=STRATEGY_ENTRY_POINTS)}
    return BUILTIN_STRATEGIES | declared


def strategy_problems(doc: Loaded) -> list[Problem]:
    """Name every strategy in a valid spec that is neither built in nor declared by a plugin.

    Part of ``pipemedic rules check`` (and ``generate``), not of loading: the
    exporter's host need not have the receiver's plugins installed. ``doc`` is
    the spec as :func:`rules.spec.read_spec` loaded it.
    """
    raw = doc.data if isinstance(doc.data, Mapping) else {}
    sections: list[tuple[tuple[str | int, ...], Any]] = [(("defaults",), raw.get("defaults"))]
    sections += [(("pipelines", name), p) for name, p in (raw.get("pipelines") or {}).items()]
    problems: list[Problem] = []
    known: frozenset[str] | None = None  # read once: each read scans every installed package
    for path, entry in sections:
        if isinstance(entry, Mapping):
            named = _named_strategies(entry, path)
            if named:
                known = known if known is not None else known_strategies()
                problems.extend(_unknown_strategies(named, known, doc))
    return problems


def _named_strategies(
    entry: Mapping[str, Any], path: tuple[str | int, ...]
) -> list[tuple[tuple[str | int, ...], Any]]:
    """Return (field path, name) of every strategy a section names."""
    named: list[tuple[tuple[str | int, ...], Any]] = []
    recovery = entry.get("recovery")
    if isinstance(recovery, Mapping):
        named += [((*path, "recovery", cause), value) for cause, value in recovery.items()]
    actions = entry.get("actions")
    if isinstance(actions, Mapping):
        named += [((*path, "actions", key), key) for key in actions]
    return named


def _unknown_strategies(
    named: list[tuple[tuple[str | int, ...], Any]], known: frozenset[str], doc: Loaded
) -> Iterator[Problem]:
    """Name every strategy (a ``recovery`` value or an ``actions`` key) nobody provides."""
    for where, name in named:
        if not isinstance(name, str) or not _STRATEGY_NAME.match(name):
            continue  # the schema names that one already
        if name not in known:
            yield doc.problem(
                where,
                f"unknown strategy {name!r}: use one of {', '.join(sorted(known))}, "
                f"or install a plugin declaring it in entry point group {STRATEGY_ENTRY_POINTS}",
            )
