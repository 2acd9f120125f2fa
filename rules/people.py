"""People and notification destinations of a team (``teams.<name>`` in the spec).

Roles name people: a string (the name) or ``{name, email, chat}``. ``notify:``
lists destinations, each an apprise URL (Slack, Teams, Mattermost, Discord,
``mailto://`` SMTP, ``json://`` webhooks, ...) with ``min_sev`` and ``events``.
``${VAR}`` in a URL is expanded from the environment when the receiver starts
(``expand_url``), so secrets stay out of the spec; the raw URL and its
expansion are never printed: destinations are named ``<team>.notify[<i>]``.

``rules check`` asks apprise whether a plugin takes each URL
(``url_problem``): a literal URL must build a plugin; a URL with unset
``${VAR}`` parts must at least have a scheme some plugin serves.

Example::

    team.commander               # 'Ada Lovelace' (the name, as before)
    team.person("Ada Lovelace")  # Person(name=..., email='ada@example.com', chat='ada')
    [d.where for d in team.notify]   # ['teams.data-platform.notify[0]']
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from rules.errors import UnsetVariable
from rules.severity import sev_rank

__all__ = [
    "NOTIFY_EVENTS",
    "ROLES",
    "Destination",
    "Person",
    "UnsetVariable",
    "destination_kind",
    "expand_url",
    "parse_destinations",
    "parse_person",
    "url_problem",
]

# The events a destination may take (docs/notifications.md), in incident order.
NOTIFY_EVENTS: tuple[str, ...] = (
    "opened",
    "escalated",
    "approval_needed",
    "handoff",
    "status_update",
    "resolved",
    "closed",
)
ROLES: tuple[str, ...] = ("commander", "scribe", "liaison", "sme")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class Person:
    """Someone who can hold a role; ``chat`` is their handle, mentioned on purpose."""

    name: str
    email: str | None = None
    chat: str | None = None


@dataclass(frozen=True)
class Destination:
    """Where a team's messages go: an apprise URL template and what it takes.

    ``to`` names roles whose people's ``email`` is added as recipients of an
    email (``mailto``) destination.
    """

    team: str
    index: int
    url: str
    min_sev: str = "SEV5"
    events: tuple[str, ...] = NOTIFY_EVENTS
    to: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        """Name the destination without its URL (which may hold secrets)."""
        return f"teams.{self.team}.notify[{self.index}]"

    @property
    def kind(self) -> str:
        return destination_kind(self.url)

    def takes(self, event: str, sev: str) -> bool:
        """Say whether this destination wants ``event`` of an incident at ``sev``."""
        return event in self.events and sev_rank(sev) <= sev_rank(self.min_sev)


def destination_kind(url: str) -> str:
    """Return the URL's scheme, lower case (a metric label: ``mailto``, ``mmost``, ...)."""
    found = _SCHEME.match(url)
    return found.group(1).lower() if found else "unknown"


def expand_url(url: str, env: Mapping[str, str] | None = None) -> str:
    """Replace every ``${VAR}`` from ``env`` (default: the process environment)."""
    source = os.environ if env is None else env
    missing = [name for name in _VAR.findall(url) if not source.get(name)]
    if missing:
        raise UnsetVariable(f"environment variable {', '.join(sorted(set(missing)))} is not set")
    return _VAR.sub(lambda m: source[m.group(1)], url)


def parse_person(raw: Any) -> Person:
    """Build a Person from a name or a ``{name, email, chat}`` mapping (schema-checked)."""
    if isinstance(raw, str):
        return Person(name=raw)
    return Person(name=raw["name"], email=raw.get("email"), chat=raw.get("chat"))


def parse_destinations(team: str, raw: Any) -> tuple[Destination, ...]:
    """Build a team's destinations from its (schema-checked) ``notify:`` list."""
    return tuple(
        Destination(
            team=team,
            index=i,
            url=entry["url"],
            min_sev=entry.get("min_sev", "SEV5"),
            events=tuple(entry.get("events") or NOTIFY_EVENTS),
            to=tuple(entry.get("to") or ()),
        )
        for i, entry in enumerate(raw or ())
    )


@cache
def _schemes() -> frozenset[str]:
    from apprise.manager_plugins import NotificationManager

    manager: Any = NotificationManager  # untyped in apprise
    return frozenset(str(s).lower() for s in manager().schemas())


def url_problem(url: str, env: Mapping[str, str] | None = None) -> str | None:
    """Return why no apprise plugin takes ``url`` (None: one does); never echoes the URL.

    ``${VAR}`` parts are expanded when set; with some unset, only the scheme
    can be checked (the receiver checks the whole URL when it starts).
    """
    scheme = destination_kind(url)
    if scheme == "unknown":
        return "not an apprise URL (expected scheme://..., e.g. mailto://, slack://, json://)"
    if scheme not in _schemes():
        return f"no apprise plugin takes {scheme}:// URLs"
    try:
        expanded = expand_url(url, env)
    except UnsetVariable:
        return None
    if build_plugin(expanded) is None:
        return f"apprise's {scheme}:// plugin refuses this URL (check its host, tokens and query)"
    return None


def build_plugin(url: str) -> Any:
    """Return apprise's plugin instance for an expanded URL, or None (nothing logged)."""
    import logging

    import apprise

    logger = logging.getLogger("apprise")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)  # apprise logs refused URLs, secrets included
    try:
        return apprise.Apprise.instantiate(url, suppress_exceptions=True)
    finally:
        logger.setLevel(level)
