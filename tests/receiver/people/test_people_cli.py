"""``pipemedic incidents ack | assign | ... | action-items`` against a running receiver,
and ``pipemedic receiver hash-password``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from argon2 import PasswordHasher
from core_helpers import alert_doc, config, notification_doc, stages
from people_helpers import PASSWORDS, SPEC, users

from pipemedic.cli import main
from receiver.app import create_app
from receiver.keys import WORKER
from rules.spec import parse_spec


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["incidents", *argv])
    out, err = capsys.readouterr()
    return code, out, err


async def test_people_act_from_the_terminal(
    tmp_path: Path,
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_app(
        config(tmp_path, people={"users": users()}),
        spec=parse_spec(json.dumps(SPEC)),
        **stages(),
    )
    server = await aiohttp_server(app, host="127.0.0.1")
    url = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        doc = notification_doc(alert_doc("etl_orders"))
        assert (await session.post(f"{url}/alerts", json=doc)).status == 200
    await server.app[WORKER].run_until_idle()

    async def cli(*argv: str) -> tuple[int, str, str]:
        return await asyncio.to_thread(_cli, capsys, *argv, "--url", url)

    monkeypatch.delenv("PIPEMEDIC_USER", raising=False)
    monkeypatch.delenv("PIPEMEDIC_PASSWORD", raising=False)
    code, _, err = await cli("ack", "1")
    assert code == 3 and "HTTP 401 not signed in" in err
    code, _, err = await cli("ack", "1", "--user", "alice")
    assert code == 2 and "PIPEMEDIC_PASSWORD" in err

    monkeypatch.setenv("PIPEMEDIC_USER", "dana")
    monkeypatch.setenv("PIPEMEDIC_PASSWORD", PASSWORDS["dana"])
    code, out, _ = await cli("show", "1")  # a viewer reads
    assert code == 0 and out.startswith("incident 1: etl_orders")
    code, _, err = await cli("ack", "1")
    assert code == 3 and "HTTP 403 not allowed: dana is a viewer" in err

    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORDS["alice"] + "\n")
    monkeypatch.setenv("PIPEMEDIC_USER", "alice")
    monkeypatch.delenv("PIPEMEDIC_PASSWORD")
    steps = [
        ("ack", "1"),
        ("assign", "1", "scribe", "erin"),
        ("note", "1", "checked the bucket"),
        ("update", "1", "dashboards stale"),
        ("severity", "1", "SEV2", "--why", "finance only"),
        ("handoff", "1", "commander", "frank", "--note", "shift ends"),
        ("resolve", "1", "--how", "restarted the scheduler"),
        (
            "close",
            "1",
            "--measure",
            "rate-limit the client",
            "--item",
            "add a limiter test|bob|2026-02-01",
        ),
    ]
    for argv in steps:
        code, out, err = await cli(*argv, "--password-file", str(password_file))
        assert code == 0, (argv, err)
        assert "by alice" in out, out
    assert "now closed" in out
    code, _, err = await cli("ack", "1", "--password-file", str(password_file))
    assert code == 3 and "HTTP 409" in err and "(state closed)" in err
    code, _, err = await cli("note", "9", "x", "--password-file", str(password_file))
    assert code == 1 and "HTTP 404" in err
    code, _, err = await cli(
        "close", "1", "--item", "no due|bob", "--password-file", str(password_file)
    )
    assert code == 3 and "field review" in err
    code, out, _ = await cli("action-items", "--password-file", str(password_file))
    assert code == 0 and "2026-02-01" in out and "bob" in out and "add a limiter test" in out
    code, out, _ = await cli(
        "action-items", "--owner", "nobody", "--password-file", str(password_file)
    )
    assert out == "no open action items\n"


def _hash_password(typed: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipemedic", "receiver", "hash-password"],
        input=typed,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hash_password_prints_a_hash_that_verifies() -> None:
    result = _hash_password("correct horse\n")
    assert result.returncode == 0, result.stderr
    hashed = result.stdout.strip()
    assert hashed.startswith("$argon2id$")
    assert PasswordHasher().verify(hashed, "correct horse")
    empty = _hash_password("\n")
    assert empty.returncode == 2 and "empty password" in empty.stderr
