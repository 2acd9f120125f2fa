"""The ``python`` action: call ``package.module:function`` with the action context.

The callable may be sync or async. It receives the
:class:`~receiver.actions.base.ActionContext` and returns ``None`` or ``True``
(success), ``False`` (failure, retryable), or an
:class:`~receiver.actions.base.ActionOutcome`; an exception is a retryable
failure. A sync callable runs in a worker thread so its timeout can be
enforced (the thread itself cannot be stopped; it is abandoned).

Spec example::

    actions:
      refresh_credentials:
        python: {callable: "etl.creds:refresh", timeout: 30s}
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

from receiver.actions.base import (
    ActionConfigError,
    ActionContext,
    ActionOutcome,
    config_timeout,
    truncate,
)

__all__ = ["PythonAction", "resolve_callable"]

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")


def resolve_callable(path: str, where: str) -> Callable[..., Any]:
    """Import ``module:name`` and return the callable; errors name the field path."""
    if not _DOTTED.match(path):
        raise ActionConfigError(f"{where}.callable: {path!r} is not 'package.module:function'")
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ActionConfigError(f"{where}.callable: cannot import {module_name!r}: {exc}") from None
    target: object = getattr(module, attr, None)
    if not callable(target):
        raise ActionConfigError(f"{where}.callable: {path!r} is not a callable")
    func: Callable[..., Any] = target
    return func


class PythonAction:
    """Call a configured Python function once, sync or async, with a timeout."""

    def __init__(self, config: Mapping[str, Any], where: str = "action.python") -> None:
        path = config.get("callable")
        if not isinstance(path, str):
            raise ActionConfigError(f"{where}.callable: required, 'package.module:function'")
        self.func = resolve_callable(path, where)
        self.timeout = config_timeout(config, where, 60.0)
        self.target = f"python {path}"
        self.summary = f"call {path} (timeout {self.timeout:g}s)"

    async def run(self, ctx: ActionContext) -> ActionOutcome:
        """Call the function and translate what it returned."""
        try:
            if inspect.iscoroutinefunction(self.func):
                result = await asyncio.wait_for(self.func(ctx), self.timeout)
            else:
                result = await asyncio.wait_for(asyncio.to_thread(self.func, ctx), self.timeout)
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, self.timeout)
        except TimeoutError:
            return ActionOutcome("timeout", True, f"no return within {self.timeout:g}s")
        except Exception as exc:
            return ActionOutcome("failure", True, truncate(f"{type(exc).__name__}: {exc}"))
        if isinstance(result, ActionOutcome):
            return result
        if result is None or result is True:
            return ActionOutcome("success", False, "returned")
        if result is False:
            return ActionOutcome("failure", True, "returned False")
        return ActionOutcome("success", False, truncate(f"returned {result!r}", 1000))
