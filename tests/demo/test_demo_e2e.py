"""The demo's scenario as a test: ``pipemedic demo --keep-running --free-ports`` for real.

One run of the real command, with ``--log-format json`` (simulated pipelines and the exporter, a
``pipemedic receiver`` subprocess, real Alertmanager and Prometheus, all on
free loopback ports). While it keeps running, the test asks the receiver's
API and the simulator's control-call log what happened, checks every
pipeline's cause, strategy, outcome and incident state against the
scenario, and checks that no recovery action ran twice: the control calls
the pipelines received per pipeline equal the actions the receiver recorded,
step by step. Ctrl-C (SIGINT) then stops everything and the command exits 0.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipemedic.demo.progress import Progress, Reporter
from pipemedic.demo.scenario import SCENARIO
from receiver.models import parse_time

START_DEADLINE = 300.0  # generous: a loaded 2-core machine; the demo takes ~40s idle


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = resp.read().decode()
    return json.loads(body) if body.lstrip().startswith(("{", "[")) else body


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Start the demo, wait for its summary and URLs; stop it with SIGINT afterwards."""
    out = tmp_path_factory.mktemp("demo") / "out"
    log_path = out.parent / "demo.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipemedic",
                "--log-format",
                "json",
                "demo",
                "--keep-running",
                "--free-ports",
                "--output",
                str(out),
                "--deadline",
                "240",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=out.parent,
        )
    stack = out / "stack.json"
    deadline = time.monotonic() + START_DEADLINE
    while not stack.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            text = log_path.read_text()
            pytest.fail(f"the demo ended or hung before keeping the stack up:\n{text}")
        time.sleep(0.5)
    state: dict[str, Any] = {
        "proc": proc,
        "out": out,
        "log": log_path,
        "urls": json.loads(stack.read_text()),
    }
    try:
        yield state
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _printed_commands(demo: dict[str, Any], event: str | None) -> list[str]:
    """The ``pipemedic ...`` commands the demo printed in its closing lines (JSON log)."""
    for line in demo["log"].read_text().splitlines():
        doc = json.loads(line) if line.startswith("{") else {}
        if doc.get("commands") and doc.get("event") == event:
            return list(doc["commands"])
    raise AssertionError(f"no closing lines ({event}) in the demo's log")


def _run_printed(command: str) -> str:
    """Run a printed ``pipemedic`` command as a newcomer would paste it; return its stdout."""
    argv = [sys.executable, "-m", "pipemedic", *shlex.split(command)[1:]]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, (command, res.stdout, res.stderr)
    return res.stdout


def _incidents(demo: dict[str, Any]) -> list[dict[str, Any]]:
    doc = _get(demo["urls"]["incidents"] + "incidents?limit=200")
    return list(doc["incidents"])


def test_every_fault_gets_its_cause_strategy_and_outcome(demo: dict[str, Any]) -> None:
    incidents = _incidents(demo)
    for fault in SCENARIO:
        mine = [i for i in incidents if i["pipeline"] == fault.pipeline]
        assert len(mine) == 1, (fault.pipeline, [i["state"] for i in mine])
        incident = mine[0]
        assert incident["state"] == fault.state, (fault.pipeline, incident["timeline"])
        assert incident["diagnosis"]["cause"] == fault.cause, incident["diagnosis"]
        events = [e["event"] for e in incident["timeline"]]
        recovering = [e["detail"] for e in incident["timeline"] if e["event"] == "recovering"]
        assert recovering and recovering[-1]["strategy"] == fault.strategy
        assert incident["alerts"][0]["labels"]["alertname"] == "PipelineHighErrorRate"
        assert incident["has_postmortem"]
        if fault.state == "resolved":
            assert "recovered" in events and incident["resolved_at"] is not None
            final = incident["actions"][-1]
            assert final["outcome"] == "success" and final["verified"] is True
            assert {a["strategy"] for a in incident["actions"]} == {fault.strategy}
        else:
            assert "recovered" not in events and incident["actions"] == []
            assert incident["resolved_at"] is None


def test_no_action_ran_twice(demo: dict[str, Any]) -> None:
    """Control calls per pipeline == actions the receiver recorded; each step once."""
    calls = _get(demo["urls"]["control_calls"])
    incidents = {i["pipeline"]: i for i in _incidents(demo)}
    for fault in SCENARIO:
        actions = incidents[fault.pipeline]["actions"]
        steps = [a["step"] for a in actions]
        assert len(set(steps)) == len(steps), steps
        mine = [c for c in calls["calls"] if c["pipeline"] == fault.pipeline]
        assert len(mine) == len(actions), (fault.pipeline, mine, steps)
        # the call the pipeline saw carries the attempt of the step recorded for it
        assert sorted(c["attempt"] for c in mine) == sorted(int(s.rsplit("#", 1)[1]) for s in steps)
        expected_calls = 0 if fault.fix is None else fault.failing_fix_calls + 1
        assert len(mine) == expected_calls
        assert all(c["fix"] == fault.fix for c in mine)
    # the retry that failed first was backed off and retried, as the guard stage says
    shop = incidents["demo_shop_orders"]
    assert [a["outcome"] for a in shop["actions"]] == ["failure", "success"]
    assert "backoff" in [e["event"] for e in shop["timeline"]]


def test_summary_and_postmortems_are_written(demo: dict[str, Any]) -> None:
    out: Path = demo["out"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] is True, summary
    assert [r["pipeline"] for r in summary["rows"]] == [f.pipeline for f in SCENARIO]
    table = (out / "summary.md").read_text()
    assert "| pipeline" in table and "time to recover" in table
    postmortems = sorted((out / "postmortems").glob("incident-*.md"))
    assert len(postmortems) == len(SCENARIO)
    bug = next(p for p in postmortems if "demo_revenue_report" in p.name).read_text()
    assert "manual intervention" in bug and "Staff Data Engineer" in bug
    # the evidence names the error reason diagnosis saw
    assert 'reason="bug"' in bug
    orders = next(p for p in postmortems if "demo_shop_orders" in p.name).read_text()
    assert "retry_with_backoff" in orders


def test_progress_is_reported_as_it_happens(demo: dict[str, Any]) -> None:
    """Every output line is one JSON object; each pipeline's story is in them, in order."""
    lines = [json.loads(line) for line in demo["log"].read_text().splitlines() if line]
    events: dict[str, list[str]] = {}
    for doc in lines:
        if "pipeline" in doc and "event" in doc:
            events.setdefault(doc["pipeline"], []).append(doc["event"])
    for fault in SCENARIO:
        story = events[fault.pipeline]
        end = "resolved" if fault.state == "resolved" else "escalated"
        wanted = ["fault_injected", "detected", "diagnosed", end]
        positions = [story.index(step) for step in wanted]
        assert positions == sorted(positions), story
        if fault.fix is not None:
            assert story.index("action_started") < story.index("recovered"), story
    summary = next(doc for doc in lines if doc.get("event") == "summary")
    assert summary["ok"] is True and len(summary["rows"]) == len(SCENARIO)


def test_text_progress_tells_each_step(demo: dict[str, Any]) -> None:
    """The same incidents in text mode: one readable line per step, oldest first."""
    shown: list[str] = []
    incidents = _incidents(demo)
    first = min(parse_time(i["opened_at"]) for i in incidents)
    assert first is not None
    Progress(Reporter(json_lines=False, write=shown.append), first).update(incidents)
    text = "\n".join(shown)
    assert "alert PipelineHighErrorRate fired" in text
    for fault in SCENARIO:
        assert f"diagnosed {fault.cause}" in text
    assert "backing off" in text and "recovered by retry_with_backoff (attempt 2)" in text
    assert "ESCALATED to Staff Data Engineer" in text
    offsets = [float(line.split("s", 1)[0]) for line in shown]
    assert offsets == sorted(offsets)


def test_the_printed_commands_list_and_show_the_incidents(demo: dict[str, Any]) -> None:
    commands = _printed_commands(demo, None)
    listing = [c for c in commands if c.startswith("pipemedic incidents list --url ")]
    assert listing == [f"pipemedic incidents list --url {demo['urls']['incidents'].rstrip('/')}"]
    table = _run_printed(listing[0])
    for fault in SCENARIO:
        assert fault.pipeline in table
    (show,) = [c for c in commands if c.startswith("pipemedic incidents show ")]
    assert "timeline:" in _run_printed(show)


# last: it stops the stack the tests above look at
def test_the_stack_is_up_until_ctrl_c_then_everything_stops(demo: dict[str, Any]) -> None:
    urls = demo["urls"]
    assert "prometheus_build_info" in _get(urls["prometheus"] + "/metrics")
    assert _get(urls["alertmanager"] + "/api/v2/status")["cluster"]["status"] in (
        "disabled",
        "ready",
    )
    page = _get(urls["incidents"])
    assert "demo_revenue_report" in page
    proc: subprocess.Popen[bytes] = demo["proc"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, demo["log"].read_text()
    assert not (demo["out"] / "stack.json").exists()
    for url in (urls["prometheus"], urls["alertmanager"], urls["incidents"]):
        with pytest.raises(OSError):
            urllib.request.urlopen(url, timeout=2)
    assert os.path.isdir(demo["out"] / "run")
    # what the demo prints once stopped reads the store it left behind
    (listing, show, again) = _printed_commands(demo, "next_steps")
    assert listing.startswith("pipemedic incidents list --store sqlite:///")
    table = _run_printed(listing)
    for fault in SCENARIO:
        assert fault.pipeline in table
    assert "timeline:" in _run_printed(show)
    assert (
        again
        == "pipemedic demo --free-ports --output "
        + shlex.quote(str(demo["out"]))
        + " --keep-running"
    )
