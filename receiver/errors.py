"""Errors of the receiver, one tree so callers catch exactly what they mean.

Every error about the world outside the code (configuration, requests,
servers, the store, plugins) is defined here, and the module that raises it
imports it from here (re-exporting it where callers already look, e.g.
``receiver.store.StoreError``). A bad argument from calling code is a plain
``ValueError``::

    ReceiverError
    ├── ConfigError            receiver.yml is wrong: names the file and the field path
    │   ├── PluginError        installed plugins are unusable: every problem listed (start-up stops)
    │   └── NotifyConfigError  a notify destination is unusable: names it, never its URL
    ├── IntakeError            a POST /alerts the receiver refuses (has an HTTP status)
    │   ├── AuthError          401: credentials missing or wrong
    │   ├── PayloadTooLarge    413: body over the configured limit
    │   ├── PayloadError       400: not JSON, wrong content type, or fails the schema
    │   └── Unavailable        503: store down or queue full; Alertmanager retries
    ├── StoreError             a storage backend failed (``receiver.store``)
    │   └── StoreUnavailable   the store cannot commit now (mapped to Unavailable)
    ├── PrometheusError        Prometheus unreachable or its answer unusable (diagnosis, verify)
    ├── SilenceError           Alertmanager unreachable or refused a silence (recovery)
    ├── ActionConfigError      a pipeline's action configuration is unusable (a ValueError too)
    ├── IllegalTransition      a state change the incident lifecycle forbids (a ValueError too)
    └── SourceError            ``pipemedic incidents`` could not read the API or the store
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ActionConfigError",
    "AuthError",
    "ConfigError",
    "IllegalTransition",
    "IntakeError",
    "NotifyConfigError",
    "PayloadError",
    "PayloadTooLarge",
    "PluginError",
    "PluginProblem",
    "PrometheusError",
    "ReceiverError",
    "SilenceError",
    "SourceError",
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


@dataclass(frozen=True)
class PluginProblem:
    """One broken entry point: where it came from and what is wrong with it."""

    group: str
    name: str
    value: str
    distribution: str
    message: str

    def __str__(self) -> str:
        return (
            f"entry point {self.name!r} = {self.value!r} in group {self.group} "
            f"(distribution {self.distribution}): {self.message}"
        )


class NotifyConfigError(ConfigError):
    """A team's notify destination is unusable: names ``teams.<t>.notify[<i>]``, never the URL."""


class PluginError(ConfigError):
    """Installed plugins are unusable; ``problems`` lists every one (start-up stops)."""

    def __init__(self, problems: Iterable[PluginProblem]) -> None:
        self.problems = tuple(problems)
        text = "\n".join(str(p) for p in self.problems)
        super().__init__("plugins", "", text)
        self.args = (f"{len(self.problems)} broken plugin(s):\n{text}",)


class StoreError(ReceiverError):
    """Base of storage errors."""


class StoreUnavailable(StoreError):
    """The store cannot take or give data right now (503, retry later)."""


class PrometheusError(ReceiverError):
    """Prometheus could not be reached or gave an answer we cannot use."""


class SilenceError(ReceiverError):
    """Alertmanager could not be reached or refused the silence request."""


class ActionConfigError(ReceiverError, ValueError):
    """A pipeline's action configuration is unusable; the message names the field path."""


class IllegalTransition(ReceiverError, ValueError):
    """A state change the lifecycle does not allow (names both states)."""


class SourceError(ReceiverError):
    """The API or the store could not be read; the message says which and why."""
