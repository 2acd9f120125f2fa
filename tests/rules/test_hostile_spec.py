"""A spec written by an attacker, or on a bad day: refused quickly, naming file:line and path.

Issue 21: a 500-byte "billion laughs" spec exhausted memory in `rules check`;
duplicate keys were accepted silently; `{{` in runbook_url reached Prometheus'
template engine and `rules generate` wrote a file promtool refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.bench_spec_scale import billion_laughs, heavy_spec
from exporters.cli import _run as run_exporter
from rules.errors import SpecError
from rules.promtool import check_rules
from rules.spec import load_spec, parse_spec
from rules.yamlpos import MAX_BYTES, MAX_DEPTH, load_yaml
from tests.rules.conftest import Run


def test_billion_laughs_is_refused_at_the_alias(
    rules_cli: Callable[..., Run], write_spec: Callable[[str], Path]
) -> None:
    text = billion_laughs()
    assert len(text.encode()) < 500
    path = write_spec(text)
    res = rules_cli("check", "--spec", str(path))
    assert res.code == 1
    # a4 (9^4 strings) is the first level whose expansion exceeds the alias budget
    assert f"{path}:5: a4[0]: aliases expand the document by over 10,000 nodes" in res.err
    assert "Traceback" not in res.err


@pytest.mark.parametrize("command", ["check", "generate", "diff", "test"])
def test_every_rules_command_refuses_it(
    command: str,
    rules_cli: Callable[..., Run],
    write_spec: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    path = write_spec(billion_laughs())
    extra = ["--out", str(tmp_path / "out")] if command in ("generate", "diff") else []
    res = rules_cli(command, "--spec", str(path), *extra)
    assert res.code == 1
    assert "aliases expand the document" in res.err
    assert not (tmp_path / "out").exists()


def test_the_exporter_refuses_it_too(
    write_spec: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The exporter and receiver load the spec with the same loader (rules.spec.load_spec)."""
    import argparse

    path = write_spec(billion_laughs())
    code = run_exporter(argparse.Namespace(spec=str(path)))
    assert code == 2
    assert "aliases expand the document" in capsys.readouterr().out
    with pytest.raises(SpecError, match="aliases expand"):
        load_spec(path)


def test_the_receiver_refuses_it_at_start_up(
    write_spec: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from pipemedic.cli import main

    path = write_spec(billion_laughs())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["receiver", "--spec", str(path), "--listen", f"127.0.0.1:{port}"]
    config = write_spec(f"store: sqlite:///{tmp_path}/receiver.db\n", "receiver.yml")
    code = main([*args, "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{path}:5: a4[0]: aliases expand the document" in err


def test_aliases_within_the_budget_still_load() -> None:
    """Anchors shared by many pipelines are fine: aliases may double a document."""
    pipelines = "\n".join(f"  p{i}:\n    actions: *common" for i in range(2000))
    text = (
        "defaults:\n  actions: &common\n    retry_with_backoff:\n"
        "      http: {url: 'http://127.0.0.1:9/retry', method: POST, timeout: 5s}\n"
        f"pipelines:\n{pipelines}\n"
    )
    spec = parse_spec(text, "anchors.yml")
    assert spec.pipeline("p1999").actions["retry_with_backoff"]["http"]["method"] == "POST"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "defaults:\n  sla: 1h\n  max_error_rate: 0.1\n  sla: 2h\n",
            "s.yml:4: defaults.sla: duplicate key 'sla' (first at line 2)",
        ),
        (
            "pipelines:\n  etl:\n    sla: 1h\n  other: {}\n  etl:\n    sla: 2h\n",
            "s.yml:5: pipelines.etl: duplicate key 'etl' (first at line 2)",
        ),
        (
            "defaults: {sla: 1h}\npipelines: {}\ndefaults: {sla: 2h}\n",
            "s.yml:3: defaults: duplicate key 'defaults' (first at line 1)",
        ),
        ("teams: {a: {commander: X, commander: Y}}\n", "s.yml:1: teams.a.commander: duplicate"),
    ],
)
def test_duplicate_keys_are_refused(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "s.yml")
    assert expected in str(info.value)


def test_merge_keys_are_not_duplicates() -> None:
    text = (
        "defaults: &base\n  sla: 1h\n  team: t\n"
        "pipelines:\n  etl:\n    <<: *base\n    sla: 2h\nteams: {t: {}}\n"
    )
    assert parse_spec(text, "s.yml").pipeline("etl").sla == "2h"


def test_a_spec_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yml"
    with path.open("wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: no disk used, and never read
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert f"{path}: is 32.0 MiB, over the limit of 32 MiB" in str(info.value)


def test_deep_nesting_and_structured_keys_are_refused() -> None:
    with pytest.raises(SpecError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_spec("defaults: " + "[" * 200 + "]" * 200 + "\n", "deep.yml")
    with pytest.raises(SpecError, match="a key must be a plain value"):
        parse_spec("? [a, b]\n: 1\n", "keys.yml")
    with pytest.raises(SpecError, match="nested deeper"):
        parse_spec("defaults: &a\n  description: [*a]\n", "cycle.yml")


def test_rule_files_get_the_same_loader() -> None:
    from rules.lint import lint_texts

    problems = lint_texts({"c.rules.yml": "groups: []\ngroups: []\n"})
    assert [str(p) for p in problems] == [
        "c.rules.yml:2: groups: duplicate key 'groups' (first at line 1): "
        "YAML keys are unique; merge the two"
    ]
    assert load_yaml("a: 1\n", "x.yml").data == {"a": 1}


TEMPLATED = [
    'https://x/{{ with query "vector(42)" }}{{ . | first | value }}{{ end }}',
    "https://x/{{ .Nope",
]


@pytest.mark.parametrize("url", TEMPLATED)
@pytest.mark.parametrize("command", ["check", "generate"])
def test_templates_in_the_spec_are_refused_by_check_and_generate(
    url: str,
    command: str,
    rules_cli: Callable[..., Run],
    write_spec: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    path = write_spec(f"pipelines:\n  etl:\n    sla: 1h\n    runbook_url: '{url}'\n")
    out = tmp_path / "out"
    extra = ["--out", str(out)] if command == "generate" else []
    res = rules_cli(command, "--spec", str(path), *extra)
    assert res.code == 1
    assert f"{path}:4: pipelines.etl.runbook_url: " in res.err
    assert "Prometheus expands templates" in res.err
    assert not out.exists()


def test_templates_are_refused_in_any_field_but_actions() -> None:
    text = (
        "defaults:\n  description: 'hi {{ $labels.x }}'\n"
        "  actions:\n    retry_with_backoff:\n"
        "      command: {argv: ['echo', '{{ fine: the receiver runs this, not Prometheus }}']}\n"
    )
    with pytest.raises(SpecError) as info:
        parse_spec(text, "s.yml")
    assert [p.path for p in info.value.problems] == ["defaults.description"]


def test_generate_writes_nothing_when_a_check_fails(
    rules_cli: Callable[..., Run], write_spec: Callable[[str], Path], tmp_path: Path
) -> None:
    """A custom rule that lint refuses stops generate as it stops check."""
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "bad.rules.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: nope_metric > 1\n"
    )
    out = tmp_path / "out"
    path = write_spec("pipelines:\n  etl: {}\n")
    res = rules_cli("generate", "--spec", str(path), "--out", str(out), "--custom", str(custom))
    assert res.code == 1
    assert "selector 'nope_metric' never matches" in res.err
    assert "not written" in res.err
    assert not out.exists()
    ok = rules_cli(
        "generate", "--spec", str(path), "--out", str(out), "--custom", str(tmp_path / "none")
    )
    assert ok.code == 0, ok.err
    written = sorted(out.glob("*.rules.yml"))
    assert written
    result = check_rules(written)
    assert result.ok, result.output


def test_long_work_shows_progress_as_json_logs(
    write_spec: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A large spec logs each phase on stderr; `--log-format json` makes them JSON objects."""
    import json

    from pipemedic.cli import main
    from rules.checks import PROGRESS_BYTES

    text = heavy_spec(1200)
    assert len(text) >= PROGRESS_BYTES
    big = write_spec(text, "big.yml")
    args = ["--spec", str(big), "--custom", str(tmp_path / "none")]
    assert main(["--log-format", "json", "rules", "check", *args]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    done = [doc["phase"] for doc in lines if "seconds" in doc]
    assert done == ["load spec", "generate rules", "lint rules", "promtool check rules"]
    assert all(doc["logger"] == "pipemedic.rules" and doc["level"] == "info" for doc in lines)

    small = write_spec("pipelines:\n  etl: {}\n", "small.yml")
    assert main(["rules", "check", "--spec", str(small), "--custom", str(tmp_path / "none")]) == 0
    assert capsys.readouterr().err == ""
