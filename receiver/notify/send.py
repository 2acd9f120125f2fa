"""Send rendered messages to the spec's destinations through apprise.

``AppriseSender.prepare`` runs at start-up: it expands every ``${VAR}`` of
every team's destination URLs and builds apprise's plugin for each, so a
missing variable or a URL apprise refuses stops the receiver with an error
naming the team and destination (``teams.<team>.notify[<i>]``), never the
URL or its secrets. Sending runs apprise's blocking plugins on a small
thread pool, off the event loop. Chat destinations get Markdown; email
(``mailto``/``mailtos``) gets HTML, which apprise sends with a plain-text
part; ``to: [roles]`` adds the role holders' email addresses.

Example::

    sender = AppriseSender.prepare(spec)            # raises NotifyConfigError
    result = await sender.send("teams.data-platform.notify[0]", message, incident)
    result.outcome, result.retryable
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from receiver.errors import NotifyConfigError
from receiver.models import Incident
from receiver.notify.messages import Message
from rules.people import Destination, UnsetVariable, build_plugin, expand_url
from rules.spec import Spec

__all__ = ["AppriseSender", "Delivery", "NotifyConfigError", "Sender", "email_recipients"]

_EMAIL_KINDS = frozenset({"mailto", "mailtos"})


@dataclass(frozen=True)
class Delivery:
    """What one send did: ``sent`` or ``failed``, and whether trying again may help."""

    outcome: str
    retryable: bool = True
    error: str = ""


class Sender(Protocol):
    """Deliver one message to one destination (by its key); never raises."""

    async def send(self, key: str, message: Message, incident: Incident) -> Delivery: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class _Prepared:
    destination: Destination
    url: str  # expanded: holds secrets, never shown
    plugin: Any


def email_recipients(destination: Destination, incident: Incident, spec: Spec) -> list[str]:
    """Return the email addresses of the incident's holders of ``destination.to`` roles."""
    team = spec.team(destination.team)
    if team is None:
        return []
    found: list[str] = []
    for role in destination.to:
        value = incident.roles.get(role)
        for name in value if isinstance(value, list) else [value]:
            person = team.person(str(name)) if name else None
            if person is not None and person.email and person.email not in found:
                found.append(person.email)
    return found


class AppriseSender:
    """Send through apprise plugins built once from the spec's destinations."""

    def __init__(self, spec: Spec, prepared: Mapping[str, _Prepared], threads: int = 4) -> None:
        self.spec = spec
        self._prepared = dict(prepared)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pipemedic-notify")
        logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)  # its lines may hold URLs

    @classmethod
    def prepare(
        cls,
        spec: Spec,
        env: Mapping[str, str] | None = None,
        threads: int = 4,
        team: str | None = None,
    ) -> AppriseSender:
        """Expand and check every destination (of ``team`` only, if given), naming any failing."""
        prepared: dict[str, _Prepared] = {}
        for found in spec.teams.values():
            if team is not None and found.name != team:
                continue
            for dest in found.notify:
                where = f"{dest.where}.url"
                try:
                    url = expand_url(dest.url, env)
                except UnsetVariable as exc:
                    raise NotifyConfigError(spec.source, where, str(exc)) from None
                plugin = build_plugin(url)
                if plugin is None:
                    raise NotifyConfigError(
                        spec.source,
                        where,
                        f"apprise's {dest.kind}:// plugin refuses the expanded URL",
                    )
                prepared[dest.where] = _Prepared(dest, url, plugin)
        return cls(spec, prepared, threads)

    def destinations(self) -> list[Destination]:
        """Return every prepared destination, in spec order."""
        return [p.destination for p in self._prepared.values()]

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def send(self, key: str, message: Message, incident: Incident) -> Delivery:
        prepared = self._prepared.get(key)
        if prepared is None:
            return Delivery("failed", retryable=False, error="destination no longer configured")
        plugin = prepared.plugin
        is_email = prepared.destination.kind in _EMAIL_KINDS
        if is_email and prepared.destination.to:
            to = email_recipients(prepared.destination, incident, self.spec)
            if to:
                sep = "&" if "?" in prepared.url else "?"
                plugin = build_plugin(f"{prepared.url}{sep}to={quote(','.join(to), safe=',@')}")
        if plugin is None:
            return Delivery("failed", retryable=False, error="email recipients refused")
        # chat plugins put the title in as raw text: the Markdown body starts with it, escaped
        title, body, fmt = (
            (message.title, message.html, "html") if is_email else ("", message.markdown, "md")
        )
        loop = asyncio.get_running_loop()
        try:
            ok = await loop.run_in_executor(self._pool, _notify, plugin, body, title, fmt)
        except Exception as exc:  # a plugin bug: report it, retry later
            return Delivery("failed", error=f"{type(exc).__name__} in apprise plugin")
        if ok:
            return Delivery("sent", retryable=False)
        return Delivery("failed", error=f"{prepared.destination.kind} destination refused or down")


def _notify(plugin: Any, body: str, title: str, fmt: str) -> bool:
    import apprise

    body_format = apprise.NotifyFormat.HTML if fmt == "html" else apprise.NotifyFormat.MARKDOWN
    return bool(plugin.notify(body=body, title=title, body_format=body_format))
