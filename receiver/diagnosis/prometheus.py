"""Ask the Prometheus HTTP API for evidence, and build PromQL selectors safely.

The base URL comes from the receiver's configuration only; an alert's
``generatorURL`` is never used as a host. Label values that end up inside a
query come from alerts and are untrusted, so selectors are built with
:func:`selector`, which escapes every value as a PromQL string literal and
refuses label names that are not identifiers.

Example::

    prom = PrometheusAPI("http://127.0.0.1:9090", session)
    rows = await prom.query(selector("pipeline_up", pipeline=alert.pipeline))
    rows[0]["value"]       # [1795245097.8, "1"]
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import aiohttp

from receiver.errors import PrometheusError

__all__ = [
    "PrometheusAPI",
    "PrometheusError",
    "quote_label_value",
    "sample_value",
    "selector",
]

_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_METRIC_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
_SIMPLE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote_label_value(value: str) -> str:
    """Return ``value`` as a double-quoted PromQL string literal that means exactly it.

    Backslash, quote and line breaks get their escapes; any other control or
    unassigned character becomes a ``\\u``/``\\U`` escape; a lone surrogate
    (not encodable) becomes U+FFFD. Nothing in ``value`` can end the literal.
    """
    out = ['"']
    for ch in value:
        if ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
            continue
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cn", "Co", "Zl", "Zp"):
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def selector(metric: str, matchers: Mapping[str, str] | None = None, **labels: str) -> str:
    """Return ``metric{name="value",...}`` with every value escaped (equality matchers).

    ``metric`` and the label names are ours, never an alert's, and must be
    identifiers; a bad one is a programming error (``ValueError``).
    """
    if not _METRIC_NAME.match(metric):
        raise ValueError(f"invalid metric name {metric!r}")
    merged = {**(matchers or {}), **labels}
    parts = []
    for name, value in merged.items():
        if not _LABEL_NAME.match(name):
            raise ValueError(f"invalid label name {name!r}")
        parts.append(f"{name}={quote_label_value(value)}")
    return f"{metric}{{{','.join(parts)}}}"


def sample_value(row: Mapping[str, Any]) -> float:
    """Return the float value of one instant-vector row (``NaN`` if unreadable)."""
    try:
        return float(row["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return math.nan


class PrometheusAPI:
    """A small client of ``/api/v1/query`` with a timeout and errors that say where."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, timeout: float = 5.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Prometheus URL must be http(s)://..., got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = timeout

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant query; return its vector (a scalar comes back as one row)."""
        url = f"{self.base_url}/api/v1/query"
        try:
            async with self._session.post(
                url,
                data={"query": promql},
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
