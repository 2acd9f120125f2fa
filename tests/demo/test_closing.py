"""The demo's closing lines name this run's real ports and parse as ``pipemedic`` commands.

``tests/demo/test_demo_e2e.py`` runs the printed commands against a real demo;
this checks every variant (kept running or not, free ports, another output folder).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from pipemedic.cli import build_parser
from pipemedic.demo.closing import after_stop, while_running
from pipemedic.demo.configs import Ports


def _parsed(lines: list[str]) -> list[list[str]]:
    commands = [shlex.split(line) for line in lines if line.strip().startswith("pipemedic ")]
    parser = build_parser()
    for argv in commands:
        assert callable(parser.parse_args(argv[1:]).func), argv
    return commands


PORTS = Ports(exporter=41001, receiver=41002, prometheus=41003, alertmanager=41004)


def test_while_running_lists_shows_and_stops_with_the_real_ports() -> None:
    lines = while_running(PORTS, 7, pid=4242)
    commands = _parsed(lines)
    assert [c[:3] for c in commands] == [
        ["pipemedic", "incidents", "list"],
        ["pipemedic", "incidents", "show"],
        ["pipemedic", "incidents", "postmortem"],
    ]
    assert all(c[-2:] == ["--url", "http://127.0.0.1:41002"] for c in commands)
    assert commands[1][3] == "7"
    text = "\n".join(lines)
    assert "http://127.0.0.1:41002/" in text  # the page
    assert "http://127.0.0.1:41003/alerts" in text and "http://127.0.0.1:41004/" in text
    assert "Ctrl-C" in text and "kill -INT 4242" in text


def test_after_stop_reads_the_store_and_repeats_the_run_kept_up() -> None:
    store = "sqlite:////tmp/a dir/run/receiver.db"
    lines = after_stop(store, None, Path("elsewhere"), free_ports=True)
    commands = _parsed(lines)
    assert commands[0] == ["pipemedic", "incidents", "list", "--store", store]
    assert commands[1] == ["pipemedic", "incidents", "show", "1", "--store", store]
    assert commands[2] == [
        "pipemedic",
        "demo",
        "--free-ports",
        "--output",
        "elsewhere",
        "--keep-running",
    ]
    default = _parsed(after_stop(store, 3, Path("demo-output"), free_ports=False))
    assert default[1][3] == "3"
    assert default[2] == ["pipemedic", "demo", "--keep-running"]
