"""README.md's commands and examples are real: every one parses or validates.

The commands themselves run in other tests (rules, exporter, receiver,
incidents CLI, demo); this keeps the README from drifting away from them.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from exporters import parse_events
from pipemedic.cli import build_parser
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
