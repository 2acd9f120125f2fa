"""The ``command`` action: run an argv list from the spec, never through a shell.

The program and its arguments come from configuration only; the alert
reaches the command as environment variables (``PIPEMEDIC_PIPELINE``,
``PIPEMEDIC_ALERTNAME``, ``PIPEMEDIC_CAUSE``, ``PIPEMEDIC_STRATEGY``,
``PIPEMEDIC_INCIDENT_ID``, ``PIPEMEDIC_ATTEMPT``, and ``PIPEMEDIC_PARAM_<NAME>``
for strategy parameters), which a program reads as data. The environment is
otherwise minimal (``PATH``, ``HOME``, ``LANG``) plus ``PIPEMEDIC_ACTION_RUN``,
a token unique to this run. Output (stdout and stderr together) goes to a
temporary file, read up to a limit afterwards: no pipe is left for a
descendant to hold open. Exit 0 is success; 126/127 (cannot execute, not
found) are not retryable; any other exit status is.

On timeout the process group is killed, and so is every process still
carrying this run's token in its environment: a descendant that left the
group (``setsid``, a double fork) is found through ``/proc`` and killed too,
and reported as escaped in the outcome's detail, which reaches the timeline.
The step returns within its timeout plus a bounded grace
(``KILL_GRACE_SECONDS``) whatever its descendants do. A process that also
clears its environment escapes this sweep: run such programs under a service
manager instead.

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
import secrets
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from receiver.actions.base import (
    ActionConfigError,
    ActionContext,
    ActionOutcome,
    config_timeout,
)

__all__ = ["KILL_GRACE_SECONDS", "RUN_TOKEN_ENV", "CommandAction", "command_env"]

MAX_OUTPUT_BYTES = 4096
# How long a killed command may take to be reaped before the step returns anyway.
KILL_GRACE_SECONDS = 2.0
RUN_TOKEN_ENV = "PIPEMEDIC_ACTION_RUN"  # noqa: S105 (a variable name, not a secret)
_PROC = Path("/proc")
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


def _read_capped(out: IO[bytes], limit: int) -> str:
    """Return the first ``limit`` bytes of the captured output, saying how much was cut."""
    size = out.seek(0, os.SEEK_END)
    out.seek(0)
    text = out.read(limit).decode("utf-8", errors="replace")
    return f"{text}... [{size - limit} more bytes truncated]" if size > limit else text


def _kill_carriers(token: str, group: int) -> list[int]:
    """SIGKILL every process whose environment holds ``token``; return those outside ``group``."""
    needle = f"{RUN_TOKEN_ENV}={token}".encode()
    escaped: list[int] = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            pgid = os.getpgid(pid)
            os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):  # gone meanwhile, or not ours to read
            continue
        if pgid != group:
            escaped.append(pid)
    return sorted(escaped)


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
        token = secrets.token_hex(16)
        env = command_env(ctx)
        env[RUN_TOKEN_ENV] = token
        with tempfile.TemporaryFile(prefix="pipemedic-action-") as out:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    env=env,
                    cwd=self.cwd,
                    start_new_session=True,
                )
            except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
                return ActionOutcome("failure", False, f"cannot run {self.argv[0]!r}: {exc}")
            try:
                code = await asyncio.wait_for(proc.wait(), self.timeout)
            except TimeoutError:
                detail = await self._kill(proc, token)
                output = await asyncio.to_thread(_read_capped, out, MAX_OUTPUT_BYTES)
                return ActionOutcome("timeout", True, f"{detail}; output: {output}")
            output = await asyncio.to_thread(_read_capped, out, MAX_OUTPUT_BYTES)
        detail = f"exit {code}; output: {output}"
        if code == 0:
            return ActionOutcome("success", False, detail)
        return ActionOutcome("failure", code not in (126, 127), detail)

    async def _kill(self, proc: asyncio.subprocess.Process, token: str) -> str:
        """End the process group and every escaped carrier of ``token``; say what was done."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        escaped = await asyncio.to_thread(_kill_carriers, token, proc.pid)
        detail = f"killed after {self.timeout:g}s"
        if escaped:
            detail += f"; {len(escaped)} escaped process(es) killed (pid {escaped})"
        try:
            await asyncio.wait_for(proc.wait(), KILL_GRACE_SECONDS)
        except TimeoutError:
            detail += f"; not reaped within {KILL_GRACE_SECONDS:g}s"
        return detail
