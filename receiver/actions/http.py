"""The ``http`` action: one request to a URL from the spec, with a JSON body.

The URL, method and headers come from configuration only. The body carries
the incident, strategy, cause and attempt, plus the alert labels named in
``body_labels`` (an allow-list; default ``alertname`` and ``pipeline``), as
JSON data. Redirects are not followed, so no answer can send the request to
another host. 2xx is success; 429, 5xx and network errors are retryable;
other answers and TLS failures are not (the way Alertmanager's notifiers
judge a webhook). ``verify_tls: false`` turns certificate checks off.

Spec example::

    actions:
      retry_with_backoff:
        http: {url: "https://airflow.internal/api/retry", method: POST, timeout: 10s}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from receiver.actions.base import (
    ActionConfigError,
    ActionContext,
    ActionOutcome,
    config_timeout,
    truncate,
)

__all__ = ["HttpAction"]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_BODY_LABELS = ("alertname", "pipeline")


class HttpAction:
    """Send one HTTP request whose URL is fixed by configuration."""

    def __init__(self, config: Mapping[str, Any], where: str = "action.http") -> None:
        raw_url = config.get("url")
        if not isinstance(raw_url, str):
            raise ActionConfigError(f"{where}.url: required, an http(s):// URL")
        url = URL(raw_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ActionConfigError(f"{where}.url: not an http(s) URL with a host: {raw_url!r}")
        method = str(config.get("method", "POST")).upper()
        if method not in METHODS:
            raise ActionConfigError(f"{where}.method: {method!r} is not one of {METHODS}")
        headers = config.get("headers") or {}
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ActionConfigError(f"{where}.headers: must map header names to strings")
        body_labels = config.get("body_labels", DEFAULT_BODY_LABELS)
        if not isinstance(body_labels, list | tuple) or not all(
            isinstance(b, str) for b in body_labels
        ):
            raise ActionConfigError(f"{where}.body_labels: must be a list of label names")
        self.url = url
        self.method = method
        self.headers = dict(headers)
        self.body_labels = tuple(body_labels)
        self.timeout = config_timeout(config, where, 10.0)
        self.verify_tls = bool(config.get("verify_tls", True))
        # no query string: it may hold a token, and the breaker keys on the endpoint
        self.target = f"http {method} {url.with_query(None).with_fragment(None)}"
        self.summary = f"{method} {url.with_query(None)} (timeout {self.timeout:g}s)"

    def body(self, ctx: ActionContext) -> dict[str, Any]:
        """Return the JSON body: incident facts and the allow-listed alert labels."""
        return {
            "incident_id": ctx.incident_id,
            "strategy": ctx.strategy,
            "cause": ctx.cause,
            "attempt": ctx.attempt,
            "params": dict(ctx.params),
            "labels": {k: ctx.labels[k] for k in self.body_labels if k in ctx.labels},
        }

    async def run(self, ctx: ActionContext) -> ActionOutcome:
        """Send the request once; judge the answer."""
        try:
            async with ctx.session.request(
                self.method,
                self.url,
                json=self.body(ctx),
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                ssl=self.verify_tls,  # False: no certificate check
                allow_redirects=False,
            ) as resp:
                text = truncate(await resp.text(errors="replace"), 1000)
                status = resp.status
        except TimeoutError:
            return ActionOutcome("timeout", True, f"no answer within {self.timeout:g}s")
        except aiohttp.ClientSSLError as exc:  # a bad certificate does not heal by retrying
            return ActionOutcome("failure", False, f"TLS: {type(exc).__name__}: {exc}")
        except aiohttp.ClientError as exc:
            return ActionOutcome("failure", True, f"{type(exc).__name__}: {exc}")
        detail = f"HTTP {status}: {text}"
        if 200 <= status < 300:
            return ActionOutcome("success", False, detail)
        if status == 429 or status >= 500:
            return ActionOutcome("failure", True, detail)
        if 300 <= status < 400:
            return ActionOutcome("failure", False, f"{detail} (redirects are not followed)")
        return ActionOutcome("failure", False, detail)
