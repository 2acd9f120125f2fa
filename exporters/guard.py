"""Admit a POST to the exporter: the optional bearer token, then ``application/json``.

Both POST endpoints (``/events`` and ``/api/v1/lineage``) pass here before
their body is read. A bearer token, when configured (``--bearer-token-file``
or ``PIPEMEDIC_EXPORTER_TOKEN``), is compared in constant time on SHA-256
digests, so neither its content nor its length leaks through timing; the
OpenLineage HTTP transport sends its ``api_key`` exactly as
``Authorization: Bearer <key>``. A content type other than
``application/json`` gets 415: ``text/plain``, form and multipart bodies
are what a web page can post cross-site without a CORS preflight, so
refusing them keeps any page open on the host from writing events.

Example::

    guard = PostGuard(token="s3cret")
    refusal = guard.refuse(request)      # None, or the 401/415 response to send
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Final

from aiohttp import web

__all__ = ["JSON", "PostGuard"]

JSON: Final = "application/json"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def _refusal(status: int, path: str, message: str, reason: str, **headers: str) -> web.Response:
    body: dict[str, Any] = {
        "error": f"{path}: {message}",
        "path": path,
        "reason": reason,
        "errors": [{"path": path, "message": message}],
    }
    return web.json_response(body, status=status, headers=headers or None)


class PostGuard:
    """Check the credentials and content type of a POST; ``refuse`` says why not."""

    def __init__(self, token: str | None = None) -> None:
        self._token = _digest(token) if token else None

    @property
    def needs_token(self) -> bool:
        return self._token is not None

    def refuse(self, request: web.BaseRequest) -> web.Response | None:
        """Return the 401 or 415 response for a request that may not post, else None."""
        if self._token is not None:
            header = request.headers.get("Authorization", "")
            scheme, _, credentials = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                _digest(credentials.strip()), self._token
            ):
                message = "missing bearer token" if not header else "wrong credentials"
                return _refusal(
                    401, "Authorization", message, "unauthorized", **{"WWW-Authenticate": "Bearer"}
                )
        if request.content_type != JSON:
            shown = request.headers.get("Content-Type", "")[:100] or "none"
            return _refusal(
                415,
                "Content-Type",
                f"{shown!r} is not supported: send {JSON}",
                "content_type",
                Accept=JSON,
            )
        return None
