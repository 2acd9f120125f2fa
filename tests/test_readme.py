"""README.md's commands and examples are real: every one parses or validates.

The commands themselves run in other tests (rules, exporter, receiver,
incidents CLI, demo); this keeps the README from drifting away from them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml

from exporters import parse_events
from pipemedic.cli import build_parser
from pipemedic.stack import free_port
from receiver.actions import HttpAction
from receiver.config import parse_config
from receiver.plugins import (
    ACTIONS_GROUP,
    HANDLERS_GROUP,
    STRATEGIES_GROUP,
    Tables,
    builtin_tables,
    check_spec,
)
from receiver.recovery.strategies import RetryWithBackoff
from rules.errors import SpecError
from rules.spec import parse_spec

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S)


def _commands(prefix: str) -> list[str]:
    found = []
    for lang, body in BLOCKS:
        if lang != "sh":
            continue
        for line in body.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith(prefix + " "):
                found.append(line)
    found += re.findall(r"`(pipemedic [^`]+)`", README) if prefix == "pipemedic" else []
    return sorted(set(found))


@pytest.mark.parametrize("command", _commands("pipemedic"))
def test_every_pipemedic_command_in_the_readme_parses(command: str) -> None:
    argv = shlex.split(command)[1:]
    args = build_parser().parse_args(argv)
    assert callable(args.func)


@pytest.mark.parametrize("command", _commands("make"))
def test_every_make_target_in_the_readme_exists(command: str) -> None:
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    target = shlex.split(command)[1]
    assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), target


def test_the_readme_receiver_config_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (config_yaml,) = [body for lang, body in BLOCKS if lang == "yaml" and "prometheus_url" in body]
    token = tmp_path / "receiver.token"
    token.write_text("s3cret\n")
    monkeypatch.setenv("PIPEMEDIC_RECEIVER_PASSWORD", "hunter2")
    config_yaml = config_yaml.replace("/etc/pipemedic/receiver.token", str(token))
    config = parse_config(yaml.safe_load(config_yaml), "README.md")
    assert config.auth.bearer_token == "s3cret"
    assert config.auth.basic_password == "hunter2"
    assert config.store_url.startswith("sqlite:///")
    assert config.auth.basic_username == "alertmanager"


def test_the_readme_event_example_is_valid() -> None:
    (event_json,) = [body for lang, body in BLOCKS if lang == "json"]
    ((_path, event),) = parse_events(event_json.encode())
    assert event["event"] == "run_finished"
    assert event["pipeline"] == "etl_orders"


def test_the_readme_python_examples_compile() -> None:
    for lang, body in BLOCKS:
        if lang == "python":
            compile(body, "README.md", "exec")


def test_the_readme_plugin_example_is_what_the_receiver_loads() -> None:
    (pyproject,) = [body for lang, body in BLOCKS if lang == "toml"]
    groups = tomllib.loads(pyproject)["project"]["entry-points"]
    assert set(groups) == {HANDLERS_GROUP, ACTIONS_GROUP, STRATEGIES_GROUP}
    for names in groups.values():
        for name, value in names.items():
            assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
            assert re.fullmatch(r"[a-z_][a-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*", value), value
    (spec_yaml,) = [body for lang, body in BLOCKS if lang == "yaml" and "plugin:" in body]
    spec = parse_spec(spec_yaml, "README.md")
    builtin = builtin_tables()
    installed = Tables(
        handlers=builtin.handlers,
        actions={**builtin.actions, **dict.fromkeys(groups[ACTIONS_GROUP], HttpAction)},
        strategies={
            **builtin.strategies,
            **dict.fromkeys(groups[STRATEGIES_GROUP], RetryWithBackoff()),
        },
    )
    check_spec(spec, installed)  # every name the spec uses is one the toml installs
    missing = "pipelines.stream_clicks.recovery.consumer_lag: no strategy 'restart_consumer'"
    with pytest.raises(SpecError, match=re.escape(missing)):
        check_spec(spec, builtin)


# --- the quick start, run as written ------------------------------------------------------

# `<!-- file: PATH -->` before a fenced block: the reader writes that file;
# `<!-- runnable -->`: a shell block to run as is; `<!-- runnable: servers -->`: one
# long-running server a line (a terminal each), started in the background.
MARKED = re.compile(r"<!-- (runnable|runnable: servers|file: (\S+)) -->\n```\w*\n(.*?)```", re.S)
# The deployment's ports, moved to free ones so the run cannot clash with anything else
# on this machine (a real deployment, another test): everything else runs verbatim.
DEPLOYMENT_PORT = re.compile(r"127\.0\.0\.1:(9090|9093|9099|9108|9110)\b")


def _moved(text: str, ports: dict[str, int]) -> str:
    return DEPLOYMENT_PORT.sub(lambda m: f"127.0.0.1:{ports[m.group(1)]}", text)


def _wait_healthy(proc: subprocess.Popen[bytes], line: str, log: Path) -> None:
    """Wait until the server of ``line`` answers ``/-/healthy``; fail with its log otherwise."""
    port = re.search(r"127\.0\.0\.1:(\d+)", line)
    assert port is not None, line
    url = f"http://127.0.0.1:{port.group(1)}/-/healthy"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{line}\nexited {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{line}\nnot healthy after 120 s:\n{log.read_text()}")
        time.sleep(0.2)


def _stop(servers: list[subprocess.Popen[bytes]]) -> None:
    for proc in servers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in servers:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_the_quick_start_has_its_steps_marked() -> None:
    kinds = [m.group(1).split(":")[0] for m in MARKED.finditer(README)]
    files = [m.group(2) for m in MARKED.finditer(README) if m.group(2)]
    assert files == ["rules/pipelines.yml", "prometheus.yml", "alertmanager.yml"]
    assert kinds.count("runnable") >= 4
    (servers,) = [m.group(3) for m in MARKED.finditer(README) if m.group(1).endswith("servers")]
    assert [line.split()[0] for line in servers.splitlines()] == [
        "pipemedic",
        "pipemedic",
        "prometheus",
        "prometheus-alertmanager",
    ]
    assert "--cluster.listen-address= " in servers


@pytest.mark.slow
def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    """Write the README's files, run its runnable blocks in order, its servers in between."""
    ports = {p: free_port() for p in ("9090", "9093", "9099", "9108", "9110")}
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for n, match in enumerate(MARKED.finditer(README)):
            kind, path, body = match.group(1), match.group(2), _moved(match.group(3), ports)
            if path:
                (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / path).write_text(body, encoding="utf-8")
            elif kind == "runnable":
                res = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", body],
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                assert res.returncode == 0, f"{body}\n{res.stdout}\n{res.stderr}"
            else:
                for i, line in enumerate(body.splitlines()):
                    log = tmp_path / f"server-{n}-{i}.log"
                    with log.open("wb") as out:
                        proc = subprocess.Popen(
                            ["bash", "-c", f"exec {line}"],
                            cwd=tmp_path,
                            env=env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            start_new_session=True,
                        )
                    servers.append(proc)
                    _wait_healthy(proc, line, log)
        (receiver_log,) = tmp_path.glob("server-*-1.log")  # the receiver: the second server
        assert "spec loaded" in receiver_log.read_text()
    finally:
        _stop(servers)
