"""``pipemedic incidents list | show ID | postmortem ID``: incidents from a terminal.

People's actions (``ack``, ``assign``, ``note``, ... ``action-items``) live in
``receiver.people.cli`` and always go through the receiver's API.

The incidents come from the receiver's HTTP API (``--url``, the default,
``http://127.0.0.1:9099``) or straight from its store (``--store URL``, e.g.
``sqlite:///pipemedic-receiver.db`` or ``postgresql://...``) when the
receiver is not running. Both sources give the same ``Incident`` objects, so
the output is the same either way.

Exit codes: 0 done, 1 no such incident, 2 the source could not be read.

Example::

    pipemedic incidents list --state escalated --sev SEV2
    pipemedic incidents show 7 --json
    pipemedic incidents postmortem 7 --store sqlite:///pipemedic-receiver.db > pm-7.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit

import aiohttp

from receiver.errors import SourceError
from receiver.models import INCIDENT_STATES, ActionRecord, Incident, format_time, utcnow
from receiver.people.cli import (
    PEOPLE_COMMANDS,
    CredentialsError,
    add_credentials,
    credentials,
    register_people,
    run_people,
)
from receiver.report.facts import (
    alert_summaries,
    clean_text,
    format_duration,
    incident_began,
    incident_duration,
    users_affected,
)
from receiver.report.page import PageQuery
from receiver.report.postmortem import render_postmortem
from receiver.store import StoreError, open_store
from receiver.store.base import Store
from receiver.store.codec import incident_from_doc
from rules.severity import SEVS
from rules.spec import Spec, load_spec

__all__ = ["ApiSource", "SourceError", "StoreSource", "incident_from_json", "register"]

DEFAULT_URL = "http://127.0.0.1:9099"


class IncidentSource(Protocol):
    """Where incidents are read from: the receiver's API or its store."""

    async def list(self, query: PageQuery) -> list[Incident]: ...

    async def get(self, incident_id: int) -> Incident | None: ...

    async def postmortem(self, incident_id: int, regenerate: bool) -> str | None: ...

    async def close(self) -> None: ...


def incident_from_json(doc: dict[str, Any]) -> Incident:
    """Rebuild an ``Incident`` from its API JSON (``Incident.to_json``)."""
    actions = [ActionRecord.from_json(a) for a in doc.get("actions") or []]
    return incident_from_doc(doc, actions)


class ApiSource:
    """Read incidents from a running receiver over HTTP."""

    def __init__(
        self, base_url: str, timeout: float = 10.0, authorization: str | None = None
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SourceError(f"--url {base_url!r}: expected http://HOST:PORT")
        self.base_url = base_url.rstrip("/")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"Accept": "application/json"}
            | ({"Authorization": authorization} if authorization else {}),
        )

    async def _get(self, path: str) -> tuple[int, str]:
        return await self.request("GET", path)

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, str]:
        """Send one request to the receiver; ``SourceError`` if it cannot be reached."""
        url = self.base_url + path
        try:
            async with self._session.request(method, url, json=body) as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise SourceError(f"cannot reach the receiver at {url}: {reason}") from None

    def _fail(self, path: str, status: int, body: str) -> SourceError:
        try:
            reason = json.loads(body).get("error", body)
        except (ValueError, AttributeError):
            reason = body[:200]
        return SourceError(f"{self.base_url}{path}: HTTP {status}: {reason}")

    async def list(self, query: PageQuery) -> list[Incident]:
        path = "/incidents?" + query.params()
        status, body = await self._get(path)
        if status != 200:
            raise self._fail(path, status, body)
        return [incident_from_json(doc) for doc in json.loads(body)["incidents"]]

    async def get(self, incident_id: int) -> Incident | None:
        path = f"/incidents/{incident_id}"
        status, body = await self._get(path)
        if status == 404:
            return None
        if status != 200:
            raise self._fail(path, status, body)
        return incident_from_json(json.loads(body))

    async def postmortem(self, incident_id: int, regenerate: bool) -> str | None:
        path = f"/incidents/{incident_id}/postmortem" + ("?regenerate=1" if regenerate else "")
        status, body = await self._get(path)
        if status == 404:
            return None
        if status != 200:
            raise self._fail(path, status, body)
        return body

    async def close(self) -> None:
        await self._session.close()


class StoreSource:
    """Read incidents straight from the receiver's store (no receiver needed)."""

    def __init__(self, url: str, spec: Spec | None) -> None:
        self.url = url
        self.spec = spec
        self._store: Store | None = None

    async def _open(self) -> Store:

        if self._store is None:
            try:
                self._store = await open_store(self.url)
            except (StoreError, OSError) as exc:
                raise SourceError(f"cannot open the store {_redact(self.url)}: {exc}") from None
        return self._store

    async def list(self, query: PageQuery) -> list[Incident]:
        store = await self._open()
        return await store.list_incidents(
            state=query.state,
            pipeline=query.pipeline,
            sev=query.sev,
            limit=query.limit,
            offset=query.offset,
        )

    async def get(self, incident_id: int) -> Incident | None:
        store = await self._open()
        return await store.get_incident(incident_id)

    async def postmortem(self, incident_id: int, regenerate: bool) -> str | None:
        incident = await self.get(incident_id)
        if incident is None:
            return None
        if incident.postmortem is not None and not regenerate:
            return incident.postmortem
        return render_postmortem(incident, self.spec)

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()


def _redact(url: str) -> str:
    """Drop credentials from a store URL before it goes into a message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()


# --- output -------------------------------------------------------------------


def format_table(incidents: Sequence[Incident], now: Any) -> str:
    """Return the ``list`` table: one incident per line, columns aligned."""
    header = ("ID", "STATE", "SEV", "PIPELINE", "CAUSE", "BEGAN (UTC)", "DURATION", "ACTIONS")
    rows = [header]
    for i in incidents:
        rows.append(
            (
                str(i.id),
                clean_text(i.state),
                clean_text(i.sev),
                clean_text(i.pipeline),
                clean_text(i.diagnosis.cause if i.diagnosis else "-"),
                incident_began(i).strftime("%Y-%m-%d %H:%M"),
                format_duration(incident_duration(i, now)),
                str(len(i.actions)),
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def format_incident(i: Incident, now: Any) -> str:
    """Return the ``show`` text: facts, roles, diagnosis, actions, timeline."""
    lines = [
        f"incident {i.id}: {clean_text(i.pipeline)}",
        f"  state      {clean_text(i.state)}",
        f"  sev        {clean_text(i.sev)} ({users_affected(i)})",
        f"  category   {clean_text(i.category or '-')}",
        f"  team       {clean_text(i.team or '-')}",
        f"  began      {format_time(incident_began(i))}",
        f"  resolved   {format_time(i.resolved_at) or '-'}",
        f"  duration   {format_duration(incident_duration(i, now))}",
    ]
    for role in ("commander", "scribe", "liaison", "sme"):
        who = i.roles.get(role)
        if who:
            text = ", ".join(map(str, who)) if isinstance(who, list) else str(who)
            lines.append(f"  {role:<10} {clean_text(text)}")
    lines.append("alerts:")
    for name, summary in alert_summaries(i):
        lines.append(f"  {clean_text(name)}: {clean_text(summary)}")
    if i.diagnosis:
        d = i.diagnosis
        lines.append(f"diagnosis: {clean_text(d.cause)} by {clean_text(d.handler)}")
        if d.summary:
            lines.append(f"  {clean_text(d.summary)}")
        if d.error:
            lines.append(f"  error: {clean_text(d.error)}")
    if i.actions:
        lines.append("actions:")
        for a in sorted(i.actions, key=lambda a: (a.started_at, a.step)):
            lines.append(
                f"  {format_time(a.started_at)}  {clean_text(a.step)}  {clean_text(a.outcome)}"
                + (f"  {clean_text(a.detail)}" if a.detail else "")
            )
    lines.append("timeline:")
    for t in i.sorted_timeline():
        detail = "" if t.detail in (None, "") else "  " + clean_text(_detail(t.detail))
        lines.append(f"  {format_time(t.at)}  {clean_text(t.event)}{detail}")
    return "\n".join(lines)


def _detail(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    return json.dumps(detail, sort_keys=True, ensure_ascii=False, default=str)


# --- commands -------------------------------------------------------------------


def _source(args: argparse.Namespace) -> IncidentSource:
    if args.store:
        spec = load_spec(args.spec) if args.spec else None
        return StoreSource(args.store, spec)
    return ApiSource(args.url or DEFAULT_URL, authorization=credentials(args))


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    if args.incidents_command in PEOPLE_COMMANDS:
        if args.store:
            raise SourceError("people's actions go through the receiver's API: use --url")
        return await run_people(
            args, out, ApiSource(args.url or DEFAULT_URL, authorization=credentials(args))
        )
    source = _source(args)
    try:
        return await _COMMANDS[args.incidents_command](source, args, out)
    finally:
        await source.close()


async def _list(source: IncidentSource, args: argparse.Namespace, out: TextIO) -> int:
    query = PageQuery(args.state, args.pipeline, args.sev, args.limit, args.offset)
    incidents = await source.list(query)
    if args.json:
        json.dump({"incidents": [i.to_json() for i in incidents]}, out, indent=2)
        out.write("\n")
    elif incidents:
        out.write(format_table(incidents, utcnow()) + "\n")
    else:
        out.write("no incidents\n")
    return 0


async def _show(source: IncidentSource, args: argparse.Namespace, out: TextIO) -> int:
    incident = await source.get(args.id)
    if incident is None:
        print(f"pipemedic incidents: no incident {args.id}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(incident.to_json(), out, indent=2)
        out.write("\n")
    else:
        out.write(format_incident(incident, utcnow()) + "\n")
    return 0


async def _postmortem(source: IncidentSource, args: argparse.Namespace, out: TextIO) -> int:
    text = await source.postmortem(args.id, args.regenerate)
    if text is None:
        print(f"pipemedic incidents: no incident {args.id}", file=sys.stderr)
        return 1
    out.write(text)
    return 0


_COMMANDS = {"list": _list, "show": _show, "postmortem": _postmortem}


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run one ``incidents`` sub-command; errors reading the source exit 2."""
    try:
        return asyncio.run(_run(args, out or sys.stdout))
    except (SourceError, CredentialsError) as exc:
        print(f"pipemedic incidents: {exc}", file=sys.stderr)
        return 2


def _natural(text: str, low: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        kind = "a positive" if low else "a non-negative"
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind} integer")
    return value


def _positive(text: str) -> int:
    return _natural(text, low=1)


def register(sub: Any) -> None:
    """Add ``incidents`` with ``list``, ``show``, ``postmortem`` and people's actions."""
    source = argparse.ArgumentParser(add_help=False)
    where = source.add_mutually_exclusive_group()
    where.add_argument("--url", help=f"the receiver's base URL (default {DEFAULT_URL})")
    where.add_argument(
        "--store", help="read the store directly: sqlite:///file.db or postgresql://"
    )
    source.add_argument("--spec", help="rules/pipelines.yml, for team roles (with --store)")
    add_credentials(source)

    parser = sub.add_parser("incidents", help="list, show and act on incidents; print post-mortems")
    commands = parser.add_subparsers(dest="incidents_command", metavar="SUBCOMMAND", required=True)

    listing = commands.add_parser("list", parents=[source], help="list incidents, newest first")
    listing.add_argument("--state", choices=INCIDENT_STATES, help="only incidents in this state")
    listing.add_argument("--pipeline", help="only this pipeline's incidents")
    listing.add_argument("--sev", choices=SEVS, help="only incidents of this SEV")
    listing.add_argument(
        "--limit", type=_positive, default=50, help="at most this many incidents (default 50)"
    )
    listing.add_argument(
        "--offset", type=_natural, default=0, help="skip this many of the newest (default 0)"
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")

    show = commands.add_parser("show", parents=[source], help="show one incident")
    show.add_argument("id", type=_positive, help="the incident's number (from `incidents list`)")
    show.add_argument("--json", action="store_true", help="print the incident's JSON")

    pm = commands.add_parser("postmortem", parents=[source], help="print the post-mortem draft")
    pm.add_argument("id", type=_positive, help="the incident's number (from `incidents list`)")
    pm.add_argument("--regenerate", action="store_true", help="render afresh, not the stored one")

    register_people(commands, source)
    parser.set_defaults(func=run)
