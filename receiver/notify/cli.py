"""``pipemedic notify test --team T``: send a test message to each of a team's destinations.

It reads the spec (``--spec``, default ``rules/pipelines.yml``), expands the
destinations' ``${VAR}`` from the environment exactly as the receiver does
at start-up, sends one message per destination straight through apprise
(no store, no outbox) and prints one line per destination, named by
``teams.<team>.notify[<i>]`` and its kind, never by its URL. Exit 0 when
every destination took the message, 1 when one failed, 2 for a bad spec or
team.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from typing import Any

from receiver.config import resolve_spec_path
from receiver.errors import ConfigError
from receiver.models import Incident, utcnow
from receiver.notify.messages import render
from receiver.notify.send import AppriseSender
from rules.errors import RulesError
from rules.spec import Spec, load_spec

__all__ = ["register", "run_test"]


def _test_incident(spec: Spec, team: str) -> Incident:
    found = spec.team(team)
    return Incident(
        id=0,
        pipeline="pipemedic_notify_test",
        state="open",
        sev="SEV5",
        opened_at=utcnow(),
        team=team,
        roles=found.roles() if found is not None else {},
    )


async def _send_all(spec: Spec, team: str) -> list[tuple[str, str, str]]:
    sender = AppriseSender.prepare(spec, team=team)
    incident = _test_incident(spec, team)
    rows: list[tuple[str, str, str]] = []
    try:
        found = spec.team(team)
        for dest in found.notify if found is not None else ():
            message = render("opened", incident, found, {"test": True})
            message = replace(
                message,
                title=f"pipemedic test message for team {team}",
                markdown=f"**pipemedic test message for team {team}**\n" + message.markdown,
                html=f"<p><strong>pipemedic test message for team {team}</strong></p>"
                + message.html,
            )
            result = await sender.send(dest.where, message, incident)
            rows.append(
                (
                    dest.where,
                    dest.kind,
                    result.outcome + (f" ({result.error})" if result.error else ""),
                )
            )
    finally:
        await sender.close()
    return rows


def run_test(args: argparse.Namespace) -> int:
    """Send the test messages and report per destination."""
    spec_path = resolve_spec_path(args.spec, None)
    try:
        spec = load_spec(spec_path)
        team = spec.team(args.team)
        if team is None:
            known = ", ".join(sorted(spec.teams)) or "none"
            print(
                f"pipemedic notify: no team {args.team!r} in {spec.source} (teams: {known})",
                file=sys.stderr,
            )
            return 2
        if not team.notify:
            print(
                f"pipemedic notify: team {args.team!r} has no notify: destinations", file=sys.stderr
            )
            return 2
        rows = asyncio.run(_send_all(spec, args.team))
    except (ConfigError, RulesError) as exc:
        print(f"pipemedic notify: {exc}", file=sys.stderr)
        return 2
    for where, kind, outcome in rows:
        print(f"{where} ({kind}): {outcome}")
    return 0 if all(o == "sent" for _, _, o in rows) else 1


def register(sub: Any) -> None:
    """Add ``notify`` to the top-level parser."""
    parser = sub.add_parser("notify", help="notification destinations of the spec's teams")
    commands = parser.add_subparsers(dest="notify_command", metavar="COMMAND", required=True)
    test = commands.add_parser(
        "test", help="send a test message to each destination of a team and report each"
    )
    test.add_argument("--team", required=True, help="the spec's team whose destinations get it")
    test.add_argument(
        "--spec",
        default=None,
        metavar="rules/pipelines.yml",
        help="the spec with the team (default ./rules/pipelines.yml)",
    )
    test.set_defaults(func=run_test)
