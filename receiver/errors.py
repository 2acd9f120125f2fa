"""Errors of the receiver, one tree so callers catch exactly what they mean.

::

    ReceiverError
    ├── ConfigError            receiver.yml is wrong: names the file and the field path
    ├── IntakeError            a POST /alerts the receiver refuses (has an HTTP status)
    │   ├── AuthError          401: credentials missing or wrong
    │   ├── PayloadTooLarge    413: body over the configured limit
    │   ├── PayloadError       400: not JSON, wrong content type, or fails the schema
    │   └── Unavailable        503: store down or queue full; Alertmanager retries
    └── store.base.StoreError  (defined with the store Protocol)
        └── StoreUnavailable   the store cannot commit now (mapped to Unavailable)
"""

from __future__ import annotations

from typing import Any

from receiver.store.base import StoreError, StoreUnavailable

__all__ = [
    "AuthError",
    "ConfigError",
    "IntakeError",
    "PayloadError",
    "PayloadTooLarge",
    "ReceiverError",
    "StoreError",
    "StoreUnavailable",
    "Unavailable",
]


class ReceiverError(Exception):
    """Base of the receiver's own errors."""


class ConfigError(ReceiverError, ValueError):
    """A receiver.yml problem: ``where`` is ``file: field.path``."""

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source = source
        self.path = path
        self.message = message
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {message}")


class IntakeError(ReceiverError):
    """A refused webhook request; ``status`` is the HTTP answer, ``body()`` its JSON."""

    status = 400
    reason = "bad_request"

    def __init__(self, message: str, path: str = "") -> None:
        self.message = message
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)

    def body(self) -> dict[str, Any]:
        """Return the JSON error body: what is wrong and at which path."""
        doc: dict[str, Any] = {"error": self.message, "reason": self.reason}
        if self.path:
            doc["path"] = self.path
        return doc


class AuthError(IntakeError):
    status = 401
    reason = "unauthorized"


class PayloadTooLarge(IntakeError):
    status = 413
    reason = "too_large"


class PayloadError(IntakeError):
    status = 400
    reason = "invalid"


class Unavailable(IntakeError):
    status = 503
    reason = "unavailable"
