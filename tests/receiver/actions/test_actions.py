"""The three action kinds, each run for real: a local HTTP server, a real process, a callable."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from receiver.actions import (
    ActionConfigError,
    ActionContext,
    ActionOutcome,
    CommandAction,
    HttpAction,
    PythonAction,
    build_action,
)
from receiver.actions.command import MAX_OUTPUT_BYTES


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def context(session: aiohttp.ClientSession, **labels: str) -> ActionContext:
    return ActionContext(
        incident_id=7,
        pipeline="etl_orders",
        alertname="PipelineDown",
        cause="network_timeout",
        strategy="retry_with_backoff",
        attempt=2,
        session=session,
        labels={"alertname": "PipelineDown", "pipeline": "etl_orders", **labels},
        params={"checkpoint_age_seconds": "600"},
    )


# http ---------------------------------------------------------------------------


@pytest.fixture
async def http_target(aiohttp_server: Callable[..., Any]) -> AsyncIterator[tuple[list[Any], int]]:
    seen: list[Any] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append((request.method, request.path, dict(request.headers), await request.json()))
        status = int(request.query.get("status", "200"))
        if request.path == "/slow":
            await asyncio.sleep(5)
        if status in (301, 302):
            raise web.HTTPFound(location=f"http://127.0.0.1:{request.url.port}/elsewhere")
        return web.json_response({"done": True}, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield seen, server.port


async def test_http_sends_only_allow_listed_labels_with_configured_method_and_headers(
    session: aiohttp.ClientSession, http_target: tuple[list[Any], int]
) -> None:
    seen, port = http_target
    action = HttpAction(
        {
            "url": f"http://127.0.0.1:{port}/retry",
            "method": "PUT",
            "headers": {"X-Token": "abc"},
            "body_labels": ["pipeline", "team"],
        }
    )
    outcome = await action.run(context(session, team="data", secret="hunter2"))
    assert outcome == ActionOutcome("success", False, 'HTTP 200: {"done": true}')
    ((method, path, headers, body),) = seen
    assert (method, path, headers["X-Token"]) == ("PUT", "/retry", "abc")
    assert body == {
        "incident_id": 7,
        "strategy": "retry_with_backoff",
        "cause": "network_timeout",
        "attempt": 2,
        "params": {"checkpoint_age_seconds": "600"},
        "labels": {"pipeline": "etl_orders", "team": "data"},
    }


@pytest.mark.parametrize(
    ("status", "outcome", "retryable"),
    [
        (500, "failure", True),
        (503, "failure", True),
        (429, "failure", True),
        (400, "failure", False),
        (404, "failure", False),
        (302, "failure", False),
    ],
)
async def test_http_judges_answers_like_a_notifier(
    session: aiohttp.ClientSession,
    http_target: tuple[list[Any], int],
    status: int,
    outcome: str,
    retryable: bool,
) -> None:
    seen, port = http_target
    action = HttpAction({"url": f"http://127.0.0.1:{port}/x?status={status}"})
    result = await action.run(context(session))
    assert (result.outcome, result.retryable) == (outcome, retryable)
    assert f"HTTP {status}" in result.detail
    assert [p for _, p, _, _ in seen] == ["/x"]  # a redirect is never followed


async def test_http_timeout_and_refused_connection_are_retryable(
    session: aiohttp.ClientSession, http_target: tuple[list[Any], int]
) -> None:
    _, port = http_target
    slow = await HttpAction({"url": f"http://127.0.0.1:{port}/slow", "timeout": "200ms"}).run(
        context(session)
    )
    assert (slow.outcome, slow.retryable) == ("timeout", True)
    from pipemedic.stack import free_port

    refused = await HttpAction({"url": f"http://127.0.0.1:{free_port()}/"}).run(context(session))
    assert (refused.outcome, refused.retryable) == ("failure", True)


def test_http_target_hides_the_query_string_and_config_is_checked() -> None:
    action = HttpAction({"url": "https://orchestrator.internal/api/retry?token=s3cret"})
    assert action.target == "http POST https://orchestrator.internal/api/retry"
    assert action.verify_tls is True
    assert HttpAction({"url": "https://x.internal/", "verify_tls": False}).verify_tls is False
    with pytest.raises(ActionConfigError, match=r"action\.http\.url"):
        HttpAction({"url": "file:///etc/passwd"})
    with pytest.raises(ActionConfigError, match=r"action\.http\.method"):
        HttpAction({"url": "http://x/", "method": "TRACE"})
    with pytest.raises(ActionConfigError, match=r"action\.http\.timeout"):
        HttpAction({"url": "http://x/", "timeout": "soon"})


# command ----------------------------------------------------------------------


async def test_command_gets_the_alert_in_its_environment_and_output_is_captured(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_FROM_PARENT", "leak")  # the receiver's own environment stays out
    script = (
        "import os; e = os.environ; print(e['PIPEMEDIC_PIPELINE'], e['PIPEMEDIC_CAUSE'], "
        "e['PIPEMEDIC_ATTEMPT'], e['PIPEMEDIC_PARAM_CHECKPOINT_AGE_SECONDS'], "
        "e.get('SECRET_FROM_PARENT'))"
    )
    action = CommandAction({"argv": [sys.executable, "-c", script]})
    outcome = await action.run(context(session))
    assert outcome.outcome == "success"
    assert "etl_orders network_timeout 2 600 None" in outcome.detail


async def test_command_output_is_truncated(session: aiohttp.ClientSession) -> None:
    action = CommandAction({"argv": [sys.executable, "-c", "print('x' * 100000)"]})
    outcome = await action.run(context(session))
    assert outcome.outcome == "success"
    assert "more bytes truncated" in outcome.detail
    assert len(outcome.detail) < MAX_OUTPUT_BYTES + 200


async def test_command_timeout_kills_the_process_group(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    marker = tmp_path / "survived"
    script = f"import time, subprocess, sys; time.sleep(3); open({str(marker)!r}, 'w').write('x')"
    action = CommandAction({"argv": [sys.executable, "-c", script], "timeout": "300ms"})
    outcome = await action.run(context(session))
    assert (outcome.outcome, outcome.retryable) == ("timeout", True)
    await asyncio.sleep(3.5)
    assert not marker.exists()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def test_command_timeout_ends_a_descendant_that_left_the_session(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # the reproduction: a grandchild in its own session holds the output open
    pidfile = tmp_path / "escaped.pid"
    argv = [
        "/bin/sh",
        "-c",
        f"setsid /bin/sh -c 'echo $$ > {pidfile}; exec /bin/sleep 300' & exec /bin/sleep 100000",
    ]
    action = CommandAction({"argv": argv, "timeout": "1s"})
    # the outer bound only keeps a regression from hanging the suite
    outcome = await asyncio.wait_for(action.run(context(session)), 60)
    assert (outcome.outcome, outcome.retryable) == ("timeout", True)
    escaped = int(pidfile.read_text())
    assert "1 escaped process(es) killed" in outcome.detail
    assert f"pid [{escaped}]" in outcome.detail
    for _ in range(100):
        if not _alive(escaped):
            break
        await asyncio.sleep(0.05)
    assert not _alive(escaped)


async def test_command_environment_carries_a_run_token(session: aiohttp.ClientSession) -> None:
    script = "import os; print(os.environ['PIPEMEDIC_ACTION_RUN'])"
    first = await CommandAction({"argv": [sys.executable, "-c", script]}).run(context(session))
    second = await CommandAction({"argv": [sys.executable, "-c", script]}).run(context(session))
    assert first.outcome == second.outcome == "success"
    assert first.detail != second.detail  # unique per run


@pytest.mark.parametrize(
    ("argv", "retryable"),
    [
        ([sys.executable, "-c", "raise SystemExit(3)"], True),
        (["/nonexistent/pipemedic-rollback"], False),
        (["sh", "-c", "exit 126"], False),
    ],
)
async def test_command_failures_and_their_retryability(
    session: aiohttp.ClientSession, argv: list[str], retryable: bool
) -> None:
    outcome = await CommandAction({"argv": argv}).run(context(session))
    assert (outcome.outcome, outcome.retryable) == ("failure", retryable)


def test_command_config_is_checked() -> None:
    with pytest.raises(ActionConfigError, match=r"action\.command\.argv"):
        CommandAction({"argv": "rm -rf /"})
    with pytest.raises(ActionConfigError, match=r"action\.command\.argv"):
        CommandAction({"argv": []})


# python -------------------------------------------------------------------------

CALLS: list[ActionContext] = []


def sync_ok(ctx: ActionContext) -> None:
    CALLS.append(ctx)


async def async_outcome(ctx: ActionContext) -> ActionOutcome:
    return ActionOutcome("failure", False, f"nothing to refresh for {ctx.pipeline}")


def returns_false(ctx: ActionContext) -> bool:
    return False


def raises(ctx: ActionContext) -> None:
    raise RuntimeError("vault sealed")


async def too_slow(ctx: ActionContext) -> None:
    await asyncio.sleep(5)


@pytest.mark.parametrize(
    ("name", "outcome", "retryable", "detail"),
    [
        ("sync_ok", "success", False, "returned"),
        ("async_outcome", "failure", False, "nothing to refresh for etl_orders"),
        ("returns_false", "failure", True, "returned False"),
        ("raises", "failure", True, "RuntimeError: vault sealed"),
        ("too_slow", "timeout", True, "no return within 0.2s"),
    ],
)
async def test_python_callables_sync_or_async(
    session: aiohttp.ClientSession, name: str, outcome: str, retryable: bool, detail: str
) -> None:
    action = PythonAction({"callable": f"test_actions:{name}", "timeout": "200ms"})
    result = await action.run(context(session))
    assert (result.outcome, result.retryable, result.detail) == (outcome, retryable, detail)


def test_python_config_errors_name_the_field() -> None:
    with pytest.raises(ActionConfigError, match=r"action\.python\.callable.*cannot import"):
        PythonAction({"callable": "no_such_module_xyz:run"})
    with pytest.raises(ActionConfigError, match=r"not 'package\.module:function'"):
        PythonAction({"callable": "os.system"})
    with pytest.raises(ActionConfigError, match="not a callable"):
        PythonAction({"callable": "sys:maxsize"})


# registry -----------------------------------------------------------------------


def test_build_action_takes_exactly_one_known_kind() -> None:
    action, dry = build_action({"command": {"argv": ["true"]}, "dry_run": True}, "a.b")
    assert isinstance(action, CommandAction) and dry is True
    with pytest.raises(ActionConfigError, match=r"a\.b: unknown action kind 'shell'"):
        build_action({"shell": "rm -rf /"}, "a.b")
    with pytest.raises(ActionConfigError, match="exactly one"):
        build_action({"command": {"argv": ["true"]}, "http": {"url": "http://x/"}}, "a.b")
    with pytest.raises(ActionConfigError, match="exactly one"):
        build_action({"dry_run": True}, "a.b")


@pytest.fixture
async def tls_port(aiohttp_server: Callable[..., Any], tmp_path: Path) -> int:
    """An HTTPS endpoint with a self-signed certificate (made by the openssl binary)."""
    import ssl
    import subprocess

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"tls": True})

    app = web.Application()
    app.router.add_post("/act", ok)
    server = await aiohttp_server(app, host="127.0.0.1", ssl=context)
    port: int = server.port
    return port


async def test_http_verifies_tls_unless_configured_not_to(
    session: aiohttp.ClientSession, tls_port: int
) -> None:
    url = f"https://127.0.0.1:{tls_port}/act"
    refused = await HttpAction({"url": url}).run(context(session))
    assert (refused.outcome, refused.retryable) == ("failure", False)
    assert refused.detail.startswith("TLS:")
    accepted = await HttpAction({"url": url, "verify_tls": False}).run(context(session))
    assert accepted.outcome == "success"
