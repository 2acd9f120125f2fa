"""Load third-party diagnosis handlers, actions and recovery strategies from entry points.

Each extension table of the receiver has one entry point group; the entry
point's name is the table key, its object is checked against the group's
Protocol before it is used::

    group                           name (table key)           object
    pipemedic.diagnosis_handlers    alert category label       async def f(probe) -> Finding | None
    pipemedic.actions               name in ``plugin: {name}``  (config, where) -> Action  (a class)
    pipemedic.recovery_strategies   strategy name in the spec  object with plan(diagnosis, spec)

A handler or strategy given as a class is instantiated with no arguments.

Loading is explicit: :func:`load_plugins` runs once when the receiver's app
is built (``receiver.app.create_app``), never at import time, and returns new
tables; the built-in ones are never changed. A broken plugin fails start-up:
:class:`PluginError` lists every problem with the entry point, the
distribution it came from and what is wrong. A receiver that runs without
the recovery an operator installed is worse than one that refuses to start.
A plugin may not take a built-in's name unless the operator allows exactly
that (``replace={"pipemedic.actions:http"}``).

Example::

    tables = load_plugins()
    tables.strategies["restart_dag"].plan(diagnosis, spec)
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from receiver.actions import ACTION_KINDS, PLUGIN_KEY, ActionFactory
from receiver.diagnosis import HANDLERS, Handler
from receiver.errors import PluginError, PluginProblem
from receiver.recovery.strategies import STRATEGIES, Strategy
from rules.errors import Problem, SpecError
from rules.spec import PipelineSpec, Spec
from rules.strategies import STRATEGY_ENTRY_POINTS
from rules.yamlpos import Path as FieldPath
from rules.yamlpos import dotted, line_index, line_of

__all__ = [
    "ACTIONS_GROUP",
    "HANDLERS_GROUP",
    "STRATEGIES_GROUP",
    "PluginError",
    "PluginProblem",
    "Tables",
    "builtin_tables",
    "check_spec",
    "load_plugins",
]

log = logging.getLogger(__name__)

HANDLERS_GROUP: Final = "pipemedic.diagnosis_handlers"
ACTIONS_GROUP: Final = "pipemedic.actions"
STRATEGIES_GROUP: Final = STRATEGY_ENTRY_POINTS

# Table keys appear as spec keys and metric label values: lowercase identifiers.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

EntryPoints = Callable[[str], Iterable[importlib.metadata.EntryPoint]]


@dataclass(frozen=True)
class Tables:
    """The receiver's extension tables: the built-ins merged with installed plugins."""

    handlers: Mapping[str, Handler]
    actions: Mapping[str, ActionFactory]
    strategies: Mapping[str, Strategy]
    loaded: tuple[str, ...] = ()  # "group:name from distribution", for the start-up log


def builtin_tables() -> Tables:
    """Return the built-in tables alone (no entry points looked at)."""
    return Tables(dict(HANDLERS), dict(ACTION_KINDS), dict(STRATEGIES))


def _entry_points(group: str) -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=group)


# checks ----------------------------------------------------------------------


def _arity_problem(func: Callable[..., Any], args: tuple[str, ...]) -> str | None:
    """Say why ``func`` cannot be called with ``args`` positionally, or None."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None  # a builtin without a signature: trust it
    try:
        signature.bind(*args)
    except TypeError as exc:
        return f"cannot be called as ({', '.join(args)}): signature {signature}: {exc}"
    return None


def _instance(obj: object, what: str) -> tuple[object, str | None]:
    """Instantiate a class with no arguments; other objects pass through."""
    if not inspect.isclass(obj):
        return obj, None
    try:
        return obj(), None
    except Exception as exc:
        return obj, f"{what} class {obj.__name__} cannot be built with no arguments: {exc}"


def _is_async(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - an instance with async __call__
    )


def _check_handler(obj: object) -> tuple[object, str | None]:
    """A handler: ``async def (probe) -> Finding | None`` (or an instance of such a class)."""
    obj, problem = _instance(obj, "handler")
    if problem:
        return obj, problem
    if not callable(obj):
        return obj, f"is a {type(obj).__name__}, not callable (want async def f(probe))"
    if not _is_async(obj):
        return obj, "is not async (want async def f(probe) -> Finding | None)"
    return obj, _arity_problem(obj, ("probe",))


def _check_action(obj: object) -> tuple[object, str | None]:
    """An action factory: ``(config, where) -> Action``; a class also needs ``async run(ctx)``."""
    if not callable(obj):
        return obj, f"is a {type(obj).__name__}, not callable (want a class (config, where))"
    problem = _arity_problem(obj, ("config", "where"))
    if problem or not inspect.isclass(obj):
        return obj, problem
    run = getattr(obj, "run", None)
    if not callable(run) or not inspect.iscoroutinefunction(run):
        return obj, f"class {obj.__name__} has no async method run(self, ctx)"
    return obj, _arity_problem(run, ("self", "ctx"))


def _check_strategy(obj: object) -> tuple[object, str | None]:
    """A strategy: an object (or class) whose ``plan(diagnosis, spec)`` returns a StepPlan."""
    obj, problem = _instance(obj, "strategy")
    if problem:
        return obj, problem
    plan = getattr(obj, "plan", None)
    if not callable(plan):
        return obj, f"{type(obj).__name__} has no method plan(diagnosis, spec)"
    if inspect.iscoroutinefunction(plan):
        return obj, "plan(diagnosis, spec) must be a plain method, not async"
    return obj, _arity_problem(plan, ("diagnosis", "spec"))


@dataclass(frozen=True)
class _Group:
    """One entry point group: the table it extends and how its objects are checked."""

    name: str
    builtins: Mapping[str, object]
    check: Callable[[object], tuple[object, str | None]]
    reserved: frozenset[str] = frozenset()


# entry point group -> the built-in table it extends. One line per table.
_GROUPS: Final[tuple[_Group, ...]] = (
    _Group(HANDLERS_GROUP, HANDLERS, _check_handler),
    _Group(ACTIONS_GROUP, ACTION_KINDS, _check_action, frozenset({PLUGIN_KEY, "dry_run"})),
    _Group(STRATEGIES_GROUP, STRATEGIES, _check_strategy, frozenset({"escalate"})),
)


def _distribution(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "unknown"
    return f"{dist.name} {dist.version}"


def _load_group(
    group: _Group, found: Iterable[importlib.metadata.EntryPoint], replace: Collection[str]
) -> tuple[dict[str, object], list[str], list[PluginProblem]]:
    """Load and check one group's entry points; return the merged table, names, problems."""
    table: dict[str, object] = dict(group.builtins)
    owner: dict[str, str] = {}
    loaded: list[str] = []
    problems: list[PluginProblem] = []
    for ep in sorted(found, key=lambda e: (e.name, e.value)):
        dist = _distribution(ep)

        def problem(message: str, ep: importlib.metadata.EntryPoint = ep, dist: str = dist) -> None:
            problems.append(PluginProblem(group.name, ep.name, ep.value, dist, message))

        if not _NAME.match(ep.name):
            problem("the name must be a lowercase identifier ([a-z][a-z0-9_]*)")
            continue
        if ep.name in group.reserved:
            problem(f"the name {ep.name!r} is reserved")
            continue
        if ep.name in owner:
            problem(f"the name is also registered by distribution {owner[ep.name]}")
            continue
        if ep.name in group.builtins and f"{group.name}:{ep.name}" not in replace:
            problem(
                f"would replace the built-in {ep.name!r}; allow it explicitly "
                f"with replace={{'{group.name}:{ep.name}'}}"
            )
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # third-party import: any error is the plugin's
            problem(f"cannot be loaded: {type(exc).__name__}: {exc}")
            continue
        obj, message = group.check(obj)
        if message is not None:
            problem(message)
            continue
        owner[ep.name] = dist
        table[ep.name] = obj
        loaded.append(f"{group.name}:{ep.name} from {dist}")
    return table, loaded, problems


def load_plugins(
    *, replace: Collection[str] = (), entry_points: EntryPoints = _entry_points
) -> Tables:
    """Return the built-in tables extended by every installed entry point.

    ``replace`` names built-ins a plugin may take over, as ``group:name``.
    ``entry_points`` looks up one group (the seam for other sources; the
    default asks ``importlib.metadata`` afresh). Raises :class:`PluginError`
    listing every broken entry point; nothing is half-loaded.
    """
    tables: list[dict[str, object]] = []
    loaded: list[str] = []
    problems: list[PluginProblem] = []
    for group in _GROUPS:
        table, names, found = _load_group(group, entry_points(group.name), replace)
        tables.append(table)
        loaded += names
        problems += found
    if problems:
        raise PluginError(problems)
    for name in loaded:
        log.info("plugin loaded: %s", name)
    handlers, actions, strategies = tables
    return Tables(
        handlers=cast(dict[str, Handler], handlers),
        actions=cast(dict[str, ActionFactory], actions),
        strategies=cast(dict[str, Strategy], strategies),
        loaded=tuple(loaded),
    )


# the spec against the tables -------------------------------------------------


def _spec_refs(spec: Spec) -> Iterable[tuple[FieldPath, str, str]]:
    """Yield (field path, kind, name) for each strategy and plugin action the spec names.

    A pipeline's entries inherited unchanged from ``defaults`` are named once,
    under ``defaults``.
    """
    sections: list[tuple[FieldPath, PipelineSpec]] = [(("defaults",), spec.defaults)]
    sections += [(("pipelines", name), p) for name, p in spec.pipelines.items()]
    defaults = spec.defaults
    for base, p in sections:
        inherited = p is not defaults
        for cause, strategy in p.recovery.items():
            if not (inherited and defaults.recovery.get(cause) == strategy):
                yield (*base, "recovery", cause), "strategy", strategy
        for strategy, action in p.actions.items():
            if inherited and defaults.actions.get(strategy) == action:
                continue
            yield (*base, "actions", strategy), "strategy", strategy
            plugin = action.get(PLUGIN_KEY)
            if isinstance(plugin, Mapping):
                name = plugin.get("name")
                yield (*base, "actions", strategy, PLUGIN_KEY, "name"), "action", str(name)


def check_spec(spec: Spec, tables: Tables) -> None:
    """Raise ``SpecError`` (file:line: field.path) for strategies or actions not installed.

    The schema accepts any well-formed strategy or plugin action name, since
    plugins are installed per receiver; whether it exists is known only here.
    """
    installed = {"strategy": tables.strategies, "action": tables.actions}
    group = {"strategy": STRATEGIES_GROUP, "action": ACTIONS_GROUP}
    missing = [
        (path, kind, name)
        for path, kind, name in _spec_refs(spec)
        if name != "escalate" and name not in installed[kind]
    ]
    if not missing:
        return
    index: Mapping[FieldPath, int] = {}
    source = Path(spec.source)
    if source.is_file():
        index = line_index(source.read_text(encoding="utf-8"))
    problems = [
        Problem(
            spec.source,
            line_of(index, path) if index else 0,
            dotted(path),
            f"no {kind} {name!r} is installed (known: {', '.join(sorted(installed[kind]))}; "
            f"plugins come from entry points in group {group[kind]})",
        )
        for path, kind, name in missing
    ]
    raise SpecError(problems)
