"""``pipemedic incidents``: the same output from the store and from the receiver's API."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from presentation_samples import HOSTILE, escalated_incident, hostile_incident, persist
from presentation_samples import recovered_incident as recovered

from pipemedic.cli import main
from pipemedic.stack import free_port
from receiver.keys import STORE
from receiver.models import Incident
from receiver.report.web import add_routes
from receiver.store import open_store

REPO = Path(__file__).resolve().parents[3]


async def _seed(db: Path) -> list[int]:
    store = await open_store(str(db))
    try:
        return [
            (await persist(store, incident)).id
            for incident in (recovered(), escalated_incident(), hostile_incident())
        ]
    finally:
        await store.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "receiver.db"
    asyncio.run(_seed(path))
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["incidents", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_from_store_is_a_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "list", "--store", f"sqlite:///{db}")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID",
        "STATE",
        "SEV",
        "PIPELINE",
        "CAUSE",
        "BEGAN",
        "(UTC)",
        "DURATION",
        "ACTIONS",
    ]
    rows = [line.split()[:5] for line in lines[1:]]
    assert rows[1] == ["2", "escalated", "SEV3", "ml_features", "logic_error"]
    assert rows[2] == ["1", "resolved", "SEV2", "etl_orders", "network_timeout"]
    assert "9m 00s" in lines[3] and lines[3].split()[-1] == "2"


def test_list_filters_and_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "list", "--store", str(db), "--state", "escalated", "--json")
    assert code == 0
    body = json.loads(out)
    assert [i["pipeline"] for i in body["incidents"]] == ["ml_features"]
    code, out, _ = _cli(capsys, "list", "--store", str(db), "--sev", "SEV1")
    assert (code, out) == (0, "no incidents\n")


def test_show_text_and_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "show", "1", "--store", str(db))
    assert code == 0
    assert out.startswith("incident 1: etl_orders\n")
    assert "  sev        SEV2 (many users affected)" in out
    assert "  commander  ana" in out and "  sme        dev, eve" in out
    assert "diagnosis: network_timeout by check_infrastructure" in out
    assert "retry_with_backoff#1  failure  HTTP 503" in out
    code, out, _ = _cli(capsys, "show", "2", "--store", str(db), "--json")
    assert json.loads(out)["state"] == "escalated"


def test_postmortem_from_store(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "postmortem", "1", "--store", str(db))
    assert code == 0
    assert out.startswith("# Post-mortem: PipelineDown on `etl_orders` (incident #1)")
    assert "## Lessons learned" in out and "## Action items" in out


def test_postmortem_owners_from_spec_file(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "pipelines.yml"
    spec.write_text("teams:\n  data-platform: {commander: zoe, sme: [yan]}\n")
    code, out, _ = _cli(capsys, "postmortem", "2", "--store", str(db), "--spec", str(spec))
    assert code == 0 and "| zoe | commander |" in out and "| yan | sme | escalation |" in out


def test_unknown_incident_exits_1(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("show", "postmortem"):
        code, out, err = _cli(capsys, command, "99", "--store", str(db))
        assert (code, out) == (1, "") and "no incident 99" in err


def test_bad_store_url_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "list", "--store", "mysql://x")
    assert code == 2 and "cannot open the store" in err


def test_unreachable_receiver_exits_2_naming_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = _cli(capsys, "list", "--url", url)
    assert code == 2 and f"cannot reach the receiver at {url}/incidents" in err


def test_hostile_labels_cannot_drive_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    incident = hostile_incident()
    incident.pipeline = "evil\x1b]0;title\x07\x1b[2J"
    asyncio.run(_persist_one(tmp_path / "h.db", incident))
    for argv in (["list"], ["show", "1"]):
        code, out, _ = _cli(capsys, *argv, "--store", str(tmp_path / "h.db"))
        assert code == 0 and "\x1b" not in out and "\x07" not in out
        assert "evil\\x1b]0;title\\x07\\x1b[2J" in out
    assert HOSTILE in out  # shown as text, it is harmless in a terminal


async def _persist_one(db: Path, incident: Incident) -> None:
    store = await open_store(str(db))
    try:
        await persist(store, incident)
    finally:
        await store.close()


async def test_api_and_store_give_the_same_output(
    tmp_path: Path,
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = await open_store(str(tmp_path / "api.db"))
    for incident in (recovered(), escalated_incident()):
        await persist(store, incident)
    app = web.Application()
    app[STORE] = store
    add_routes(app)
    server = await aiohttp_server(app, host="127.0.0.1")
    url = str(server.make_url("")).rstrip("/")

    async def both(*argv: str) -> tuple[str, str]:
        via_api = await asyncio.to_thread(_cli, capsys, *argv, "--url", url)
        db = str(tmp_path / "api.db")
        via_store = await asyncio.to_thread(_cli, capsys, *argv, "--store", db)
        assert via_api[0] == via_store[0] == 0, (via_api, via_store)
        return via_api[1], via_store[1]

    try:
        api, direct = await both("list", "--json")
        assert json.loads(api) == json.loads(direct)
        api, direct = await both("show", "1")
        assert api == direct
        api, direct = await both("postmortem", "2")
        assert api == direct and api.startswith("# Post-mortem: PipelineHighErrorRate")
        code, _, err = await asyncio.to_thread(_cli, capsys, "show", "42", "--url", url)
        assert code == 1 and "no incident 42" in err
    finally:
        await store.close()


def test_entry_point_runs_the_command(db: Path) -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "pipemedic", "incidents", "show", "2", "--store", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("incident 2: ml_features")
