"""Page through Alertmanager: a ``PipelineIncident`` alert posted to its API v2.

A user's existing PagerDuty/Opsgenie receivers then page the commander;
the repository's ``alertmanager.yml`` routes ``PipelineIncident`` to the
``paging`` receiver and never back to the pipemedic webhook (and the
lifecycle ignores it if it comes back anyway). ``opened``/``escalated`` post
the alert firing; ``resolved``/``closed`` post it resolved (``endsAt`` now).
Labels: pipeline, sev, team, incident, state; a change of state or SEV is a
new label set, so every earlier set is resolved in the same request.

As Prometheus does with its alerts, a firing post holds for four resend
intervals (``endsAt``) and ``PageRenewer`` posts every open page again each
interval (``notify.paging.resend_interval``): a page whose receiver died
ends by itself instead of ringing for ever, and one that lives is never let
run out. Every replica re-posts; Alertmanager merges posts of one label set
into one alert, so a second replica's re-post changes nothing.

Example::

    pager = AlertmanagerPager("http://127.0.0.1:9093", external_url="https://pm.example.com")
    await pager.send("alertmanager", message, incident)   # Delivery(outcome="sent")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp

from pipemedic.vocabulary.states import IncidentState
from receiver.models import Incident, format_time, utcnow
from receiver.notify.messages import Message, render
from receiver.notify.mobilize import PAGE_EVENTS, Mobilizer
from receiver.notify.send import Delivery
from receiver.store.base import Store
from rules.severity import SEVS, sev_rank
from rules.spec import Spec

__all__ = ["HOLD_INTERVALS", "PAGE_ALERT", "AlertmanagerPager", "PageRenewer", "page_alerts"]

log = logging.getLogger(__name__)

PAGE_ALERT = "PipelineIncident"
_PAGED_STATES = ("open", "escalated")
# a firing post holds this many resend intervals (Prometheus: 4 x its resend delay)
HOLD_INTERVALS = 4
# the incident states whose page stays up (resolved and closed take it down)
_OPEN_STATES = tuple(
    s.value for s in IncidentState if s not in (IncidentState.RESOLVED, IncidentState.CLOSED)
)


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
    message: Message,
    incident: Incident,
    external_url: str | None,
    hold: timedelta = timedelta(seconds=60 * HOLD_INTERVALS),
) -> list[dict[str, Any]]:
    """Return the API v2 alerts for ``message``: the page, and earlier label sets resolved.

    The firing one ends ``hold`` from now unless it is posted again.
    """
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
                    "endsAt": format_time(now + hold if live else now),
                }
            )
    return alerts


class AlertmanagerPager:
    """Post page alerts to one Alertmanager; 5xx and network errors are retryable."""

    def __init__(
        self,
        url: str,
        *,
        external_url: str | None = None,
        resend_seconds: float = 60.0,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.external_url = external_url
        self.hold = timedelta(seconds=resend_seconds * HOLD_INTERVALS)
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, key: str, message: Message, incident: Incident) -> Delivery:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = page_alerts(message, incident, self.external_url, self.hold)
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


class PageRenewer:
    """Post the page of every open incident at or above its team's ``page_sev`` again.

    Runs every ``resend_seconds`` (and once at start, so a page that ran out
    while the receiver was down is back at once). The outbox still posts the
    transitions (fire, escalate, resolve) exactly once; this only keeps a
    firing page from running out. A resolve can race a re-post: after each
    post the incident is read again and, if it resolved meanwhile, the page
    is posted resolved, so the last word is always the stored state.
    """

    def __init__(
        self,
        store: Store,
        pager: AlertmanagerPager,
        spec: Spec,
        mobilizer: Mobilizer,
        *,
        resend_seconds: float = 60.0,
    ) -> None:
        self.store = store
        self.pager = pager
        self.spec = spec
        self.mobilizer = mobilizer
        self.resend_seconds = resend_seconds
        self.rounds = 0  # renew_once calls finished
        self.posts = 0  # pages posted again
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="pipemedic-page-renew")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.renew_once()
            except Exception as exc:  # store or Alertmanager down: the next round tries again
                log.warning("cannot re-post pages: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.resend_seconds)

    def _page_sevs(self) -> set[str] | None:
        """The SEVs at or above some team's ``page_sev`` (None: nobody is paged)."""
        floors = [t.page_sev for t in self.spec.teams.values() if t.page_sev is not None]
        if not self.mobilizer.paging or not floors:
            return None
        lowest = max(sev_rank(f) for f in floors)
        return {sev for sev in SEVS if sev_rank(sev) <= lowest}

    async def paged(self) -> AsyncIterator[Incident]:
        """Yield the open incidents whose page is up, one at a time.

        Only ids and SEVs are listed (``store.incident_sevs``); an incident is read
        whole only when its SEV could page, so a round over 10,000 open incidents
        holds one document at a time, as the open-incidents sweep does.
        """
        sevs = self._page_sevs()
        if sevs is None:
            return
        listed = await self.store.incident_sevs(_OPEN_STATES)
        for incident_id in sorted(i for i, sev in listed.items() if sev in sevs):
            incident = await self.store.get_incident(incident_id)
            if (
                incident is not None
                and incident.state in _OPEN_STATES
                and self.mobilizer.pages(incident)
            ):
                yield incident

    async def renew_once(self) -> int:
        """Post every open page again; return how many were posted."""
        posted = 0
        async for incident in self.paged():
            event = "escalated" if incident.state == IncidentState.ESCALATED else "opened"
            if not await self._post(event, incident):
                continue
            posted += 1
            now = await self.store.get_incident(incident.id)
            if now is not None and now.state not in _OPEN_STATES:
                await self._post("resolved", now)
        self.posts += posted
        self.rounds += 1
        return posted

    async def _post(self, event: str, incident: Incident) -> bool:
        message = render(event, incident, self.spec.team(incident.team))
        result = await self.pager.send("alertmanager", message, incident)
        if result.outcome != "sent":
            log.warning(
                "page of incident %d not re-posted: %s",
                incident.id,
                result.error,
                extra={"incident": incident.id},
            )
        return result.outcome == "sent"
