"""Page through Alertmanager: a ``PipelineIncident`` alert posted to its API v2.

A user's existing PagerDuty/Opsgenie receivers then page the commander;
the repository's ``alertmanager.yml`` routes ``PipelineIncident`` to the
``paging`` receiver and never back to the pipemedic webhook (and the
lifecycle ignores it if it comes back anyway). ``opened``/``escalated`` post
the alert firing; ``resolved``/``closed`` post it resolved. Labels: pipeline,
sev, team, incident, state; a change of state or SEV is a new label set, so
every earlier set is resolved in the same request. A firing alert carries an
``endsAt`` a week ahead, so Alertmanager's ``resolve_timeout`` does not end
the page while the incident lasts.

Example::

    pager = AlertmanagerPager("http://127.0.0.1:9093", external_url="https://pm.example.com")
    await pager.send("alertmanager", message, incident)   # Delivery(outcome="sent")
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp

from receiver.models import Incident, format_time, utcnow
from receiver.notify.messages import Message
from receiver.notify.mobilize import PAGE_EVENTS
from receiver.notify.send import Delivery

__all__ = ["PAGE_ALERT", "AlertmanagerPager", "page_alerts"]

PAGE_ALERT = "PipelineIncident"
_PAGED_STATES = ("open", "escalated")
_HOLD = timedelta(days=7)


def _sevs(incident: Incident) -> list[str]:
    seen = [incident.sev]
    for entry in incident.timeline:
        if entry.event in ("sev_set", "sev_changed") and isinstance(entry.detail, dict):
            for key in ("sev", "from", "to"):
                value = entry.detail.get(key)
                if isinstance(value, str) and value not in seen:
                    seen.append(value)
    return seen


def page_alerts(
    message: Message, incident: Incident, external_url: str | None
) -> list[dict[str, Any]]:
    """Return the API v2 alerts for ``message``: the page, and earlier label sets resolved."""
    now = utcnow()
    firing = PAGE_EVENTS.get(message.event, False)
    state = "escalated" if message.event == "escalated" else "open"
    annotations = {"summary": message.title}
    if external_url:
        annotations["incident_url"] = f"{external_url.rstrip('/')}/incidents/{incident.id}"
    alerts: list[dict[str, Any]] = []
    for sev in _sevs(incident):
        for s in _PAGED_STATES:
            live = firing and sev == incident.sev and s == state
            alerts.append(
                {
                    "labels": {
                        "alertname": PAGE_ALERT,
                        "pipeline": incident.pipeline,
                        "sev": sev,
                        "team": incident.team,
                        "incident": str(incident.id),
                        "state": s,
                    },
                    "annotations": annotations,
                    "startsAt": format_time(min(incident.opened_at, now)),
                    "endsAt": format_time(now + _HOLD if live else now),
                }
            )
    return alerts


class AlertmanagerPager:
    """Post page alerts to one Alertmanager; 5xx and network errors are retryable."""

    def __init__(
        self, url: str, *, external_url: str | None = None, timeout_seconds: float = 10.0
    ) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.external_url = external_url
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, key: str, message: Message, incident: Incident) -> Delivery:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = page_alerts(message, incident, self.external_url)
        try:
            async with self._session.post(self.url, json=body) as response:
                if response.status < 300:
                    return Delivery("sent", retryable=False)
                why = (await response.text())[:200]
                return Delivery(
                    "failed",
                    retryable=response.status >= 500,
                    error=f"Alertmanager answered {response.status}: {why}",
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Delivery("failed", error=f"Alertmanager unreachable: {type(exc).__name__}")
