"""The ``people:`` section of ``receiver.yml``: who may read and act, and how they sign in.

Example::

    people:
      users:                       # password hashes from `pipemedic receiver hash-password`
        - {name: alice, role: responder, password_hash: "$argon2id$v=19$..."}
        - {name: dana, role: viewer, password_hash: "$argon2id$v=19$..."}
      proxy:                       # oauth2-proxy in front: X-Forwarded-User / -Email
        addresses: [127.0.0.1, 10.0.0.0/8]   # honoured only from these peers
        role: viewer               # everyone it lets through
        responders: [alice@example.com]
      session_secret_env: PIPEMEDIC_SESSION_SECRET   # same on every replica
      session_hours: 12
      login: {max_failures: 5, window: 15m}          # per client address
      prometheus_external_url: https://prometheus.example.com   # graph links' only host

Roles: ``viewer`` reads, ``responder`` reads and acts. With neither users nor
a proxy configured (the embedded default) the people's routes answer only on
loopback, and everyone there is a responder.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = ["ROLES", "PeopleConfig", "ProxyConfig", "User", "parse_people"]

ROLES = ("viewer", "responder")
_HASH_PREFIXES = ("$argon2id$", "$argon2i$", "$argon2d$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Reader(Protocol):
    """What ``receiver.config``'s reader offers (typed fields, errors with file and path)."""

    def fail(self, path: str, message: str) -> Exception: ...

    def mapping(self, value: Any, path: str, allowed: frozenset[str]) -> Mapping[str, Any]: ...

    def string(self, value: Any, path: str) -> str: ...

    def integer(self, value: Any, path: str, minimum: int) -> int: ...

    def duration(self, value: Any, path: str) -> float: ...

    def secret(self, section: Mapping[str, Any], path: str, name: str) -> str | None: ...


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str


@dataclass(frozen=True)
class ProxyConfig:
    """A reverse proxy (oauth2-proxy) whose identity headers are trusted from ``addresses``."""

    addresses: tuple[Network, ...]
    role: str = "viewer"
    responders: frozenset[str] = frozenset()

    def trusts(self, peer: str | None) -> bool:
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        return any(address in network for network in self.addresses)


@dataclass(frozen=True)
class PeopleConfig:
    users: Mapping[str, User] = field(default_factory=dict)
    proxy: ProxyConfig | None = None
    session_secret: str | None = None
    session_seconds: float = 12 * 3600.0
    max_failures: int = 5
    failure_window_seconds: float = 900.0
    prometheus_external_url: str | None = None  # None: the receiver's prometheus_url

    @property
    def open(self) -> bool:
        """No users and no proxy: loopback only, everyone there a responder."""
        return not self.users and self.proxy is None


def parse_people(raw: Any, reader: Reader) -> PeopleConfig:
    """Parse ``people:``; without ``prometheus_external_url`` graph links use ``prometheus_url``."""
    section = reader.mapping(
        raw,
        "people",
        frozenset(
            {
                "users",
                "proxy",
                "session_secret",
                "session_secret_file",
                "session_secret_env",
                "session_hours",
                "login",
                "prometheus_external_url",
            }
        ),
    )
    users: dict[str, User] = {}
    listed = section.get("users") or []
    if not isinstance(listed, list):
        raise reader.fail("people.users", "must be a list")
    for i, entry in enumerate(listed):
        where = f"people.users[{i}]"
        doc = reader.mapping(entry, where, frozenset({"name", "role", "password_hash"}))
        name = reader.string(doc.get("name"), f"{where}.name")
        if ":" in name or name in users:
            raise reader.fail(f"{where}.name", f"{name!r} contains ':' or is listed twice")
        role = reader.string(doc.get("role", "viewer"), f"{where}.role")
        if role not in ROLES:
            raise reader.fail(f"{where}.role", f"must be one of {', '.join(ROLES)}")
        hashed = reader.string(doc.get("password_hash"), f"{where}.password_hash")
        if not hashed.startswith(_HASH_PREFIXES):
            raise reader.fail(
                f"{where}.password_hash",
                "must be an argon2 hash made by `pipemedic receiver hash-password`",
            )
        users[name] = User(name, role, hashed)
    proxy = None
    if section.get("proxy") is not None:
        doc = reader.mapping(
            section["proxy"], "people.proxy", frozenset({"addresses", "role", "responders"})
        )
        found = doc.get("addresses")
        if not isinstance(found, list) or not found:
            raise reader.fail("people.proxy.addresses", "must list the proxy's addresses")
        networks: list[Network] = []
        for i, text in enumerate(found):
            try:
                networks.append(ipaddress.ip_network(str(text), strict=False))
            except ValueError as exc:
                raise reader.fail(f"people.proxy.addresses[{i}]", str(exc)) from None
        role = reader.string(doc.get("role", "viewer"), "people.proxy.role")
        if role not in ROLES:
            raise reader.fail("people.proxy.role", f"must be one of {', '.join(ROLES)}")
        responders = doc.get("responders") or []
        if not isinstance(responders, list):
            raise reader.fail("people.proxy.responders", "must be a list of user names")
        proxy = ProxyConfig(tuple(networks), role, frozenset(str(r) for r in responders))
    login = reader.mapping(
        section.get("login"), "people.login", frozenset({"max_failures", "window"})
    )
    external = section.get("prometheus_external_url")
    if external is not None:
        external = reader.string(external, "people.prometheus_external_url").rstrip("/")
        parts = urlsplit(external)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise reader.fail(
                "people.prometheus_external_url", f"must be an http(s) URL: {external!r}"
            )
    hours = section.get("session_hours", 12)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0:
        raise reader.fail("people.session_hours", f"must be a positive number, got {hours!r}")
    return PeopleConfig(
        users=users,
        proxy=proxy,
        session_secret=reader.secret(section, "people", "session_secret"),
        session_seconds=float(hours) * 3600.0,
        max_failures=reader.integer(login.get("max_failures", 5), "people.login.max_failures", 1),
        failure_window_seconds=reader.duration(login.get("window", 900), "people.login.window"),
        prometheus_external_url=external,
    )
