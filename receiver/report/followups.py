"""Derive the follow-ups of an incident: lessons learned and owned action items.

The runbook asks three questions after an incident — what to improve, what
to prevent, what to automate — and the closure step of the incident talk
turns the answers into assigned work. Both are derived here from what the
incident record shows (escalations, failed or dry-run steps, reopenings,
SEV changes, the diagnosed cause), so the post-mortem draft starts with
concrete items instead of empty headings. Items are Markdown, escaped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pipemedic import vocabulary
from receiver.models import ActionRecord, Incident
from receiver.report import markdown as md
from receiver.report.facts import first_event

__all__ = ["ActionItem", "action_items", "lessons_learned", "ordered_actions"]

_FAILED = ("failure", "timeout", "blocked")


@dataclass(frozen=True)
class ActionItem:
    """One follow-up with the role that owns it and why it exists."""

    action: str  # Markdown, already escaped
    role: str
    source: str  # Markdown, already escaped


def lessons_learned(incident: Incident) -> dict[str, list[str]]:
    """Return lessons (Markdown) under the runbook's questions: improve, prevent, automate."""
    improve: list[str] = []
    prevent: list[str] = []
    automate: list[str] = []
    actions = ordered_actions(incident.actions)
    outcomes = Counter(a.outcome for a in actions)
    cause = incident.diagnosis.cause if incident.diagnosis else None
    escalated = first_event(incident, "escalated") is not None or incident.state == "escalated"

    if cause is None or cause == "unknown":
        improve.append(
            "Diagnosis found no cause: add the evidence that would have shown it "
            "(a metric or a diagnosis check) so the next one is diagnosed automatically."
        )
    if incident.diagnosis is not None and incident.diagnosis.error:
        improve.append(
            "Diagnosis ran without all its evidence ("
            + md.text(incident.diagnosis.error)
            + "): make Prometheus reachable from the receiver."
        )
    failed = sum(outcomes[o] for o in _FAILED)
    if failed and outcomes["success"]:
        improve.append(
            f"Recovery needed {len(actions)} attempts ({failed} failed) before it worked: "
            "fix what made the first attempts fail or tune the backoff."
        )
    if outcomes["blocked"]:
        improve.append(
            f"Guardrails blocked {outcomes['blocked']} action(s): check the cooldown, "
            "rate limit and circuit breaker settings fit this pipeline."
        )
    reopened = [t for t in incident.timeline if t.event == "reopened"]
    if reopened:
        prevent.append(
            f"The incident reopened {len(reopened)} time(s) after resolving: the fix did "
            "not hold, or the alert flaps — find out which."
        )
    raised = [t for t in incident.timeline if t.event in ("sev_changed", "severity_changed")]
    if raised:
        improve.append(
            "The severity was raised during the incident: check the pipeline's "
            "declared impact in the spec."
        )
    row = vocabulary.cause(cause) if cause else None
    if cause and row is not None and row.prevent:
        prevent.append(f"{md.code(cause)}: {row.prevent}.")
    if escalated:
        if cause and not any(a.outcome == "success" for a in actions) and actions:
            automate.append(
                f"Automation tried {len(actions)} action(s) for {md.code(cause)} and gave up: "
                "make the recovery work without people, or document the manual fix."
            )
        else:
            what = md.code(cause or "unknown")
            automate.append(
                f"No automatic recovery applied to {what}: add a recovery strategy "
                "and action for it in rules/pipelines.yml."
            )
    if outcomes["dry_run"]:
        automate.append(
            f"{outcomes['dry_run']} action(s) only ran as a dry run: enable them once "
            "the dry runs look right."
        )
    if not actions and incident.resolved_at is not None and not escalated:
        improve.append(
            "The alert resolved on its own with no action: check whether it should have "
            "fired at all (threshold, `for` duration)."
        )
    return {"What to improve": improve, "What to prevent": prevent, "What to automate": automate}


def action_items(incident: Incident) -> list[ActionItem]:
    """Return the follow-ups: escalations and manual steps first, then the review itself."""
    items: list[ActionItem] = []
    escalated = first_event(incident, "escalated")
    cause = incident.diagnosis.cause if incident.diagnosis else "unknown"
    if escalated is not None or incident.state == "escalated":
        items.append(
            ActionItem(
                f"Resolve the escalated incident by hand and write down the steps "
                f"for {md.code(cause)}",
                "sme",
                "escalation",
            )
        )
        items.append(
            ActionItem(
                f"Automate the manual fix for {md.code(cause)} (recovery strategy and action)",
                "sme",
                "escalation",
            )
        )
    for a in ordered_actions(incident.actions):
        if a.outcome in _FAILED:
            items.append(
                ActionItem(
                    f"Find out why {md.code(a.action)} ({md.code(a.strategy)}) ended "
                    f"{md.code(a.outcome)} and fix it",
                    "sme",
                    f"step {md.code(a.step)}",
                )
            )
        elif a.outcome == "dry_run":
            items.append(
                ActionItem(
                    f"Run or enable the dry-run action {md.code(a.action)} "
                    f"({md.code(a.strategy)}) by hand",
                    "sme",
                    f"step {md.code(a.step)} (manual)",
                )
            )
    if incident.diagnosis is None or cause == "unknown":
        items.append(ActionItem("Complete the root-cause analysis", "sme", "diagnosis"))
    if incident.sev in ("SEV1", "SEV2"):
        items.append(
            ActionItem(
                "Tell affected users and leadership what happened and what changes",
                "liaison",
                md.text(incident.sev),
            )
        )
    items.append(
        ActionItem("Complete this draft with the people involved", "scribe", "post-mortem")
    )
    items.append(
        ActionItem(
            "Hold the review, agree the preventive measures and assign them",
            "commander",
            "closure",
        )
    )
    return items


def ordered_actions(actions: list[ActionRecord]) -> list[ActionRecord]:
    """Return the actions in the order they were started (steps break ties)."""
    return sorted(actions, key=lambda a: (a.started_at, a.step))
