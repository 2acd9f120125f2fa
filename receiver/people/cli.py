"""``pipemedic incidents ack | assign | note | update | severity | handoff | approve | reject
| resolve | close | action-items``: people's actions from a terminal, through the receiver's API.

Credentials: ``--user NAME`` (or ``PIPEMEDIC_USER``) with the password in
``PIPEMEDIC_PASSWORD`` or ``--password-file`` (never on the command line,
where ``ps`` shows it). Without a user, no credentials are sent: enough for a
receiver with no users configured, on loopback.

Exit codes: 0 done, 1 no such incident, 2 the receiver could not be reached,
3 refused (400 bad input, 401 not signed in, 403 not allowed, 409 the state
does not allow it, 429 too many failed logins); the message says which.

Example::

    export PIPEMEDIC_USER=alice PIPEMEDIC_PASSWORD=...
    pipemedic incidents ack 7
    pipemedic incidents assign 7 commander alice
    pipemedic incidents close 7 --measure "rate-limit the client" \\
        --item "add a limiter test|bob|2026-02-01"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

import aiohttp

from receiver.people.actions import ROLES
from rules.severity import SEVS

__all__ = [
    "PEOPLE_COMMANDS",
    "CredentialsError",
    "add_credentials",
    "credentials",
    "register_people",
    "run_people",
]


class CredentialsError(Exception):
    """A user was named but no password given (or the password file is unreadable)."""


class Api(Protocol):
    """The receiver's API as the CLI talks to it (``receiver.incidents_cli.ApiSource``)."""

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, str]: ...

    async def close(self) -> None: ...


def add_credentials(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", help="sign in as this user (default: $PIPEMEDIC_USER)")
    parser.add_argument(
        "--password-file", help="read the password from this file (default: $PIPEMEDIC_PASSWORD)"
    )


def credentials(args: argparse.Namespace) -> str | None:
    """Return the ``Authorization`` header the flags and environment give, if a user is named."""
    user = getattr(args, "user", None) or os.environ.get("PIPEMEDIC_USER")
    if not user:
        return None
    password_file = getattr(args, "password_file", None)
    if password_file:
        try:
            password = Path(password_file).read_text(encoding="utf-8").rstrip("\n")
        except OSError as exc:
            raise CredentialsError(f"--password-file {password_file}: {exc}") from None
    else:
        password = os.environ.get("PIPEMEDIC_PASSWORD", "")
        if not password:
            raise CredentialsError(
                f"user {user!r} needs a password: set PIPEMEDIC_PASSWORD or give --password-file"
            )
    return aiohttp.encode_basic_auth(user, password)


def _review(args: argparse.Namespace) -> dict[str, Any]:
    if args.review:
        try:
            doc = json.loads(Path(args.review).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CredentialsError(f"--review {args.review}: {exc}") from None
        return doc.get("review", doc) if isinstance(doc, dict) else {}
    items = []
    for text in args.item or []:
        action, owner, due = [*(p.strip() for p in text.split("|")), "", ""][:3]
        items.append({"action": action, "owner": owner, "due": due})
    return {"preventive_measures": args.measure or [], "action_items": items}


# command -> (path segment, how to build the body)
_BODIES: dict[str, tuple[str, Any]] = {
    "ack": ("acknowledge", lambda a: {}),
    "assign": ("roles", lambda a: {"role": a.role, "person": a.person}),
    "note": ("notes", lambda a: {"text": a.text}),
    "update": ("status-updates", lambda a: {"text": a.text}),
    "severity": ("severity", lambda a: {"sev": a.sev, "why": a.why}),
    "handoff": ("handoff", lambda a: {"role": a.role, "to": a.to, "note": a.note}),
    "approve": ("approve", lambda a: {"why": a.why or ""}),
    "reject": ("reject", lambda a: {"why": a.why or ""}),
    "resolve": ("resolve", lambda a: {"how": a.how}),
    "close": ("close", lambda a: {"review": _review(a)}),
}
PEOPLE_COMMANDS = frozenset({*_BODIES, "action-items"})

_WHY = {
    400: "bad input",
    401: "not signed in (give --user and PIPEMEDIC_PASSWORD)",
    403: "not allowed",
    409: "not in this state",
    429: "too many failed logins",
}


def _refused(status: int, body: str) -> int:
    try:
        doc = json.loads(body)
        reason = doc.get("error", body)
        extra = f" (field {doc['field']})" if doc.get("field") else ""
        extra += f" (state {doc['state']})" if doc.get("state") else ""
    except (ValueError, AttributeError):
        reason, extra = body[:200], ""
    what = _WHY.get(status, "refused")
    print(f"pipemedic incidents: HTTP {status} {what}: {reason}{extra}", file=sys.stderr)
    return 1 if status == 404 else 3


async def run_people(args: argparse.Namespace, out: TextIO, api: Api) -> int:
    """Run one people's command against the API; see the module docstring for exit codes."""
    try:
        command = args.incidents_command
        if command == "action-items":
            path = "/action-items" + (f"?owner={args.owner}" if args.owner else "")
            status, body = await api.request("GET", path)
            if status != 200:
                return _refused(status, body)
            items = json.loads(body)["action_items"]
            if args.json:
                json.dump({"action_items": items}, out, indent=2)
                out.write("\n")
            elif not items:
                out.write("no open action items\n")
            for item in [] if args.json else items:
                late = " OVERDUE" if item.get("overdue") else ""
                out.write(
                    f"{item['due']}{late}  {item['owner']:<16} #{item['incident']} "
                    f"{item['pipeline']}: {item['action']}\n"
                )
            return 0
        segment, build = _BODIES[command]
        status, body = await api.request("POST", f"/incidents/{args.id}/{segment}", build(args))
        if status != 200:
            return _refused(status, body)
        doc = json.loads(body)
        last = doc["timeline"][-1] if doc.get("timeline") else {}
        out.write(
            f"incident {doc['id']} ({doc['pipeline']}): {last.get('event', segment)} "
            f"by {last.get('by', '?')}; now {doc['state']}, {doc['sev']}\n"
        )
        return 0
    finally:
        await api.close()


def register_people(commands: Any, source: argparse.ArgumentParser) -> None:
    """Add the people's commands to ``pipemedic incidents`` (``source``: --url and credentials)."""

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, parents=[source], help=help_text
        )
        if name != "action-items":
            parser.add_argument("id", type=int, help="the incident's number")
        return parser

    add("ack", "acknowledge: you take the incident")
    assign = add("assign", "assign or reassign a role")
    assign.add_argument("role", choices=ROLES, help="the incident role to fill")
    assign.add_argument("person", help="who takes the role (a name or user)")
    add("note", "add a note to the timeline").add_argument("text", help="the note")
    add("update", "post the liaison's status update").add_argument(
        "text", help="the status update for the people affected"
    )
    severity = add("severity", "raise or lower the SEV, with a reason")
    severity.add_argument("sev", choices=SEVS, help="the new SEV")
    severity.add_argument("--why", required=True, help="why the SEV changes (on the timeline)")
    handoff = add("handoff", "hand a role over to someone, with a note")
    handoff.add_argument("role", choices=ROLES, help="the role handed over")
    handoff.add_argument("to", help="who takes the role over")
    handoff.add_argument("--note", required=True, help="what the next person needs to know")
    add("approve", "approve the recovery step waiting for approval").add_argument(
        "--why", help="why it is approved (on the timeline)"
    )
    add("reject", "reject the waiting step (escalates)").add_argument(
        "--why", help="why it is rejected (on the timeline)"
    )
    add("resolve", "resolve by hand, saying how").add_argument(
        "--how", required=True, help="how the incident was resolved"
    )
    close = add("close", "close with the review")
    close.add_argument("--measure", action="append", help="a preventive measure (repeat)")
    close.add_argument(
        "--item", action="append", help="an action item 'action|owner|YYYY-MM-DD' (repeat)"
    )
    close.add_argument("--review", help="a JSON file with the whole review instead")
    items = add("action-items", "open action items of closed reviews, by owner and due date")
    items.add_argument("--owner", help="only this owner's items")
    items.add_argument("--json", action="store_true", help="print JSON instead of a table")
