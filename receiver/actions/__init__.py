"""Recovery actions: ``http``, ``command`` and ``python``, one module each.

A pipeline's spec names, per strategy, one action object with exactly one
kind key (schema ``$defs.action``) and an optional ``dry_run``. Adding a kind
is a module with a class ``(config, where) -> Action`` and one line in
:data:`ACTION_KINDS`. Third-party kinds are entry points in the group
``pipemedic.actions`` (loaded by ``receiver.plugins``), configured as
``plugin: {name: <entry point name>, config: {...}}``.

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
    "PLUGIN_KEY",
    "Action",
    "ActionConfigError",
    "ActionContext",
    "ActionFactory",
    "ActionOutcome",
    "CommandAction",
    "HttpAction",
    "PythonAction",
    "build_action",
]

# The spec key of an installed (entry point) action: ``plugin: {name: ..., config: {...}}``.
PLUGIN_KEY: Final = "plugin"

# What builds an action: ``(settings from the spec, field path for errors) -> Action``.
ActionFactory = Callable[[Mapping[str, Any], str], Action]

# action kind (the key in the spec) -> constructor taking (config, field path)
ACTION_KINDS: Final[dict[str, ActionFactory]] = {
    "http": HttpAction,
    "command": CommandAction,
    "python": PythonAction,
}


def build_action(
    config: Mapping[str, Any], where: str, table: Mapping[str, ActionFactory] = ACTION_KINDS
) -> tuple[Action, bool]:
    """Return the configured action and its own ``dry_run`` flag.

    ``table`` is the receiver's action table (built-ins plus installed
    plugins, see ``receiver.plugins``). ``ActionConfigError`` names the field
    path when the kind is missing, ambiguous or its settings are unusable.
    """
    known = [*ACTION_KINDS, PLUGIN_KEY]
    kinds = [k for k in config if k not in ("dry_run", "approval")]
    unknown = [k for k in kinds if k not in known]
    if unknown:
        raise ActionConfigError(
            f"{where}: unknown action kind {unknown[0]!r} (known: {', '.join(known)})"
        )
    if len(kinds) != 1:
        raise ActionConfigError(
            f"{where}: needs exactly one of {', '.join(known)}, got {kinds or 'none'}"
        )
    kind = kinds[0]
    settings = config[kind]
    if not isinstance(settings, Mapping):
        raise ActionConfigError(f"{where}.{kind}: must be a mapping")
    dry_run = bool(config.get("dry_run", False))
    if kind == PLUGIN_KEY:
        return _build_plugin(settings, f"{where}.{kind}", table), dry_run
    return table[kind](settings, f"{where}.{kind}"), dry_run


def _build_plugin(
    settings: Mapping[str, Any], where: str, table: Mapping[str, ActionFactory]
) -> Action:
    """Build ``plugin: {name, config}`` with the installed action of that name.

    A plugin is third-party code: whatever it raises, or an object that is
    not an action, becomes an ``ActionConfigError`` naming the field path.
    """
    name = settings.get("name")
    plugins = sorted(set(table) - set(ACTION_KINDS))
    if not isinstance(name, str) or name not in table:
        installed = ", ".join(plugins) or "none installed"
        raise ActionConfigError(
            f"{where}.name: no action plugin {name!r} "
            f"(entry points in group pipemedic.actions: {installed})"
        )
    config = settings.get("config", {})
    if not isinstance(config, Mapping):
        raise ActionConfigError(f"{where}.config: must be a mapping")
    try:
        action = table[name](config, f"{where}.config")
    except ActionConfigError:
        raise
    except Exception as exc:
        raise ActionConfigError(
            f"{where}.config: action plugin {name!r} refused it: {type(exc).__name__}: {exc}"
        ) from exc
    if not (
        isinstance(getattr(action, "target", None), str)
        and isinstance(getattr(action, "summary", None), str)
        and callable(getattr(action, "run", None))
    ):
        raise ActionConfigError(
            f"{where}: action plugin {name!r} built {type(action).__name__}, "
            "not an Action (needs str target, str summary and async run(ctx))"
        )
    return action
