"""The demo's closing lines: the exact commands to look at what it did, and to stop it.

A newcomer's next step after the summary is to list the incidents, open the
page and stop the stack; the commands carry this run's real ports
(``--free-ports`` picks new ones each run), so they work when pasted.
:func:`while_running` is printed when ``--keep-running`` leaves the stack up,
:func:`after_stop` once everything is stopped (the receiver's SQLite store
stays in the run folder and ``--store`` reads it without a receiver).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from pipemedic.demo.configs import Ports

__all__ = ["after_stop", "while_running"]


def _cmd(*argv: str) -> str:
    return shlex.join(argv)


def while_running(ports: Ports, incident: int | None, pid: int) -> list[str]:
    """Return the lines printed while ``--keep-running`` keeps the stack up."""
    receiver = f"http://{ports.address('receiver')}"
    shown = str(incident or 1)
    return [
        "the stack keeps running; from another terminal:",
        "  " + _cmd("pipemedic", "incidents", "list", "--url", receiver),
        "  " + _cmd("pipemedic", "incidents", "show", shown, "--url", receiver),
        "  " + _cmd("pipemedic", "incidents", "postmortem", shown, "--url", receiver),
        f"  the incident page   {receiver}/",
        f"  Prometheus alerts   http://{ports.address('prometheus')}/alerts",
        f"  Alertmanager        http://{ports.address('alertmanager')}/",
        f"  pipeline metrics    http://{ports.address('exporter')}/metrics",
        f"to stop it: Ctrl-C here, or `kill -INT {pid}` from another terminal",
    ]


def after_stop(store_url: str, incident: int | None, output: Path, free_ports: bool) -> list[str]:
    """Return the lines printed once every server is stopped."""
    shown = str(incident or 1)
    again = ["pipemedic", "demo", *(["--free-ports"] if free_ports else [])]
    if output != Path("demo-output"):
        again += ["--output", str(output)]
    return [
        "the incidents stay in the receiver's store; without a receiver:",
        "  " + _cmd("pipemedic", "incidents", "list", "--store", store_url),
        "  " + _cmd("pipemedic", "incidents", "show", shown, "--store", store_url),
        "to browse the page, Prometheus and Alertmanager, keep the stack up:",
        "  " + _cmd(*again, "--keep-running"),
    ]
