"""Load ``receiver.yml``: where to listen, where to store, who may post.

With no file the receiver runs on the embedded defaults (SQLite in the
working folder, no auth, Prometheus at 127.0.0.1:9090). Secrets are never
written in the file itself: they come from a file or an environment variable.
Every error names the file and the field path.

Example ``receiver.yml``::

    listen: 127.0.0.1:9099
    store: sqlite:///var/lib/pipemedic/receiver.db
    auth:
      bearer: {token_file: /etc/pipemedic/receiver.token}
      basic: {username: alertmanager, password_env: PIPEMEDIC_RECEIVER_PASSWORD}
    body_limit_bytes: 1048576
    max_alerts: 1000          # alerts per notification (413 over it); set Alertmanager's max_alerts
    queue: {max_depth: 100000}
    workers: {concurrency: 4, action_concurrency: 16, lease_seconds: 300}   # 0: intake only
    prometheus_url: http://127.0.0.1:9090
    spec: rules/pipelines.yml
    reopen_window: 30m
    lineage: {ttl: 30s, max_depth: 5, merge_window: 1h, max_datasets: 10, verify_deadline: 1h}
    recovery: {dry_run: true}
    external_url: https://pipemedic.example.com   # links in notifications (none without it)
    notify:
      concurrency: 4            # sends at once (0: this replica delivers nothing)
      max_age: 24h              # a message undelivered this long is given up
      paging: {alertmanager_url: http://127.0.0.1:9093}   # PipelineIncident pages
    people: {users: [...], proxy: {...}}   # who may act on incidents (receiver.people.config)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipemedic.address import split_host_port
from receiver.errors import ConfigError
from receiver.people.config import PeopleConfig, parse_people
from receiver.recovery.config import RecoveryConfig
from rules.durations import parse_duration
from rules.errors import YamlError
from rules.yamlpos import load_yaml

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_SPEC",
    "AuthConfig",
    "NotifyConfig",
    "ReceiverConfig",
    "load_config",
    "parse_config",
    "resolve_spec_path",
]

DEFAULT_LISTEN = "127.0.0.1:9099"
DEFAULT_STORE = "sqlite:///pipemedic-receiver.db"
# The spec used when neither --spec nor the config's spec: names one (if it exists).
DEFAULT_SPEC = "rules/pipelines.yml"


def resolve_spec_path(flag: str | None, configured: str | None) -> str | None:
    """Return the spec to load: the flag, else the config's ``spec:``, else ``DEFAULT_SPEC``.

    ``DEFAULT_SPEC`` (relative to the working folder) counts only when it exists;
    ``None`` means no spec: every pipeline gets the built-in defaults.
    """
    if flag or configured:
        return flag or configured
    return DEFAULT_SPEC if Path(DEFAULT_SPEC).is_file() else None


_TOP_FIELDS = frozenset(
    {
        "listen",
        "store",
        "auth",
        "body_limit_bytes",
        "max_alerts",
        "queue",
        "workers",
        "prometheus_url",
        "spec",
        "reopen_window",
        "lineage",
        "recovery",
        "external_url",
        "notify",
        "people",
    }
)


@dataclass(frozen=True)
class AuthConfig:
    """Credentials the receiver accepts; neither set means no authentication."""

    bearer_token: str | None = None
    basic_username: str | None = None
    basic_password: str | None = None

    @property
    def enabled(self) -> bool:
        return self.bearer_token is not None or self.basic_username is not None


@dataclass(frozen=True)
class NotifyConfig:
    """The notification outbox's delivery worker; ``alertmanager_url`` turns paging on."""

    concurrency: int = 4
    max_age_seconds: float = 86400.0
    lease_seconds: float = 60.0
    alertmanager_url: str | None = None
    # an open page is posted again this often; each post holds it 4 intervals (as Prometheus)
    page_resend_seconds: float = 60.0
    # "process": deliver from a child process at a lower CPU priority (receiver.notify.process);
    # "task": from a task of the receiver's event loop
    isolation: str = "process"


@dataclass(frozen=True)
class ReceiverConfig:
    """The receiver's settings after defaults; ``recovery`` is D's ``RecoveryConfig``."""

    listen: str = DEFAULT_LISTEN
    store_url: str = DEFAULT_STORE
    auth: AuthConfig = field(default_factory=AuthConfig)
    body_limit_bytes: int = 1024 * 1024
    max_alerts: int = 1000
    queue_max_depth: int = 100_000
    worker_concurrency: int = 4
    # recovery actions running at once in this replica, apart from the diagnosis slots
    action_concurrency: int = 16
    lease_seconds: float = 300.0
    poll_interval_seconds: float = 0.5
    prometheus_url: str = "http://127.0.0.1:9090"
    spec_path: str | None = None
    reopen_window_seconds: float = 3600.0
    # lineage-aware incidents: how long the graph read from Prometheus is kept, how far up
    # it is walked (0: every pipeline's alerts are handled on their own)
    lineage_ttl_seconds: float = 30.0
    lineage_max_depth: int = 5
    # a downstream pipeline's incident opened within this long of its upstream's is merged
    lineage_merge_window_seconds: float = 3600.0
    # datasets listed per downstream pipeline in a blast radius
    lineage_max_datasets: int = 10
    # a downstream pipeline not verified this long after its upstream recovered escalates
    lineage_verify_deadline_seconds: float = 3600.0
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    external_url: str | None = None
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    people: PeopleConfig = field(default_factory=PeopleConfig)  # who may read and act
    source: str = "<defaults>"


class _Reader:
    """Read typed fields out of a mapping, naming file and path on error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(self.source, path, message)

    def mapping(self, value: Any, path: str, allowed: frozenset[str]) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(path, f"must be a mapping, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                raise self.fail(
                    f"{path}.{key}" if path else str(key),
                    f"unknown field (known: {', '.join(sorted(allowed))})",
                )
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"must be a non-empty string, got {value!r}")
        return value

    def integer(self, value: Any, path: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(path, f"must be an integer >= {minimum}, got {value!r}")
        return value

    def duration(self, value: Any, path: str) -> float:
        if isinstance(value, bool):
            raise self.fail(path, f"must be a duration such as 30m, got {value!r}")
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            try:
                seconds = parse_duration(self.string(value, path))
            except ValueError as exc:
                raise self.fail(path, str(exc)) from None
        if seconds <= 0:
            raise self.fail(path, f"must be positive, got {value!r}")
        return seconds

    def secret(self, section: Mapping[str, Any], path: str, name: str) -> str | None:
        """Read ``<name>_file`` or ``<name>_env``; inline secrets are refused."""
        if name in section:
            raise self.fail(
                f"{path}.{name}",
                f"secrets are not written inline; use {name}_file or {name}_env",
            )
        file_key, env_key = f"{name}_file", f"{name}_env"
        if file_key in section and env_key in section:
            raise self.fail(path, f"give one of {file_key} and {env_key}, not both")
        if file_key in section:
            where = self.string(section[file_key], f"{path}.{file_key}")
            try:
                text = Path(where).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise self.fail(f"{path}.{file_key}", f"cannot read {where}: {exc}") from None
            if not text:
                raise self.fail(f"{path}.{file_key}", f"{where} is empty")
            return text
        if env_key in section:
            var = self.string(section[env_key], f"{path}.{env_key}")
            value = os.environ.get(var)
            if not value:
                raise self.fail(f"{path}.{env_key}", f"environment variable {var} is not set")
            return value
        return None


def _listen(value: str, reader: _Reader) -> str:
    try:
        split_host_port(value)
    except ValueError as exc:
        raise reader.fail("listen", str(exc)) from None
    return value


def _auth(raw: Any, reader: _Reader) -> AuthConfig:
    section = reader.mapping(raw, "auth", frozenset({"bearer", "basic"}))
    token = None
    if section.get("bearer") is not None:
        bearer = reader.mapping(
            section["bearer"], "auth.bearer", frozenset({"token", "token_file", "token_env"})
        )
        token = reader.secret(bearer, "auth.bearer", "token")
        if token is None:
            raise reader.fail("auth.bearer", "needs token_file or token_env")
    username = password = None
    if section.get("basic") is not None:
        basic = reader.mapping(
            section["basic"],
            "auth.basic",
            frozenset({"username", "password", "password_file", "password_env"}),
        )
        username = reader.string(basic.get("username"), "auth.basic.username")
        if ":" in username:
            raise reader.fail("auth.basic.username", "must not contain ':'")
        password = reader.secret(basic, "auth.basic", "password")
        if password is None:
            raise reader.fail("auth.basic", "needs password_file or password_env")
    return AuthConfig(bearer_token=token, basic_username=username, basic_password=password)


def _recovery(raw: Any, reader: _Reader) -> RecoveryConfig:
    """Parse ``recovery:`` with the recovery package's own reader (engineer D's)."""
    section = reader.mapping(
        raw, "recovery", frozenset(raw) if isinstance(raw, Mapping) else frozenset()
    )
    try:
        return RecoveryConfig.from_mapping(section, where="recovery")
    except ValueError as exc:
        raise ConfigError(reader.source, "recovery", str(exc)) from None


def _http_url(value: Any, path: str, reader: _Reader) -> str:
    url = reader.string(value, path)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise reader.fail(path, f"must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def _notify(raw: Any, reader: _Reader) -> NotifyConfig:
    section = reader.mapping(
        raw,
        "notify",
        frozenset({"concurrency", "max_age", "lease_seconds", "paging", "isolation"}),
    )
    defaults = NotifyConfig()
    isolation = reader.string(section.get("isolation", defaults.isolation), "notify.isolation")
    if isolation not in ("process", "task"):
        raise reader.fail("notify.isolation", f"must be process or task, got {isolation!r}")
    paging = reader.mapping(
        section.get("paging"), "notify.paging", frozenset({"alertmanager_url", "resend_interval"})
    )
    am = paging.get("alertmanager_url")
    return NotifyConfig(
        concurrency=reader.integer(
            section.get("concurrency", defaults.concurrency), "notify.concurrency", 0
        ),
        max_age_seconds=reader.duration(
            section.get("max_age", defaults.max_age_seconds), "notify.max_age"
        ),
        lease_seconds=reader.duration(
            section.get("lease_seconds", defaults.lease_seconds), "notify.lease_seconds"
        ),
        alertmanager_url=(
            _http_url(am, "notify.paging.alertmanager_url", reader) if am is not None else None
        ),
        page_resend_seconds=reader.duration(
            paging.get("resend_interval", defaults.page_resend_seconds),
            "notify.paging.resend_interval",
        ),
        isolation=isolation,
    )


def parse_config(raw: Any, source: str = "<string>") -> ReceiverConfig:
    """Build a ``ReceiverConfig`` from a parsed YAML document."""
    reader = _Reader(source)
    doc = reader.mapping(raw, "", _TOP_FIELDS)
    defaults = ReceiverConfig()
    queue = reader.mapping(doc.get("queue"), "queue", frozenset({"max_depth"}))
    workers = reader.mapping(
        doc.get("workers"),
        "workers",
        frozenset({"concurrency", "action_concurrency", "lease_seconds", "poll_interval_seconds"}),
    )
    prometheus_url = reader.string(
        doc.get("prometheus_url", defaults.prometheus_url), "prometheus_url"
    )
    parts = urlsplit(prometheus_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise reader.fail("prometheus_url", f"must be an http(s) URL, got {prometheus_url!r}")
    lineage_keys = {"ttl", "max_depth", "merge_window", "max_datasets", "verify_deadline"}
    lineage = reader.mapping(doc.get("lineage"), "lineage", frozenset(lineage_keys))
    spec = doc.get("spec")
    return ReceiverConfig(
        listen=_listen(reader.string(doc.get("listen", defaults.listen), "listen"), reader),
        store_url=reader.string(doc.get("store", defaults.store_url), "store"),
        auth=_auth(doc.get("auth"), reader),
        body_limit_bytes=reader.integer(
            doc.get("body_limit_bytes", defaults.body_limit_bytes), "body_limit_bytes", 1024
        ),
        max_alerts=reader.integer(doc.get("max_alerts", defaults.max_alerts), "max_alerts", 1),
        queue_max_depth=reader.integer(
            queue.get("max_depth", defaults.queue_max_depth), "queue.max_depth", 1
        ),
        worker_concurrency=reader.integer(
            workers.get("concurrency", defaults.worker_concurrency), "workers.concurrency", 0
        ),
        action_concurrency=reader.integer(
            workers.get("action_concurrency", defaults.action_concurrency),
            "workers.action_concurrency",
            1,
        ),
        lease_seconds=reader.duration(
            workers.get("lease_seconds", defaults.lease_seconds), "workers.lease_seconds"
        ),
        poll_interval_seconds=reader.duration(
            workers.get("poll_interval_seconds", defaults.poll_interval_seconds),
            "workers.poll_interval_seconds",
        ),
        prometheus_url=prometheus_url.rstrip("/"),
        spec_path=reader.string(spec, "spec") if spec is not None else None,
        reopen_window_seconds=reader.duration(
            doc.get("reopen_window", defaults.reopen_window_seconds), "reopen_window"
        ),
        lineage_ttl_seconds=reader.duration(
            lineage.get("ttl", defaults.lineage_ttl_seconds), "lineage.ttl"
        ),
        lineage_max_depth=reader.integer(
            lineage.get("max_depth", defaults.lineage_max_depth), "lineage.max_depth", 0
        ),
        lineage_merge_window_seconds=reader.duration(
            lineage.get("merge_window", defaults.lineage_merge_window_seconds),
            "lineage.merge_window",
        ),
        lineage_verify_deadline_seconds=reader.duration(
            lineage.get("verify_deadline", defaults.lineage_verify_deadline_seconds),
            "lineage.verify_deadline",
        ),
        lineage_max_datasets=reader.integer(
            lineage.get("max_datasets", defaults.lineage_max_datasets), "lineage.max_datasets", 0
        ),
        recovery=_recovery(doc.get("recovery"), reader),
        external_url=(
            _http_url(doc["external_url"], "external_url", reader)
            if doc.get("external_url") is not None
            else None
        ),
        notify=_notify(doc.get("notify"), reader),
        people=parse_people(doc.get("people"), reader),
        source=source,
    )


def load_config(path: str | Path | None = None) -> ReceiverConfig:
    """Load ``receiver.yml``; ``None`` gives the embedded defaults."""
    if path is None:
        return parse_config({}, "<defaults>")
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read: {exc}") from None
    try:  # the spec's loader: aliases, depth, size and duplicate keys bounded
        raw = load_yaml(text, source).data
    except YamlError as exc:
        first = exc.problems[0]
        raise ConfigError(f"{source}:{first.line}", first.path, first.message) from None
    return parse_config(raw, source)
