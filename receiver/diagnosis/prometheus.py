"""Ask the Prometheus HTTP API for evidence.

The base URL comes from the receiver's configuration only; an alert's
``generatorURL`` is never used as a host. Label values that end up inside a
query come from alerts and are untrusted, so queries are built with
``rules.promql`` (the generator's typed builders, whose one escaping function
:func:`rules.promql.quote` every selector uses), never glued by hand.

Example::

    prom = PrometheusAPI("http://127.0.0.1:9090", session)
    rows = await prom.query(selector("pipeline_up", pipeline=alert.pipeline))
    rows[0]["value"]       # [1795245097.8, "1"]
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp

from receiver.errors import PrometheusError
from rules.promql import Expr

__all__ = [
    "PrometheusAPI",
    "PrometheusError",
    "PrometheusQuery",
    "sample_value",
]

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def sample_value(row: Mapping[str, Any]) -> float:
    """Return the float value of one instant-vector row (``NaN`` if unreadable)."""
    try:
        return float(row["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return math.nan


class PrometheusQuery(Protocol):
    """What diagnosis and verification ask of Prometheus: one instant query.

    ``PrometheusAPI`` is the real one; ``receiver.testing.StaticPrometheus``
    answers from a table, for fast tests of handlers and strategies.
    """

    async def query(self, promql: str | Expr) -> list[dict[str, Any]]:
        """Run an instant query; return its vector (a scalar comes back as one row)."""
        ...


class PrometheusAPI:
    """A small client of ``/api/v1/query`` with a timeout and errors that say where."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, timeout: float = 5.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Prometheus URL must be http(s)://..., got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = timeout

    async def query(self, promql: str | Expr) -> list[dict[str, Any]]:
        """Run an instant query; return its vector (a scalar comes back as one row)."""
        promql = str(promql)
        url = f"{self.base_url}/api/v1/query"
        try:
            async with self._session.post(
                url,
                # encoded here: a dict would go through aiohttp's FormData (a multipart
                # writer and a uuid4 per query, about half the client's time)
                data=urlencode({"query": promql}),
                headers=_FORM,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                allow_redirects=False,
            ) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise PrometheusError(f"Prometheus at {url} unreachable: {reason}") from None
        try:
            doc = json.loads(text)
        except ValueError:
            raise PrometheusError(
                f"Prometheus at {url} answered HTTP {status} with a non-JSON body: {text[:200]!r}"
            ) from None
        if status != 200 or not isinstance(doc, dict) or doc.get("status") != "success":
            error = doc.get("error", text[:200]) if isinstance(doc, dict) else text[:200]
            raise PrometheusError(
                f"Prometheus at {url} refused query {promql!r}: HTTP {status}: {error}"
            )
        data = doc.get("data") or {}
        kind, result = data.get("resultType"), data.get("result")
        if kind == "vector" and isinstance(result, list):
            return [row for row in result if isinstance(row, dict)]
        if kind == "scalar" and isinstance(result, list):
            return [{"metric": {}, "value": result}]
        raise PrometheusError(
            f"Prometheus at {url} answered {promql!r} with a {kind!r}, not an instant vector"
        )
