"""HTTP routes for people: actions on incidents, the incident page, sign-in, status, action items.

Routes (roles checked by ``receiver.people.access.access_middleware``)::

    POST /incidents/{id}/{action}   responder   JSON body, or the page's form (CSRF)
    GET  /incidents/{id}            viewer      JSON, or the page for a browser
    GET  /incidents/{id}/live       viewer      the page's self-refreshing part
    GET  /action-items              viewer      open action items of closed reviews
    GET  /status                    anyone      the status page (HTML or JSON)
    GET|POST /login, POST /logout               the page's session

A JSON request gets JSON answers (200 with the incident; 400 naming the field;
401/403 from the middleware; 404; 409 with the current state). A form gets a
303 back to the incident's page, or a small HTML page with the same status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from multidict import MultiDictProxy

from receiver.keys import CONFIG, SPEC, STORE, WORKER
from receiver.models import INCIDENT_STATES, Incident, utcnow
from receiver.people.access import (
    ACCESS,
    PERSON,
    SESSION_COOKIE,
    Person,
    Refused,
    check_csrf,
    csrf_token,
    set_csrf_cookie,
    wants_html,
)
from receiver.people.actions import ACTIONS, BadRequest, Conflict, HumanActions, NotFound
from receiver.people.incident_page import (
    PageView,
    render_error,
    render_incident,
    render_live,
    render_login,
)
from receiver.people.status import render_status, status_rows
from receiver.report.postmortem import render_postmortem

__all__ = ["HUMAN", "PAGE_HEADERS", "add_people_routes", "incident_page", "no_users_banner"]

HUMAN: web.AppKey[HumanActions] = web.AppKey("people_actions", HumanActions)

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-src 'self'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
}
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def add_people_routes(app: web.Application) -> None:
    """Register the people's routes (the app must hold ``ACCESS`` and, once started, ``HUMAN``)."""
    app.router.add_get("/incidents/{id}/live", _live, name="incident_live")
    app.router.add_post("/incidents/{id}/{action}", _act, name="incident_action")
    app.router.add_get("/action-items", _action_items, name="action_items")
    app.router.add_get("/status", _status, name="status")
    app.router.add_get("/login", _login_form, name="login")
    app.router.add_post("/login", _login, name="login_post")
    app.router.add_post("/logout", _logout, name="logout")


def no_users_banner(request: web.Request) -> str | None:
    access = request.app.get(ACCESS)
    if access is None or not access.open:
        return None
    return (
        "No users are configured (receiver.yml people:): these pages answer only on this "
        "machine, and everyone here acts as 'local'."
    )


def _html(body: str, status: int = 200) -> web.Response:
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(PAGE_HEADERS)
    return response


def _incident_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise NotFound(raw)
    return int(raw)


# the incident page -------------------------------------------------------------------


def _view(request: web.Request, incident: Incident, csrf: str) -> PageView:
    person: Person = request[PERSON]
    config = request.app[CONFIG]
    spec = request.app.get(SPEC)
    external = config.people.prometheus_external_url or config.prometheus_url
    return PageView(
        person=person.name,
        role=person.role,
        csrf=csrf,
        prometheus_host=urlsplit(external).netloc if external else None,
        runbook_url=spec.pipeline(incident.pipeline).runbook_url if spec else None,
        banner=no_users_banner(request),
        postmortem=incident.postmortem or render_postmortem(incident, spec),
    )


async def incident_page(request: web.Request, incident: Incident) -> web.Response:
    """The incident's page (``web.py`` calls this for a browser's ``GET /incidents/{id}``)."""
    csrf = csrf_token(request)
    response = _html(render_incident(incident, _view(request, incident, csrf), utcnow()))
    set_csrf_cookie(response, csrf, request)
    return response


async def _live(request: web.Request) -> web.Response:
    try:
        incident = await request.app[STORE].get_incident(_incident_id(request))
    except NotFound:
        incident = None
    if incident is None:
        return _html(render_error(404, "no such incident", "/"), 404)
    return _html(render_live(incident, _view(request, incident, ""), utcnow()))


# actions ---------------------------------------------------------------------------


def _lines(text: Any) -> list[str]:
    return [line.strip() for line in str(text or "").splitlines() if line.strip()]


def _body_from_form(action: str, form: MultiDictProxy[Any]) -> dict[str, Any]:
    """Turn the page's form fields into the JSON body the action takes."""
    fields = {k: v for k, v in form.items() if k != "csrf" and isinstance(v, str)}
    if action != "close":
        return fields
    items = []
    for line in _lines(fields.get("action_items")):
        action_text, owner, due = ([*(p.strip() for p in line.split("|")), "", ""])[:3]
        items.append({"action": action_text, "owner": owner, "due": due})
    review: dict[str, Any] = {
        "preventive_measures": _lines(fields.get("preventive_measures")),
        "action_items": items,
    }
    return {"review": review}


async def _act(request: web.Request) -> web.StreamResponse:
    action = request.match_info["action"]
    is_form = request.content_type in _FORMS
    back = f"/incidents/{request.match_info['id']}"

    def refuse(status: int, message: str, **extra: Any) -> web.Response:
        if is_form:
            return _html(render_error(status, message, back), status)
        return web.json_response({"error": message, **extra}, status=status)

    if action not in ACTIONS:
        return refuse(404, f"no action {action[:50]!r}; one of {', '.join(ACTIONS)}")
    try:
        incident_id = _incident_id(request)
        if is_form:
            form = await request.post()
            check_csrf(request, form)
            body = _body_from_form(action, form)
        elif request.content_type != "application/json":
            return refuse(415, "send the body as application/json (or the page's form)")
        else:
            try:
                body = await request.json() if request.can_read_body else {}
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                return refuse(400, f"body is not JSON: {exc}", field="")
            if not isinstance(body, Mapping):
                return refuse(400, "body must be a JSON object", field="")
        person: Person = request[PERSON]
        incident = await request.app[HUMAN].run(incident_id, action, body, person.name)
    except Refused as exc:
        return refuse(exc.status, str(exc))
    except BadRequest as exc:
        return refuse(400, str(exc), field=exc.field)
    except Conflict as exc:
        return refuse(409, str(exc), state=exc.state, incident=exc.incident.id)
    except NotFound:
        return refuse(404, f"no incident {request.match_info['id'][:20]}")
    if action == "approve" and WORKER in request.app:
        request.app[WORKER].wake_approvals()  # this replica's pool runs it now
    if is_form:
        raise web.HTTPSeeOther(f"/incidents/{incident.id}")
    return web.json_response(incident.to_json())


# follow-up and status ----------------------------------------------------------------


async def _action_items(request: web.Request) -> web.Response:
    """Open action items of closed incidents' reviews, by owner and due date."""
    owner = request.query.get("owner") or None
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = await request.app[STORE].list_incidents(state="closed", limit=200, offset=offset)
        for incident in page:
            for item in (incident.review or {}).get("action_items") or []:
                if owner is None or item.get("owner") == owner:
                    items.append({**item, "incident": incident.id, "pipeline": incident.pipeline})
        if len(page) < 200:
            break
        offset += 200
    today = date.today().isoformat()
    for item in items:
        item["overdue"] = str(item.get("due", "")) < today
    items.sort(key=lambda i: (str(i.get("owner")), str(i.get("due")), i["incident"]))
    return web.json_response({"action_items": items})


async def _status(request: web.Request) -> web.Response:
    found: list[Incident] = []
    for state in INCIDENT_STATES:
        if state != "closed":
            found += await request.app[STORE].list_incidents(state=state, limit=500)
    rows = status_rows(found, request.app.get(SPEC))
    if wants_html(request):
        return _html(render_status(rows, utcnow()))
    return web.json_response({"pipelines": rows})


# sign-in ---------------------------------------------------------------------------


def _safe_next(value: Any) -> str:
    text = str(value or "/")
    if not text.startswith("/") or text.startswith("//") or "\\" in text:
        return "/"
    return text


async def _login_form(request: web.Request) -> web.StreamResponse:
    next_path = _safe_next(request.query.get("next"))
    if request.app[ACCESS].open:
        raise web.HTTPSeeOther(next_path)
    csrf = csrf_token(request)
    response = _html(render_login(next_path, csrf))
    set_csrf_cookie(response, csrf, request)
    return response


async def _login(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS]
    form = await request.post()
    next_path = _safe_next(form.get("next"))
    csrf = csrf_token(request)
    try:
        check_csrf(request, form)
        person = await access.check_password(
            request.remote or "?", str(form.get("user", "")), str(form.get("password", ""))
        )
    except Refused as exc:
        response = _html(render_login(next_path, csrf, str(exc)), exc.status)
        set_csrf_cookie(response, csrf, request)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    response = web.HTTPSeeOther(next_path)
    response.set_cookie(
        SESSION_COOKIE,
        access.session_cookie(person),
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        path="/",
        max_age=int(access.config.session_seconds),
    )
    raise response


async def _logout(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        check_csrf(request, form)
    except Refused as exc:
        return _html(render_error(exc.status, str(exc), "/"), exc.status)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
