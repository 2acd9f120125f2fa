"""`pipemedic rules check` reports every spec error as file:line: field.path: message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

SPEC = """\
defaults:
  sla: 1h
pipelines:
  etl_orders:
    team: data-platform
    sla: {sla}
teams:
  data-platform:
    commander: Ada
"""


def test_bad_duration_names_file_line_and_path(
    rules_cli: Callable[..., object], write_spec: Callable[[str], Path]
) -> None:
    path = write_spec(SPEC.format(sla="'30 minutes'"))
    res = rules_cli("check", "--spec", str(path))
    assert res.code == 1  # type: ignore[attr-defined]
    assert (
        f"{path}:6: pipelines.etl_orders.sla: '30 minutes' is not a Prometheus duration" in res.err  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown field, on its own line
        ("pipelines:\n  a:\n    slaa: 1h\n", ":3: pipelines.a.slaa: unknown field 'slaa' (known: "),
        # ratio out of range
        ("defaults:\n  max_error_rate: 1.5\n", ":2: defaults.max_error_rate: 1.5 is greater than"),
        # a team that is not defined
        (
            "pipelines:\n  a:\n    team: ghosts\nteams:\n  real: {}\n",
            ":3: pipelines.a.team: team 'ghosts' is not defined under teams: (real)",
        ),
        # impact outside the SEV table
        ("defaults:\n  impact: everyone\n", ":2: defaults.impact: 'everyone' is not one of"),
        # per-kind for/severity keys must be alert kinds
        ("defaults:\n  for:\n    downn: 1m\n", ":3: defaults.for.downn:"),
        (
            "defaults:\n  severity:\n    down: page\n",
            ":3: defaults.severity.down: 'page' is not one of",
        ),
        # a bad pipeline name (it becomes a label value)
        ("pipelines:\n  'bad name':\n    sla: 1h\n", ":2: pipelines.bad name:"),
        # slo objective must be a ratio
        ("pipelines:\n  a:\n    slo:\n      objective: 99.9\n", ":4: pipelines.a.slo.objective:"),
        # a misspelt strategy, as a recovery override and as an action key
        (
            "pipelines:\n  a:\n    recovery:\n      network_timeout: retry_with_backof\n",
            ":4: pipelines.a.recovery.network_timeout: unknown strategy 'retry_with_backof'",
        ),
        (
            "defaults:\n  actions:\n    scale_resource:\n      command: {argv: ['true']}\n",
            ":3: defaults.actions.scale_resource: unknown strategy 'scale_resource'",
        ),
        # timing every pipeline's rules share belongs under defaults
        (
            "pipelines:\n  a:\n    rate_window: 1m\n",
            ":3: pipelines.a.rate_window: rate_window is shared by every pipeline's rules: "
            "set it under defaults",
        ),
        (
            "pipelines:\n  a:\n    keep_firing_for: {down: 1m}\n",
            ":3: pipelines.a.keep_firing_for: keep_firing_for is shared",
        ),
        ("defaults:\n  keep_firing_for:\n    upp: 1m\n", ":3: defaults.keep_firing_for.upp:"),
        # a volume band that is empty
        (
            "pipelines:\n  a:\n    volume_min_ratio: 2\n    volume_max_ratio: 1.5\n",
            ":3: pipelines.a.volume_min_ratio: volume_min_ratio 2 must be below "
            "volume_max_ratio 1.5",
        ),
        (  # against the defaults' maximum
            "pipelines:\n  a:\n    volume_min_ratio: 3\n",
            ":3: pipelines.a.volume_min_ratio: volume_min_ratio 3 must be below volume_max_ratio 2",
        ),
        # invalid YAML
        ("defaults: [unclosed\n", "invalid YAML"),
        # not a mapping
        ("- just\n- a list\n", "the spec must be a mapping"),
    ],
)
def test_every_error_path(
    rules_cli: Callable[..., object],
    write_spec: Callable[[str], Path],
    text: str,
    expected: str,
) -> None:
    path = write_spec(text)
    res = rules_cli("check", "--spec", str(path))
    assert res.code == 1, res  # type: ignore[attr-defined]
    assert expected in res.err, res.err  # type: ignore[attr-defined]
    assert str(path) in res.err  # type: ignore[attr-defined]


def test_every_problem_is_reported_at_once(
    rules_cli: Callable[..., object], write_spec: Callable[[str], Path]
) -> None:
    path = write_spec("defaults:\n  sla: soon\n  max_staleness: later\n")
    res = rules_cli("check", "--spec", str(path))
    assert res.code == 1  # type: ignore[attr-defined]
    assert ":2: defaults.sla:" in res.err  # type: ignore[attr-defined]
    assert ":3: defaults.max_staleness:" in res.err  # type: ignore[attr-defined]


def test_missing_spec_file_is_an_error(rules_cli: Callable[..., object], tmp_path: Path) -> None:
    res = rules_cli("generate", "--spec", str(tmp_path / "nope.yml"), "--out", str(tmp_path))
    assert res.code == 1  # type: ignore[attr-defined]
    assert "cannot read" in res.err  # type: ignore[attr-defined]


def test_the_default_spec_checks_clean(rules_cli: Callable[..., object]) -> None:
    res = rules_cli("check")
    assert res.code == 0, res.err  # type: ignore[attr-defined]
    assert "OK" in res.out  # type: ignore[attr-defined]


def test_the_builtin_strategies_are_the_receivers_table() -> None:
    from receiver.recovery.strategies import STRATEGIES
    from rules.strategies import BUILTIN_STRATEGIES

    assert set(STRATEGIES) | {"escalate"} == BUILTIN_STRATEGIES
