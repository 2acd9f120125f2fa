"""Recovery actions: ``http``, ``command`` and ``python``, one module each.

A pipeline's spec names, per strategy, one action object with exactly one
kind key (schema ``$defs.action``) and an optional ``dry_run``. Adding a kind
is a module with a class ``(config, where) -> Action`` and one line in
:data:`ACTION_KINDS`.

Example::

    action, dry_run = build_action(spec.actions["retry_with_backoff"],
                                   "pipelines.etl_orders.actions.retry_with_backoff")
    outcome = await action.run(ctx)      # ActionOutcome("success", retryable=False, ...)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from receiver.actions.base import Action, ActionConfigError, ActionContext, ActionOutcome
from receiver.actions.command import CommandAction
from receiver.actions.http import HttpAction
from receiver.actions.python import PythonAction

__all__ = [
    "ACTION_KINDS",
    "Action",
    "ActionConfigError",
    "ActionContext",
    "ActionOutcome",
    "CommandAction",
    "HttpAction",
    "PythonAction",
    "build_action",
]

# action kind (the key in the spec) -> constructor taking (config, field path)
ACTION_KINDS: Final[dict[str, Callable[[Mapping[str, Any], str], Action]]] = {
    "http": HttpAction,
    "command": CommandAction,
    "python": PythonAction,
}


def build_action(config: Mapping[str, Any], where: str) -> tuple[Action, bool]:
    """Return the configured action and its own ``dry_run`` flag.

    ``ActionConfigError`` names the field path when the kind is missing,
    ambiguous or its settings are unusable.
    """
    kinds = [k for k in config if k != "dry_run"]
    unknown = [k for k in kinds if k not in ACTION_KINDS]
    if unknown:
        raise ActionConfigError(
            f"{where}: unknown action kind {unknown[0]!r} (known: {', '.join(ACTION_KINDS)})"
        )
    if len(kinds) != 1:
        raise ActionConfigError(
            f"{where}: needs exactly one of {', '.join(ACTION_KINDS)}, got {kinds or 'none'}"
        )
    kind = kinds[0]
    settings = config[kind]
    if not isinstance(settings, Mapping):
        raise ActionConfigError(f"{where}.{kind}: must be a mapping")
    return ACTION_KINDS[kind](settings, f"{where}.{kind}"), bool(config.get("dry_run", False))
