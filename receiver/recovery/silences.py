"""Silence a pipeline's alerts in Alertmanager (API v2) while recovery acts on it.

Matchers are JSON data with ``isRegex: false``, so a pipeline name from an
alert label matches literally and cannot widen the silence. A silence id
from Alertmanager is checked before it goes into a URL path. Silences always
carry an end time, so one whose expiry failed still ends on its own.

Example::

    silences = Silences("http://127.0.0.1:9093", session)
    sid = await silences.create({"pipeline": "etl_orders"}, until=now + timedelta(minutes=30),
                                comment="pipemedic incident #7: retry_with_backoff")
    await silences.expire(sid)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from receiver.errors import SilenceError
from receiver.models import format_time, utcnow

__all__ = ["SilenceError", "Silences"]

_SILENCE_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class Silences:
    """Create, read and expire silences through Alertmanager's API v2."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        timeout: float = 5.0,
        created_by: str = "pipemedic",
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Alertmanager URL must be http(s)://..., got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.created_by = created_by

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.base_url}{path}"
        try:
            async with self._session.request(
                method, url, json=body, timeout=self._timeout, allow_redirects=False
            ) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise SilenceError(
                        f"Alertmanager {method} {url}: HTTP {resp.status}: {text[:300]}"
                    )
                return await resp.json(content_type=None) if text.strip() else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SilenceError(
                f"Alertmanager {method} {url}: {exc or type(exc).__name__}"
            ) from None

    async def create(
        self,
        labels: Mapping[str, str],
        *,
        until: datetime,
        comment: str,
        starts: datetime | None = None,
    ) -> str:
        """Silence alerts whose labels equal ``labels``; return the silence id."""
        if not labels:
            raise ValueError("a silence needs at least one label matcher")
        body = {
            "matchers": [
                {"name": name, "value": value, "isRegex": False, "isEqual": True}
                for name, value in labels.items()
            ],
            "startsAt": format_time(starts or utcnow()),
            "endsAt": format_time(until.astimezone(UTC)),
            "createdBy": self.created_by,
            "comment": comment,
        }
        doc = await self._call("POST", "/api/v2/silences", body)
        sid = doc.get("silenceID") if isinstance(doc, dict) else None
        if not isinstance(sid, str) or not _SILENCE_ID.match(sid):
            raise SilenceError(f"Alertmanager answered a silence without a usable id: {doc!r}")
        return sid

    async def get(self, silence_id: str) -> dict[str, Any]:
        """Return one silence as Alertmanager reports it (``status.state`` etc.)."""
        doc = await self._call("GET", f"/api/v2/silence/{_checked(silence_id)}")
        if not isinstance(doc, dict):
            raise SilenceError(f"Alertmanager answered silence {silence_id} with {doc!r}")
        return doc

    async def expire(self, silence_id: str) -> None:
        """End a silence now."""
        await self._call("DELETE", f"/api/v2/silence/{_checked(silence_id)}")


def _checked(silence_id: str) -> str:
    if not _SILENCE_ID.match(silence_id):
        raise ValueError(f"not a silence id: {silence_id!r}")
    return silence_id
