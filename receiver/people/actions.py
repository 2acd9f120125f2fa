"""What people do to an incident: validate the request, check the state, apply it.

Every action is one ``Lifecycle.act`` (read, change, save under the incident's
short lock), so it never waits for a running recovery and a recovery's later
saves keep it (``Lifecycle.save``). Each adds a timeline entry with ``by``:

==================  ==================  ==========================================
action              timeline event      allowed in
==================  ==================  ==========================================
acknowledge         ``acknowledged``    not resolved/closed, once
roles               ``role_assigned``   not closed
notes               ``note``            any state
status-updates      ``status_update``   not closed
severity            ``sev_changed``     not closed
handoff             ``handoff``         not closed
approve / reject    ``approved`` /      a step waits for approval (reject escalates
                    ``rejected``        at once)
resolve             ``resolved``        open, diagnosing, recovering, recovered, escalated
close               ``closed``          resolved, escalated; needs the review
==================  ==================  ==========================================

A bad body is ``BadRequest`` (400, naming the field); a state that does not
allow the action is ``Conflict`` (409, with the current state).

Example::

    people = HumanActions(lifecycle)
    incident = await people.run(7, "acknowledge", {}, by="alice")
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from receiver.incidents.lifecycle import TRANSITIONS, Lifecycle
from receiver.models import Incident, format_time
from rules.severity import SEVS

__all__ = [
    "ACTIONS",
    "ROLES",
    "BadRequest",
    "Conflict",
    "HumanActions",
    "NotFound",
]

ROLES = ("commander", "scribe", "liaison", "sme")
_MAX_TEXT = 10_000
_MAX_NAME = 200
_DUE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BadRequest(ValueError):
    """A body the action cannot take (400); ``field`` is the JSON path of the problem."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Conflict(Exception):
    """The incident's state does not allow the action (409); ``state`` is the current one."""

    def __init__(self, incident: Incident, message: str) -> None:
        super().__init__(message)
        self.state = incident.state
        self.incident = incident


class NotFound(LookupError):
    """No incident with that id (404)."""


def _text(body: Mapping[str, Any], name: str, *, limit: int = _MAX_TEXT) -> str:
    value = body.get(name)
    if value is None:
        raise BadRequest(name, "is required")
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(name, "must be a non-empty string")
    if len(value) > limit:
        raise BadRequest(name, f"is longer than {limit} characters")
    return value.strip()


def _optional_text(body: Mapping[str, Any], name: str) -> str:
    return _text(body, name) if body.get(name) not in (None, "") else ""


def _choice(body: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = _text(body, name, limit=_MAX_NAME)
    if value not in allowed:
        raise BadRequest(name, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def parse_review(body: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``{"review": {"preventive_measures": [...], "action_items": [...]}}``."""
    review = body.get("review")
    if review is None:
        raise BadRequest("review", "is required to close an incident")
    if not isinstance(review, Mapping):
        raise BadRequest("review", "must be an object")
    measures = review.get("preventive_measures")
    if measures is None:
        raise BadRequest("review.preventive_measures", "is required")
    if not isinstance(measures, list) or not measures:
        raise BadRequest("review.preventive_measures", "must be a non-empty list")
    clean_measures = []
    for i, measure in enumerate(measures):
        clean_measures.append(_text({"m": measure}, "m") if isinstance(measure, str) else None)
        if clean_measures[-1] is None:
            raise BadRequest(f"review.preventive_measures[{i}]", "must be a non-empty string")
    items = review.get("action_items")
    if items is None:
        raise BadRequest("review.action_items", "is required (an empty list if none)")
    if not isinstance(items, list):
        raise BadRequest("review.action_items", "must be a list")
    clean_items = []
    for i, item in enumerate(items):
        where = f"review.action_items[{i}]"
        if not isinstance(item, Mapping):
            raise BadRequest(where, "must be an object with action, owner and due")
        try:
            action = _text(item, "action")
            owner = _text(item, "owner", limit=_MAX_NAME)
            due = _text(item, "due", limit=10)
        except BadRequest as exc:
            raise BadRequest(f"{where}.{exc.field}", str(exc).split(": ", 1)[1]) from None
        try:
            if not _DUE.match(due):
                raise ValueError(due)
            date.fromisoformat(due)
        except ValueError:
            raise BadRequest(f"{where}.due", f"{due!r} is not a date YYYY-MM-DD") from None
        clean_items.append({"action": action, "owner": owner, "due": due})
    return {"preventive_measures": clean_measures, "action_items": clean_items}


def _person(value: Any) -> str | None:
    """The name of whoever holds a role (a string, or the spec's ``{name, ...}``)."""
    if isinstance(value, Mapping):
        name = value.get("name")
        return str(name) if name else None
    return str(value) if value else None


class HumanActions:
    """Run people's actions on incidents through the lifecycle (see the module docstring)."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    async def run(
        self, incident_id: int, action: str, body: Mapping[str, Any], by: str
    ) -> Incident:
        """Validate ``body`` for ``action``, then apply it to the stored incident as ``by``."""
        validate, apply = _ACTIONS[action]
        clean = validate(body)
        try:
            incident, _ = await self.lifecycle.act(
                incident_id, lambda incident: apply(self, incident, clean, by)
            )
        except LookupError:
            raise NotFound(incident_id) from None
        return incident

    # the changes ---------------------------------------------------------------
    def _note(self, incident: Incident, event: str, detail: Any, by: str) -> None:
        self.lifecycle.note(incident, event, detail, by=by)

    def _not_closed(self, incident: Incident, what: str) -> None:
        if incident.state == "closed":
            raise Conflict(incident, f"incident {incident.id} is closed: cannot {what}")

    def acknowledge(self, incident: Incident, _body: Mapping[str, Any], by: str) -> None:
        if incident.state in ("resolved", "closed"):
            raise Conflict(incident, f"incident {incident.id} is {incident.state}: nothing to take")
        if incident.acknowledged_by is not None:
            raise Conflict(
                incident,
                f"incident {incident.id} was acknowledged by {incident.acknowledged_by} "
                f"at {format_time(incident.acknowledged_at)}",
            )
        now = self.lifecycle.clock()
        incident.acknowledged_at, incident.acknowledged_by = now, by
        self._note(incident, "acknowledged", {"state": incident.state}, by)
        metrics = self.lifecycle.metrics
        if metrics is not None:
            took = (now - incident.opened_at).total_seconds()
            metrics.time_to_acknowledge.labels(sev=incident.sev).observe(max(took, 0.0))

    def assign(self, incident: Incident, body: Mapping[str, Any], by: str) -> None:
        self._not_closed(incident, "assign roles")
        role, person = body["role"], body["person"]
        previous = self._set_role(incident, role, person)
        self._note(
            incident, "role_assigned", {"role": role, "person": person, "previous": previous}, by
        )

    def _set_role(self, incident: Incident, role: str, person: str) -> Any:
        roles = dict(incident.roles)
        previous = roles.get(role)
        if role == "sme":
            smes = [s for s in (previous or []) if _person(s) != person]
            roles["sme"] = [*smes, person]
        else:
            roles[role] = person
            previous = _person(previous)
        incident.roles = roles
        return previous

    def add_note(self, incident: Incident, body: Mapping[str, Any], by: str) -> None:
        self._note(incident, "note", {"text": body["text"]}, by)

    def status_update(self, incident: Incident, body: Mapping[str, Any], by: str) -> None:
        self._not_closed(incident, "post a status update")
        self._note(incident, "status_update", {"text": body["text"]}, by)

    def severity(self, incident: Incident, body: Mapping[str, Any], by: str) -> None:
        self._not_closed(incident, "change its severity")
        sev = body["sev"]
        if sev == incident.sev:
            raise Conflict(incident, f"incident {incident.id} is {sev} already")
        detail = {"from": incident.sev, "to": sev, "why": body["why"]}
        incident.sev = sev
        self._note(incident, "sev_changed", detail, by)

    def handoff(self, incident: Incident, body: Mapping[str, Any], by: str) -> None:
        self._not_closed(incident, "hand off")
        role, to = body["role"], body["to"]
        previous = self._set_role(incident, role, to)
        detail = {"role": role, "from": previous, "to": to, "note": body["note"]}
        self._note(incident, "handoff", detail, by)

    def _waiting(self, incident: Incident) -> dict[str, Any]:
        pending = incident.pending_approval
        if pending is None or pending.get("decision") is not None:
            raise Conflict(
                incident,
                f"incident {incident.id} ({incident.state}) has no recovery step waiting "
                "for approval",
            )
        return pending

    def approve(self, incident: Incident, body: Mapping[str, Any], by: str) -> None:
        pending = self._waiting(incident)
        at = format_time(self.lifecycle.clock())
        incident.pending_approval = {
            **pending,
            "decision": {"decision": "approved", "by": by, "at": at, "why": body["why"]},
        }
        self._note(incident, "approved", {"step": pending.get("step"), "why": body["why"]}, by)

    def reject(self, incident: Incident, body: Mapping[str, Any], by: str) -> None:
        pending = self._waiting(incident)
        step = pending.get("step")
        self._note(incident, "rejected", {"step": step, "why": body["why"]}, by)
        incident.pending_approval = None
        why = f": {body['why']}" if body["why"] else ""
        reason = f"requires manual intervention: {by} rejected {step}{why}"
        self.lifecycle.transition(
            incident,
            "escalated",
            {"reason": reason, "strategy": pending.get("strategy"), "roles": incident.roles},
            by=by,
        )
        self._render(incident)

    def resolve(self, incident: Incident, body: Mapping[str, Any], by: str) -> None:
        if "resolved" not in TRANSITIONS.get(incident.state, frozenset()):
            raise Conflict(incident, f"incident {incident.id} is {incident.state} already")
        now = self.lifecycle.clock()
        if incident.pending_approval is not None:
            step = incident.pending_approval.get("step")
            self._note(incident, "approval_cancelled", {"step": step, "why": "resolved"}, by)
            incident.pending_approval = None
        self.lifecycle.transition(incident, "resolved", {"how": body["how"]}, at=now, by=by)
        incident.resolved_at = now
        metrics = self.lifecycle.metrics
        if metrics is not None:
            took = (now - incident.opened_at).total_seconds()
            metrics.time_to_recover.labels(sev=incident.sev).observe(max(took, 0.0))
        self._render(incident)

    def close(self, incident: Incident, body: Mapping[str, Any], by: str) -> None:
        if incident.state not in ("resolved", "escalated"):
            raise Conflict(
                incident,
                f"incident {incident.id} is {incident.state}: only a resolved or escalated "
                "incident can be closed",
            )
        review = body["review"]
        now = self.lifecycle.clock()
        incident.review = {**review, "by": by, "at": format_time(now)}
        detail = {
            "preventive_measures": len(review["preventive_measures"]),
            "action_items": len(review["action_items"]),
        }
        self.lifecycle.transition(incident, "closed", detail, at=now, by=by)
        incident.closed_at = now
        self._render(incident)

    def _render(self, incident: Incident) -> None:
        render = self.lifecycle.render_postmortem
        if render is not None:
            incident.postmortem = render(incident, self.lifecycle.spec)


def _empty(_body: Mapping[str, Any]) -> dict[str, Any]:
    return {}


def _why(body: Mapping[str, Any]) -> dict[str, Any]:
    return {"why": _optional_text(body, "why")}


_Validate = Callable[[Mapping[str, Any]], dict[str, Any]]
_Apply = Callable[[HumanActions, Incident, Mapping[str, Any], str], None]

_ACTIONS: dict[str, tuple[_Validate, _Apply]] = {
    "acknowledge": (_empty, HumanActions.acknowledge),
    "roles": (
        lambda b: {
            "role": _choice(b, "role", ROLES),
            "person": _text(b, "person", limit=_MAX_NAME),
        },
        HumanActions.assign,
    ),
    "notes": (lambda b: {"text": _text(b, "text")}, HumanActions.add_note),
    "status-updates": (lambda b: {"text": _text(b, "text")}, HumanActions.status_update),
    "severity": (
        lambda b: {"sev": _choice(b, "sev", SEVS), "why": _text(b, "why")},
        HumanActions.severity,
    ),
    "handoff": (
        lambda b: {
            "role": _choice(b, "role", ROLES),
            "to": _text(b, "to", limit=_MAX_NAME),
            "note": _text(b, "note"),
        },
        HumanActions.handoff,
    ),
    "approve": (_why, HumanActions.approve),
    "reject": (_why, HumanActions.reject),
    "resolve": (lambda b: {"how": _text(b, "how")}, HumanActions.resolve),
    "close": (lambda b: {"review": parse_review(b)}, HumanActions.close),
}
# the path segment of each action: POST /incidents/{id}/<action>
ACTIONS: tuple[str, ...] = tuple(_ACTIONS)
