"""The ``command`` action: run an argv list from the spec, never through a shell.

The program and its arguments come from configuration only; the alert
reaches the command as environment variables (``PIPEMEDIC_PIPELINE``,
``PIPEMEDIC_ALERTNAME``, ``PIPEMEDIC_CAUSE``, ``PIPEMEDIC_STRATEGY``,
``PIPEMEDIC_INCIDENT_ID``, ``PIPEMEDIC_ATTEMPT``, and ``PIPEMEDIC_PARAM_<NAME>``
for strategy parameters), which a program reads as data. The environment is
otherwise minimal (``PATH``, ``HOME``, ``LANG``). Output (stdout and stderr
together) is captured up to a limit; on timeout the whole process group is
killed. Exit 0 is success; 126/127 (cannot execute, not found) are not
retryable; any other exit status is.

Spec example::

    actions:
      rollback_to_checkpoint:
        command: {argv: ["/opt/etl/rollback", "--to-last-checkpoint"], timeout: 5m}
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Mapping
from typing import Any

from receiver.actions.base import (
    ActionConfigError,
    ActionContext,
    ActionOutcome,
    config_timeout,
)

__all__ = ["CommandAction", "command_env"]

MAX_OUTPUT_BYTES = 4096
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
_PARAM_NAME = re.compile(r"[^A-Z0-9_]")


def _env_value(value: str) -> str:
    # the one character an environment value cannot hold
    return value.replace("\x00", "")


def command_env(ctx: ActionContext) -> dict[str, str]:
    """Return the command's whole environment: a minimal base plus the alert as data."""
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(
        {
            "PIPEMEDIC_INCIDENT_ID": str(ctx.incident_id),
            "PIPEMEDIC_PIPELINE": _env_value(ctx.pipeline),
            "PIPEMEDIC_ALERTNAME": _env_value(ctx.alertname),
            "PIPEMEDIC_CAUSE": _env_value(ctx.cause),
            "PIPEMEDIC_STRATEGY": _env_value(ctx.strategy),
            "PIPEMEDIC_ATTEMPT": str(ctx.attempt),
        }
    )
    for name, value in ctx.params.items():
        env[f"PIPEMEDIC_PARAM_{_PARAM_NAME.sub('_', name.upper())}"] = _env_value(value)
    return env


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, int]:
    """Read a stream to its end, keeping the first ``limit`` bytes; count the rest."""
    kept = bytearray()
    dropped = 0
    while chunk := await stream.read(65536):
        room = limit - len(kept)
        kept += chunk[:room]
        dropped += max(0, len(chunk) - room)
    return bytes(kept), dropped


class CommandAction:
    """Run a fixed argv with a timeout; the alert goes in as environment variables."""

    def __init__(self, config: Mapping[str, Any], where: str = "action.command") -> None:
        argv = config.get("argv")
        if (
            not isinstance(argv, list | tuple)
            or not argv
            or not all(isinstance(a, str) and "\x00" not in a for a in argv)
        ):
            raise ActionConfigError(f"{where}.argv: must be a non-empty list of strings")
        cwd = config.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise ActionConfigError(f"{where}.cwd: must be a path string")
        self.argv = tuple(argv)
        self.cwd = cwd
        self.timeout = config_timeout(config, where, 300.0)
        self.target = f"command {self.argv[0]}"
        self.summary = f"run {list(self.argv)} (timeout {self.timeout:g}s)"

    async def run(self, ctx: ActionContext) -> ActionOutcome:
        """Run the command once and judge its exit status."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=command_env(ctx),
                cwd=self.cwd,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            return ActionOutcome("failure", False, f"cannot run {self.argv[0]!r}: {exc}")
        assert proc.stdout is not None
        reader = asyncio.ensure_future(_read_capped(proc.stdout, MAX_OUTPUT_BYTES))
        try:
            code = await asyncio.wait_for(proc.wait(), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            output = await self._output(reader)
            return ActionOutcome(
                "timeout", True, f"killed after {self.timeout:g}s; output: {output}"
            )
        output = await self._output(reader)
        detail = f"exit {code}; output: {output}"
        if code == 0:
            return ActionOutcome("success", False, detail)
        return ActionOutcome("failure", code not in (126, 127), detail)

    async def _output(self, reader: asyncio.Future[tuple[bytes, int]]) -> str:
        try:
            kept, dropped = await asyncio.wait_for(reader, 5.0)
        except TimeoutError:  # a grandchild still holds the pipe open
            reader.cancel()
            return "(output not collected: pipe held open)"
        text = kept.decode("utf-8", errors="replace")
        return f"{text}... [{dropped} more bytes truncated]" if dropped else text
