"""``pipemedic receiver``: which spec it runs with, and that it says so at start-up."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from receiver.config import DEFAULT_SPEC, resolve_spec_path

REPO = Path(__file__).resolve().parents[2]
_SPEC = """\
pipelines:
  etl_orders: {sla: 30m, team: data-platform}
  etl_users: {}
teams:
  data-platform: {commander: alice}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_up_log(cwd: Path, *args: str) -> list[dict[str, Any]]:
    """Start the receiver in ``cwd``, read its JSON log up to 'receiver listening', stop it."""
    (cwd / "receiver.yml").write_text(
        f"store: sqlite:///{cwd / 'r.db'}\nprometheus_url: http://127.0.0.1:9\n"
        + "".join(f"{line}\n" for line in args if line.startswith("spec: "))
    )
    flags = [a for a in args if not a.startswith("spec: ")]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipemedic",
            "--log-format",
            "json",
            "receiver",
            "--config",
            "receiver.yml",
            "--listen",
            f"127.0.0.1:{_free_port()}",
            *flags,
        ],
        cwd=cwd,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.stderr is not None
    stderr = proc.stderr
    lines: list[dict[str, Any]] = []
    try:
        # a hang guard, not a timed assertion: the line comes within a second normally
        ready = select.select([stderr], [], [], 60)[0]
        while ready and (raw := stderr.readline()):
            lines.append(json.loads(raw))
            if lines[-1].get("msg") == "receiver listening":
                break
            ready = select.select([stderr], [], [], 60)[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert lines and lines[-1].get("msg") == "receiver listening", lines
    return lines


def test_the_flag_wins_then_the_config_then_the_working_folders_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_spec_path("a.yml", "b.yml") == "a.yml"
    assert resolve_spec_path(None, "b.yml") == "b.yml"
    assert resolve_spec_path(None, None) is None  # an empty folder


def test_the_working_folders_spec_is_used_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules").mkdir()
    (tmp_path / DEFAULT_SPEC).write_text(_SPEC)
    assert resolve_spec_path(None, None) == DEFAULT_SPEC


def test_start_up_names_the_spec_given_by_flag(tmp_path: Path) -> None:
    (tmp_path / "mine.yml").write_text(_SPEC)
    (tmp_path / "other.yml").write_text("pipelines: {}\n")
    lines = _start_up_log(tmp_path, "--spec", "mine.yml", "spec: other.yml")
    loaded = [line for line in lines if line.get("msg") == "spec loaded"]
    assert len(loaded) == 1
    assert (loaded[0]["spec"], loaded[0]["pipelines"], loaded[0]["teams"]) == ("mine.yml", 2, 1)


def test_start_up_loads_rules_pipelines_yml_from_the_working_folder(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / DEFAULT_SPEC).write_text(_SPEC)
    lines = _start_up_log(tmp_path)
    loaded = [line for line in lines if line.get("msg") == "spec loaded"]
    assert [line["spec"] for line in loaded] == [DEFAULT_SPEC]


def test_start_up_says_what_running_without_a_spec_means(tmp_path: Path) -> None:
    lines = _start_up_log(tmp_path)
    warnings = [line for line in lines if line.get("msg", "").startswith("no spec")]
    assert len(warnings) == 1
    assert warnings[0]["level"] == "warning"
    assert "incidents escalate" in warnings[0]["msg"]
