"""Serve incidents to people and tools: JSON API, Markdown post-mortems, the HTML page.

Routes (all read-only, all read ``app[STORE]``)::

    GET /incidents?state=&pipeline=&sev=&limit=&offset=   {"incidents": [...], ...}
    GET /incidents/{id}                                   one incident (a browser gets its
                                                          page: receiver.people), 404 if none
    GET /incidents/{id}/postmortem                        text/markdown draft
    GET /?state=&pipeline=&sev=&limit=&offset=            the HTML page

A bad filter is a 400 with a JSON body naming the parameter; a store that
cannot answer is a 503. The stored post-mortem is served when there is one;
otherwise (an incident still open) a draft is rendered from the current record,
and ``?regenerate=1`` always renders afresh.

Example::

    app = web.Application()
    app[STORE] = store
    add_routes(app)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from receiver.keys import SPEC, STORE
from receiver.models import INCIDENT_STATES, Incident, utcnow
from receiver.people.access import wants_html
from receiver.people.routes import PAGE_HEADERS, incident_page, no_users_banner
from receiver.report.page import PageQuery, render_page
from receiver.report.postmortem import render_postmortem
from receiver.store.base import StoreUnavailable
from rules.severity import SEVS

__all__ = ["MAX_LIMIT", "add_routes", "parse_query"]

MAX_LIMIT = 200


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_routes(app: web.Application) -> None:
    """Register the incident routes on ``app`` (which must hold ``app[STORE]``)."""
    app.router.add_get("/", _json_errors(_page), name="incidents_page")
    app.router.add_get("/incidents", _json_errors(_list), name="incidents")
    app.router.add_get("/incidents/{id}", _json_errors(_show), name="incident")
    app.router.add_get("/incidents/{id}/postmortem", _json_errors(_postmortem), name="postmortem")


class _Refusal(Exception):
    """A request this API answers with a JSON error (status, message, details)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


class _BadQuery(_Refusal):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(400, message, parameter=parameter)


def _json_errors(handler: _Handler) -> _Handler:
    """Answer every refusal, and a store that cannot answer (503), in one place."""

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Refusal as exc:
            return web.json_response({"error": str(exc), **exc.extra}, status=exc.status)
        except StoreUnavailable as exc:
            return web.json_response({"error": f"store unavailable: {exc}"}, status=503)

    return answer


def parse_query(query: Any) -> PageQuery:
    """Validate the filters and page window of a request's query string."""

    def choice(name: str, allowed: tuple[str, ...]) -> str | None:
        value = query.get(name) or None
        if value is not None and value not in allowed:
            raise _BadQuery(name, f"{name}={value!r} is not one of {', '.join(allowed)}")
        return value

    def number(name: str, default: int, low: int, high: int) -> int:
        raw = query.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _BadQuery(name, f"{name}={raw!r} is not an integer") from None
        if not low <= value <= high:
            raise _BadQuery(name, f"{name}={value} is outside {low}..{high}")
        return value

    pipeline = query.get("pipeline") or None
    if pipeline is not None and len(pipeline) > 256:
        raise _BadQuery("pipeline", "pipeline is longer than 256 characters")
    return PageQuery(
        state=choice("state", INCIDENT_STATES),
        pipeline=pipeline,
        sev=choice("sev", SEVS),
        limit=number("limit", 50, 1, MAX_LIMIT),
        offset=number("offset", 0, 0, 10**9),
    )


async def _window(request: web.Request) -> tuple[PageQuery, list[Incident], bool]:
    """Return the parsed query, one page of incidents, and whether more follow."""
    query = parse_query(request.query)
    found = await request.app[STORE].list_incidents(
        state=query.state,
        pipeline=query.pipeline,
        sev=query.sev,
        limit=query.limit + 1,
        offset=query.offset,
    )
    return query, found[: query.limit], len(found) > query.limit


async def _list(request: web.Request) -> web.Response:
    query, incidents, more = await _window(request)
    return web.json_response(
        {
            "incidents": [i.to_json() for i in incidents],
            "limit": query.limit,
            "offset": query.offset,
            "next_offset": query.offset + len(incidents) if more else None,
        }
    )


async def _find(request: web.Request) -> Incident:
    """Return the incident named in the path; 404 when there is none."""
    raw = request.match_info["id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise _Refusal(404, "no such incident: the id must be a positive integer", id=raw)
    incident = await request.app[STORE].get_incident(int(raw))
    if incident is None:
        raise _Refusal(404, f"no incident {int(raw)}", id=int(raw))
    return incident


async def _show(request: web.Request) -> web.Response:
    incident = await _find(request)
    if wants_html(request):  # a browser: the incident's own page
        return await incident_page(request, incident)
    return web.json_response(incident.to_json())


async def _postmortem(request: web.Request) -> web.Response:
    found = await _find(request)
    text = found.postmortem
    if text is None or request.query.get("regenerate") in ("1", "true"):
        text = render_postmortem(found, request.app.get(SPEC))
    return web.Response(text=text, content_type="text/markdown", charset="utf-8")


async def _page(request: web.Request) -> web.Response:
    query, incidents, more = await _window(request)
    spec = request.app.get(SPEC)

    banner = no_users_banner(request)

    def render() -> str:
        postmortems = {i.id: i.postmortem or render_postmortem(i, spec) for i in incidents}
        return render_page(
            incidents, postmortems, now=utcnow(), query=query, has_more=more, banner=banner
        )

    # tens of milliseconds for a full page: keep the event loop (and POST /alerts) free
    body = await asyncio.to_thread(render)
    response = web.Response(text=body, content_type="text/html", charset="utf-8")
    response.headers.update(PAGE_HEADERS)
    return response
