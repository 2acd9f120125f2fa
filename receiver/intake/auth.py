"""Check the credentials Alertmanager's ``http_config`` sends, in constant time.

Alertmanager sends ``authorization: {credentials: T}`` as
``Authorization: Bearer T`` and ``basic_auth`` as ``Authorization: Basic
base64(user:password)``. When both are configured either one is accepted.
Comparisons go through ``hmac.compare_digest`` on fixed-length digests so
neither the secret's content nor its length leaks through timing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from receiver.config import AuthConfig
from receiver.errors import AuthError

__all__ = ["Authenticator"]


def _digest(value: str | bytes) -> bytes:
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return hashlib.sha256(raw).digest()


class Authenticator:
    """Accept a request whose ``Authorization`` header carries a configured credential.

    Example::

        auth = Authenticator(AuthConfig(bearer_token="s3cret"))
        auth.check({"Authorization": "Bearer s3cret"})   # returns; raises AuthError if wrong
    """

    def __init__(self, config: AuthConfig) -> None:
        self._bearer = _digest(config.bearer_token) if config.bearer_token is not None else None
        self._basic = (
            _digest(f"{config.basic_username}:{config.basic_password}")
            if config.basic_username is not None and config.basic_password is not None
            else None
        )

    @property
    def enabled(self) -> bool:
        return self._bearer is not None or self._basic is not None

    def check(self, headers: Mapping[str, str]) -> None:
        """Return if the request may post; raise ``AuthError`` (401) otherwise."""
        if not self.enabled:
            return
        header = headers.get("Authorization", "")
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if not header:
            raise AuthError("missing Authorization header")
        kind = scheme.lower()
        if kind == "bearer" and self._bearer is not None:
            if hmac.compare_digest(_digest(credentials), self._bearer):
                return
        elif kind == "basic" and self._basic is not None:
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                raise AuthError("malformed basic credentials") from None
            if hmac.compare_digest(_digest(decoded), self._basic):
                return
        else:
            raise AuthError(f"unsupported authorization scheme {scheme[:20]!r}")
        raise AuthError("wrong credentials")
