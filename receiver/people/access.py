"""Who is asking, and may they: people's sign-in, roles and CSRF, apart from Alertmanager's.

A person is recognised, in this order, by

1. an oauth2-proxy identity header (``X-Forwarded-User``, else
   ``X-Forwarded-Email``), honoured only when the peer is one of
   ``people.proxy.addresses`` (anyone else could send the header);
2. the page's session cookie (signed with HMAC-SHA256; made by ``POST /login``);
3. ``Authorization: Basic`` with a configured user's password (argon2 hashes;
   the CLI's way).

With neither users nor a proxy configured, the people's routes answer only on
loopback, where everyone is the responder ``local``. Failed passwords are
counted per client address: after ``people.login.max_failures`` within the
window, further attempts get 429 without a password check.

Forms are protected against cross-site posts by a double-submit token (a
random ``pipemedic_csrf`` cookie that every form repeats in its ``csrf``
field) plus an ``Origin`` check; JSON posts must say ``application/json``,
which a cross-site form cannot send without a CORS preflight this server never
grants.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from receiver.people.config import PeopleConfig

__all__ = [
    "ACCESS",
    "CSRF_COOKIE",
    "PERSON",
    "SESSION_COOKIE",
    "Access",
    "Person",
    "Refused",
    "access_middleware",
    "check_csrf",
    "csrf_token",
    "hash_password",
    "is_loopback",
    "wants_html",
]

SESSION_COOKIE = "pipemedic_session"
CSRF_COOKIE = "pipemedic_csrf"
_RANK = {"viewer": 1, "responder": 2}


@dataclass(frozen=True)
class Person:
    """Who is asking (``name`` goes into timeline entries' ``by``) and what they may do."""

    name: str
    role: str
    via: str  # proxy | session | password | loopback

    def may(self, role: str) -> bool:
        return _RANK[self.role] >= _RANK[role]


class Refused(Exception):
    """A request the people's routes refuse: 401, 403 or 429, with a JSON body."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    def response(self) -> web.Response:
        response = web.json_response({"error": str(self)}, status=self.status)
        if self.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="pipemedic", charset="UTF-8"'
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        return response


def hash_password(password: str) -> str:
    """Return an argon2id hash of ``password`` for ``people.users[].password_hash``."""
    return PasswordHasher().hash(password)


def is_loopback(peer: str | None) -> bool:
    try:
        return ipaddress.ip_address(peer or "").is_loopback
    except ValueError:
        return False


def wants_html(request: web.Request) -> bool:
    """True for a browser (``Accept`` prefers text/html); tools get JSON."""
    accept = request.headers.get("Accept", "")
    first = accept.split(",", 1)[0].strip().lower()
    return first.startswith("text/html")


class Access:
    """Recognise people and check their role (see the module docstring)."""

    def __init__(
        self, config: PeopleConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.clock = clock
        self.secret = (config.session_secret or secrets.token_hex(32)).encode()
        self.hasher = PasswordHasher()
        # checked for unknown names too, so a wrong name costs what a wrong password does
        self._decoy = self.hasher.hash(secrets.token_hex(16))
        self._failures: dict[str, deque[float]] = {}

    @property
    def open(self) -> bool:
        return self.config.open

    # passwords -----------------------------------------------------------------
    def _limited(self, client: str) -> int | None:
        """Seconds to wait when ``client`` failed too often within the window."""
        window = self.config.failure_window_seconds
        failures = self._failures.get(client)
        if not failures:
            return None
        now = self.clock()
        while failures and now - failures[0] > window:
            failures.popleft()
        if len(failures) < self.config.max_failures:
            return None
        return max(1, int(window - (now - failures[0])) + 1)

    async def check_password(self, client: str, name: str, password: str) -> Person:
        """Return the user for a right password; 429 while ``client`` is limited, else 401."""
        wait = self._limited(client)
        if wait is not None:
            raise Refused(429, f"too many failed logins from {client}; try again later", wait)
        user = self.config.users.get(name)
        hashed = user.password_hash if user is not None else self._decoy
        ok: bool
        try:
            ok = await asyncio.to_thread(self.hasher.verify, hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok or user is None:
            if len(self._failures) > 10_000:  # bounded memory under a spray of addresses
                self._failures.clear()
            self._failures.setdefault(client, deque()).append(self.clock())
            raise Refused(401, "wrong user name or password")
        self._failures.pop(client, None)
        return Person(user.name, user.role, "password")

    # sessions ------------------------------------------------------------------
    def _sign(self, payload: str) -> str:
        return hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()

    def session_cookie(self, person: Person) -> str:
        expires = int(time.time() + self.config.session_seconds)
        name = base64.urlsafe_b64encode(person.name.encode()).decode()
        payload = f"{name}.{expires}"
        return f"{payload}.{self._sign(payload)}"

    def session_person(self, cookie: str) -> Person | None:
        name_b64, _, rest = cookie.partition(".")
        expires, _, signature = rest.partition(".")
        payload = f"{name_b64}.{expires}"
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        if not expires.isdigit() or int(expires) < time.time():
            return None
        try:
            name = base64.urlsafe_b64decode(name_b64.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        user = self.config.users.get(name)  # removed users lose their sessions
        return Person(user.name, user.role, "session") if user is not None else None

    # who is asking ---------------------------------------------------------------
    async def identify(self, request: web.Request) -> Person | None:
        """Return the person behind ``request``, ``None`` if it carries no identity."""
        peer = request.remote
        proxy = self.config.proxy
        if proxy is not None and proxy.trusts(peer):
            name = request.headers.get("X-Forwarded-User") or request.headers.get(
                "X-Forwarded-Email"
            )
            if name:
                email = request.headers.get("X-Forwarded-Email", "")
                responder = name in proxy.responders or email in proxy.responders
                return Person(name[:200], "responder" if responder else proxy.role, "proxy")
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and self.config.users:
            person = self.session_person(cookie)
            if person is not None:
                return person
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "basic" and self.config.users:
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raise Refused(401, "malformed basic credentials") from None
            name, _, password = decoded.partition(":")
            return await self.check_password(peer or "?", name, password)
        if self.open:
            if not is_loopback(peer):
                raise Refused(
                    403,
                    "no users are configured (receiver.yml people:), so people's routes "
                    "answer only on loopback",
                )
            return Person("local", "responder", "loopback")
        return None

    async def authorize(self, request: web.Request, role: str) -> Person:
        """Return the person if they hold ``role``; 401 without identity, 403 without role."""
        person = await self.identify(request)
        if person is None:
            raise Refused(401, "sign in: a user name and password, or the page's login")
        if not person.may(role):
            raise Refused(403, f"{person.name} is a {person.role}; this needs a {role}")
        return person


ACCESS: web.AppKey[Access] = web.AppKey("people_access", Access)
PERSON: web.RequestKey[Person] = web.RequestKey("pipemedic_person", Person)  # who is asking

# route name -> the role it needs (routes not listed are not people's routes)
ROUTE_ROLES: dict[str, str] = {
    "incidents_page": "viewer",
    "incidents": "viewer",
    "incident": "viewer",
    "incident_live": "viewer",
    "postmortem": "viewer",
    "action_items": "viewer",
    "incident_action": "responder",
}


@web.middleware
async def access_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Check the person and role of every people's route; others pass untouched."""
    route = request.match_info.route.name
    need = ROUTE_ROLES.get(route or "")
    if need is None:
        return await handler(request)
    try:
        request[PERSON] = await request.app[ACCESS].authorize(request, need)
    except Refused as exc:
        if exc.status == 401 and request.method == "GET" and wants_html(request):
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}") from None
        return exc.response()
    return await handler(request)


# CSRF -----------------------------------------------------------------------------


def csrf_token(request: web.Request) -> str:
    """Return the request's double-submit token (a new one if it has none yet)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    return token if len(token) == 43 else secrets.token_urlsafe(32)


def set_csrf_cookie(response: web.StreamResponse, token: str, request: web.Request) -> None:
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=request.secure, path="/"
        )


def check_csrf(request: web.Request, form: Mapping[str, Any]) -> None:
    """Refuse (403) a form post without the cookie's token, or from another origin."""
    origin = request.headers.get("Origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc != request.host):
        raise Refused(403, f"cross-site form post refused (Origin {origin[:100]!r})")
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        raise Refused(403, "cross-site form post refused (Sec-Fetch-Site)")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get("csrf")
    if not cookie or not isinstance(sent, str) or not hmac.compare_digest(cookie, sent):
        raise Refused(403, "form post without a valid CSRF token refused; reload the page")
