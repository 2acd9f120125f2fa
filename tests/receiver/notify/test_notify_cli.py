"""``pipemedic notify test --team T`` sends to each destination and reports each."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipemedic.cli import main
from pipemedic.sinks import ChatSink


def test_notify_test_reports_per_destination(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ChatSink() as chat:
        spec = tmp_path / "spec.yml"
        spec.write_text(
            "teams:\n  t:\n    commander: Ada\n    notify:\n"
            f'      - url: "json://{chat.address}/${{HOOK_PATH}}"\n'
            '      - url: "json://127.0.0.1:9/down"\n'
        )
        monkeypatch.setenv("HOOK_PATH", "secret-path")
        code = main(["notify", "test", "--team", "t", "--spec", str(spec)])
    out = capsys.readouterr().out
    assert code == 1  # one destination is down
    lines = out.splitlines()
    assert lines[0] == "teams.t.notify[0] (json): sent"
    assert lines[1].startswith("teams.t.notify[1] (json): failed")
    assert "secret-path" not in out
    assert chat.paths == ["/secret-path"]
    assert "test message for team t" in chat.posts[0]["message"]


def test_notify_test_names_an_unknown_team_and_a_missing_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_text(
        'teams:\n  t:\n    notify:\n      - url: "json://127.0.0.1:9/${NOT_SET_FOR_CLI}"\n'
    )
    assert main(["notify", "test", "--team", "x", "--spec", str(spec)]) == 2
    assert "no team 'x'" in capsys.readouterr().err
    assert main(["notify", "test", "--team", "t", "--spec", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "teams.t.notify[0].url: environment variable NOT_SET_FOR_CLI is not set" in err


def test_the_receiver_refuses_to_start_on_an_unset_variable_naming_team_and_destination(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_text(
        "teams:\n  t:\n    notify:\n"
        '      - url: "json://127.0.0.1:9/ok"\n'
        '      - url: "mmost://${MM_HOST_FOR_TEST}/${MM_TOKEN_FOR_TEST}"\n'
    )
    config = tmp_path / "receiver.yml"
    config.write_text(f"store: sqlite:///{tmp_path / 'r.db'}\nspec: {spec}\n")
    monkeypatch.setenv("MM_HOST_FOR_TEST", "chat.example.com")  # set; the token is not
    code = main(["receiver", "--listen", "127.0.0.1:1", "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert (
        f"{spec}: teams.t.notify[1].url: environment variable MM_TOKEN_FOR_TEST is not set" in err
    )
    assert "chat.example.com" not in err
