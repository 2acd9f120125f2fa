"""Third-party plugins through real entry points: loaded, checked, used, or refused loudly.

Each test writes a real installed distribution into a temporary folder (its
module and a ``*.dist-info`` with ``METADATA`` and ``entry_points.txt``) and
puts that folder on ``sys.path``; ``importlib.metadata`` finds it afresh on
the next lookup. Nothing of pipemedic is patched: the receiver loads the
plugins itself when its app is built.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from core_helpers import alert_doc, config, iso, later, notification_doc

from pipemedic.stack import PrometheusServer, free_port
from receiver.actions import ACTION_KINDS, ActionConfigError, build_action
from receiver.app import create_app
from receiver.diagnosis import HANDLERS
from receiver.keys import STORE, WORKER
from receiver.plugins import (
    ACTIONS_GROUP,
    HANDLERS_GROUP,
    STRATEGIES_GROUP,
    PluginError,
    builtin_tables,
    load_plugins,
)
from receiver.recovery import STRATEGIES
from rules.errors import SpecError
from rules.spec import load_spec

_numbers = itertools.count(1)

# One plugin of each kind, as a third party would write it against the public API.
GOOD = """
import json
from pathlib import Path

from receiver.actions import ActionConfigError, ActionOutcome
from receiver.diagnosis import Finding
from receiver.recovery import StepPlan


async def check_streaming(probe):
    lag = await probe.value("vector(42)", "consumer lag in messages")
    return Finding("consumer_lag", f"consumer group {lag:g} messages behind")


class RestartConsumer:
    def plan(self, diagnosis, spec):
        lag = diagnosis.evidence[0].result[0]["value"]
        return StepPlan(max_attempts=1, backoff=False, params={"lag": str(lag)})


class Touch:
    def __init__(self, config, where):
        if not isinstance(config.get("path"), str):
            raise ActionConfigError(f"{where}.path: required, a file to write")
        self.path = Path(config["path"])
        self.target = f"touch {self.path.name}"
        self.summary = f"write {self.path.name}"

    async def run(self, ctx):
        doc = {"cause": ctx.cause, "strategy": ctx.strategy, "params": dict(ctx.params)}
        self.path.write_text(json.dumps(doc))
        return ActionOutcome("success", False, "written")
"""


def install(
    site: Path,
    entry_points: Mapping[str, Mapping[str, str]],
    source: str = GOOD,
    dist: str = "acme-pipemedic",
) -> str:
    """Write a distribution with one module into ``site``; return the module's name.

    ``entry_points`` maps group -> name -> ``{module}:attr`` (``{module}`` is
    replaced by the fresh module name, unique per call since imports are cached).
    """
    module = f"acme_plugin_{next(_numbers)}"
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = []
    for group, names in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value.format(module=module)}" for name, value in names.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return module


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder on ``sys.path`` for this test's distributions."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


ALL_THREE = {
    HANDLERS_GROUP: {"streaming": "{module}:check_streaming"},
    ACTIONS_GROUP: {"touch": "{module}:Touch"},
    STRATEGIES_GROUP: {"restart_consumer": "{module}:RestartConsumer"},
}

SPEC = """\
pipelines:
  stream_clicks:
    recovery: {{consumer_lag: restart_consumer}}
    actions:
      restart_consumer:
        plugin: {{name: touch, config: {{path: "{marker}"}}}}
"""


def problems_of(error: PluginError) -> list[str]:
    return [str(p) for p in error.problems]


# loading --------------------------------------------------------------------


def test_installed_plugins_extend_new_tables_and_leave_the_builtins_alone(site: Path) -> None:
    before = (dict(HANDLERS), dict(ACTION_KINDS), dict(STRATEGIES))
    module = install(site, ALL_THREE)

    tables = load_plugins()

    assert tables.handlers["streaming"].__name__ == "check_streaming"  # type: ignore[attr-defined]
    assert tables.actions["touch"].__module__ == module
    assert type(tables.strategies["restart_consumer"]).__name__ == "RestartConsumer"
    assert set(tables.handlers) == {*HANDLERS, "streaming"}
    assert set(tables.actions) == {*ACTION_KINDS, "touch"}
    assert set(tables.strategies) == {*STRATEGIES, "restart_consumer"}
    assert sorted(tables.loaded) == [
        f"{ACTIONS_GROUP}:touch from acme-pipemedic 1.0",
        f"{HANDLERS_GROUP}:streaming from acme-pipemedic 1.0",
        f"{STRATEGIES_GROUP}:restart_consumer from acme-pipemedic 1.0",
    ]
    # registration has no side effects: the built-in tables are as they were
    assert (dict(HANDLERS), dict(ACTION_KINDS), dict(STRATEGIES)) == before
    assert builtin_tables().handlers == HANDLERS


def test_a_plugin_action_is_built_from_the_spec_and_its_errors_name_the_field(
    site: Path, tmp_path: Path
) -> None:
    install(site, ALL_THREE)
    tables = load_plugins()
    where = "pipelines.x.actions.restart_consumer"
    marker = tmp_path / "m.json"

    action, dry_run = build_action(
        {"plugin": {"name": "touch", "config": {"path": str(marker)}}, "dry_run": True},
        where,
        tables.actions,
    )
    assert (action.target, dry_run) == ("touch m.json", True)

    with pytest.raises(ActionConfigError, match=rf"^{where}\.plugin\.config\.path: required"):
        build_action({"plugin": {"name": "touch"}}, where, tables.actions)
    with pytest.raises(ActionConfigError) as missing:
        build_action({"plugin": {"name": "tuoch"}}, where, tables.actions)
    assert str(missing.value) == (
        f"{where}.plugin.name: no action plugin 'tuoch' "
        "(entry points in group pipemedic.actions: touch)"
    )
    # without the plugin table (the built-ins only) the same spec is refused, not guessed
    with pytest.raises(ActionConfigError, match="none installed"):
        build_action({"plugin": {"name": "touch", "config": {}}}, where)


# broken plugins fail start-up with every problem named -------------------------

BROKEN = """
import nonexistent_module_for_pipemedic_tests as _missing
"""

ODD = """
NOT_CALLABLE = 3


def sync_handler(probe):
    return None


async def two_args(probe, extra):
    return None


class NoRun:
    def __init__(self, config, where):
        pass


class OneArg:
    def __init__(self, config):
        pass

    async def run(self, ctx):
        return None


class ShortPlan:
    def plan(self, diagnosis):
        return None


class Good:
    def plan(self, diagnosis, spec):
        return None


async def fine(probe):
    return None
"""


def test_broken_plugins_are_all_named_with_distribution_and_what_is_wrong(site: Path) -> None:
    install(
        site,
        {
            HANDLERS_GROUP: {
                "not_callable": "{module}:NOT_CALLABLE",
                "not_async": "{module}:sync_handler",
                "two_args": "{module}:two_args",
                "Bad-Name": "{module}:fine",
                "connectivity": "{module}:fine",  # a built-in category
            },
            ACTIONS_GROUP: {
                "no_run": "{module}:NoRun",
                "one_arg": "{module}:OneArg",
                "missing_attr": "{module}:DoesNotExist",
                "plugin": "{module}:NoRun",  # the spec key itself
            },
            STRATEGIES_GROUP: {
                "short_plan": "{module}:ShortPlan",
                "escalate": "{module}:Good",
            },
        },
        source=ODD,
        dist="acme-odd",
    )
    install(site, {STRATEGIES_GROUP: {"broken": "{module}:Good"}}, BROKEN, dist="acme-broken")

    with pytest.raises(PluginError) as caught:
        load_plugins()

    found = problems_of(caught.value)
    assert len(found) == 12, "\n".join(found)
    text = str(caught.value)
    assert text.startswith("12 broken plugin(s):\n")

    def one(name: str) -> str:
        (match,) = [p for p in found if p.startswith(f"entry point {name!r} = ")]
        return match

    assert "in group pipemedic.diagnosis_handlers (distribution acme-odd 1.0)" in one(
        "not_callable"
    )
    assert one("not_callable").endswith("is a int, not callable (want async def f(probe))")
    assert one("not_async").endswith("is not async (want async def f(probe) -> Finding | None)")
    assert "cannot be called as (probe): signature (probe, extra)" in one("two_args")
    assert one("Bad-Name").endswith("the name must be a lowercase identifier ([a-z][a-z0-9_]*)")
    assert one("connectivity").endswith(
        "would replace the built-in 'connectivity'; allow it explicitly with "
        "replace={'pipemedic.diagnosis_handlers:connectivity'}"
    )
    assert one("no_run").endswith("class NoRun has no async method run(self, ctx)")
    assert "cannot be called as (config, where): signature (config)" in one("one_arg")
    assert "cannot be loaded: AttributeError:" in one("missing_attr")
    assert one("plugin").endswith("the name 'plugin' is reserved")
    assert "cannot be called as (diagnosis, spec): signature (diagnosis)" in one("short_plan")
    assert one("escalate").endswith("the name 'escalate' is reserved")
    broken = one("broken")
    assert "in group pipemedic.recovery_strategies (distribution acme-broken 1.0)" in broken
    assert broken.endswith(
        "cannot be loaded: ModuleNotFoundError: "
        "No module named 'nonexistent_module_for_pipemedic_tests'"
    )


def test_two_distributions_may_not_register_one_name(site: Path) -> None:
    install(site, {ACTIONS_GROUP: {"touch": "{module}:Touch"}}, dist="acme-one")
    install(site, {ACTIONS_GROUP: {"touch": "{module}:Touch"}}, dist="acme-two")

    with pytest.raises(PluginError) as caught:
        load_plugins()

    (problem,) = problems_of(caught.value)
    assert "(distribution acme-two 1.0)" in problem or "(distribution acme-one 1.0)" in problem
    assert "the name is also registered by distribution acme-" in problem


def test_a_builtin_is_replaced_only_when_the_operator_allows_exactly_that(site: Path) -> None:
    module = install(site, {ACTIONS_GROUP: {"http": "{module}:Touch"}})

    with pytest.raises(PluginError, match="would replace the built-in 'http'"):
        load_plugins()
    with pytest.raises(PluginError):
        load_plugins(replace={"pipemedic.actions:command"})

    tables = load_plugins(replace={"pipemedic.actions:http"})
    assert tables.actions["http"].__module__ == module
    assert ACTION_KINDS["http"].__module__ == "receiver.actions.http"


def test_a_broken_plugin_stops_the_receiver_before_it_serves(site: Path, tmp_path: Path) -> None:
    install(site, {STRATEGIES_GROUP: {"restart": "{module}:Touch"}})
    with pytest.raises(PluginError, match=r"'restart' = 'acme_plugin_\d+:Touch'"):
        create_app(config(tmp_path))

    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    # importing the receiver registers nothing and loads no plugin: it cannot fail here
    imported = subprocess.run(
        [sys.executable, "-c", "import receiver.app, receiver.plugins, receiver.cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr

    receiver_yml = tmp_path / "receiver.yml"
    receiver_yml.write_text(f"store: sqlite:///{tmp_path / 'cli.db'}\n")
    argv = ["receiver", "--listen", f"127.0.0.1:{free_port()}", "--config", str(receiver_yml)]
    done = subprocess.run(
        [sys.executable, "-m", "pipemedic", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "pipemedic receiver: 1 broken plugin(s):" in done.stderr
    assert (
        "strategy class Touch cannot be built with no arguments: Touch.__init__() missing 2 "
        "required positional arguments: 'config' and 'where'"
    ) in done.stderr


def test_a_spec_naming_what_is_not_installed_stops_start_up_at_its_line(
    site: Path, tmp_path: Path
) -> None:
    spec_file = tmp_path / "pipelines.yml"
    spec_file.write_text(
        "defaults:\n"
        "  recovery: {consumer_lag: restart_consumer}\n"
        "pipelines:\n"
        "  stream_clicks:\n"
        "    actions:\n"
        "      restart_consumer:\n"
        "        plugin: {name: touch}\n"
    )
    spec = load_spec(spec_file)  # well-formed: the schema cannot know what is installed

    with pytest.raises(SpecError) as caught:
        create_app(config(tmp_path), spec=spec)
    assert [str(p) for p in caught.value.problems] == [
        f"{spec_file}:2: defaults.recovery.consumer_lag: no strategy 'restart_consumer' is "
        "installed (known: refresh_credentials, retry_with_backoff, rollback_to_checkpoint, "
        "scale_resources; plugins come from entry points in group "
        "pipemedic.recovery_strategies)",
        f"{spec_file}:6: pipelines.stream_clicks.actions.restart_consumer: no strategy "
        "'restart_consumer' is installed (known: refresh_credentials, retry_with_backoff, "
        "rollback_to_checkpoint, scale_resources; plugins come from entry points in group "
        "pipemedic.recovery_strategies)",
        f"{spec_file}:7: pipelines.stream_clicks.actions.restart_consumer.plugin.name: "
        "no action 'touch' is installed (known: command, http, python; plugins come from "
        "entry points in group pipemedic.actions)",
    ]

    install(site, ALL_THREE)
    create_app(config(tmp_path), spec=spec)  # installed now: starts


def test_the_schema_checks_a_plugin_action_and_strategy_names_with_file_line_and_path(
    tmp_path: Path,
) -> None:
    spec_file = tmp_path / "pipelines.yml"
    spec_file.write_text(
        "pipelines:\n"
        "  stream_clicks:\n"
        "    recovery: {consumer_lag: Restart-Consumer}\n"
        "    actions:\n"
        "      restart_consumer:\n"
        "        plugin: {config: {a: 1}, cfg: 2}\n"
        "      rollback_to_checkpoint:\n"
        "        plugin: {name: touch, config: [1]}\n"
    )
    with pytest.raises(SpecError) as caught:
        load_spec(spec_file)
    assert [str(p) for p in caught.value.problems] == [
        f"{spec_file}:3: pipelines.stream_clicks.recovery.consumer_lag: "
        "'Restart-Consumer' does not match '^[a-z][a-z0-9_]*$'",
        f"{spec_file}:6: pipelines.stream_clicks.actions.restart_consumer.plugin: "
        "'name' is a required property",
        f"{spec_file}:6: pipelines.stream_clicks.actions.restart_consumer.plugin.cfg: "
        "unknown field 'cfg' (known: config, name)",
        f"{spec_file}:8: pipelines.stream_clicks.actions.rollback_to_checkpoint.plugin.config: "
        "[1] is not of type 'object'",
    ]


# used through the receiver's own tables, end to end ---------------------------


async def test_an_alert_is_diagnosed_and_recovered_by_installed_plugins(
    site: Path,
    tmp_path: Path,
    prometheus_server: Callable[..., PrometheusServer],
    aiohttp_client: Any,
) -> None:
    install(site, ALL_THREE)
    prom = await asyncio.to_thread(prometheus_server)
    marker = tmp_path / "restarted.json"
    spec_file = tmp_path / "pipelines.yml"
    spec_file.write_text(SPEC.format(marker=marker))

    async def firing(alert: object) -> bool:
        return not marker.exists()  # the alert stops once the plugin action has run

    app = create_app(
        config(tmp_path, prometheus_url=prom.url), spec=load_spec(spec_file), firing=firing
    )
    client = await aiohttp_client(app)
    alert = alert_doc(
        "stream_clicks", name="ConsumerLagging", labels={"category": "streaming", "sev": "SEV3"}
    )
    response = await client.post("/alerts", json=notification_doc(alert))
    assert response.status == 200, await response.text()
    await app[WORKER].run_until_idle(deadline_seconds=60)

    (incident,) = await app[STORE].list_incidents()
    assert incident.state == "recovered", incident  # verified; until Alertmanager says resolved
    assert incident.diagnosis is not None
    assert incident.diagnosis.handler == "check_streaming"
    assert incident.diagnosis.cause == "consumer_lag"
    assert incident.diagnosis.summary == "consumer group 42 messages behind"
    assert json.loads(marker.read_text()) == {
        "cause": "consumer_lag",
        "strategy": "restart_consumer",
        "params": {"lag": "42"},
    }
    events = {entry.event: entry.detail for entry in incident.timeline}
    assert events["strategy"] == {"cause": "consumer_lag", "strategy": "restart_consumer"}
    assert events["action_finished"]["outcome"] == "success"
    assert events["recovered"] == {"strategy": "restart_consumer", "attempts": 1}
    assert events["verification"]["cleared"] is True

    resolved = {**alert, "status": "resolved", "endsAt": iso(later(60))}
    response = await client.post("/alerts", json=notification_doc(resolved))
    assert response.status == 200, await response.text()
    await app[WORKER].run_until_idle(deadline_seconds=60)
    (incident,) = await app[STORE].list_incidents()
    assert incident.state == "resolved"
