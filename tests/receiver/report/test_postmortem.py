"""The post-mortem draft: the runbook's sections, the incident's facts, safe Markdown."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from presentation_samples import (
    escalated_incident,
    hostile_incident,
    recovered_incident,
)

from receiver.models import ActionRecord, TimelineEntry
from receiver.report import markdown as md
from receiver.report.facts import SEV_TABLE, clean_text, format_duration, users_affected
from receiver.report.followups import action_items, lessons_learned
from receiver.report.postmortem import render_postmortem
from rules.severity import DEGRADATIONS, IMPACTS, SEVS, sev_for
from rules.spec import parse_spec

SECTIONS = (
    "## Facts",
    "## Timeline",
    "## Root cause",
    "## Impact & resolution",
    "## Lessons learned",
    "## Action items",
)


def _section(text: str, title: str) -> str:
    start = text.index(title)
    following = [text.index(s) for s in SECTIONS if text.index(s) > start]
    return text[start : min(following, default=len(text))]


def test_sections_in_runbook_order() -> None:
    text = render_postmortem(recovered_incident())
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert text.startswith("# Post-mortem: PipelineDown on `etl_orders` (incident #7)")


def test_facts_name_the_alert_times_and_impact() -> None:
    facts = _section(render_postmortem(recovered_incident()), "## Facts")
    assert "`PipelineDown`: PipelineDown on etl\\_orders" not in facts  # intraword _ stays
    assert "`PipelineDown`: PipelineDown on etl_orders" in facts
    assert "**Began:** 2026-03-01T12:00:00.000Z" in facts  # the alert's startsAt, not opened_at
    assert "**Ended:** 2026-03-01T12:09:00.000Z" in facts
    assert "**Duration:** 9m 00s" in facts
    assert "SEV2 — significant problems, many users affected" in facts


def test_timeline_lists_every_step_in_time_order() -> None:
    incident = recovered_incident()
    incident.timeline.reverse()  # stored order must not matter
    timeline = _section(render_postmortem(incident), "## Timeline")
    events = re.findall(r"^\| \S+ \| `([a-z_]+)` \|", timeline, re.M)
    assert events == [
        "detected",
        "acknowledged",
        "diagnosed",
        "recovery_attempt",
        "recovery_attempt",
        "resolved",
    ]


def test_root_cause_has_diagnosis_and_evidence() -> None:
    cause = _section(render_postmortem(recovered_incident()), "## Root cause")
    assert "`network_timeout` (diagnosed by `check_infrastructure`)" in cause
    assert "timeouts to the orders API" in cause
    assert 'pipeline_errors_total{pipeline="etl_orders",reason="timeout"}' in cause
    assert '`{reason="timeout"} 42`' in cause
    assert "**Kind of error:** technical" in cause


def test_impact_and_resolution_from_actions() -> None:
    text = _section(render_postmortem(recovered_incident()), "## Impact & resolution")
    assert "**Users affected:** many users affected" in text
    assert "by `retry_with_backoff` (`restart`) (verified in Prometheus) after 2 attempt(s)" in text
    assert "**Time to recover:** 9m 00s" in text
    assert "**Time to acknowledge:** 1m 00s; **to diagnose:** 2m 00s" in text
    assert "`failure` — HTTP 503" in text and "`success` — HTTP 200" in text


def test_escalation_becomes_lesson_and_owned_action_items() -> None:
    spec = parse_spec(
        "defaults: {team: data-platform}\n"
        "teams:\n  data-platform: {commander: ana, scribe: ben, liaison: cy, sme: [dev]}\n"
    )
    text = render_postmortem(escalated_incident(), spec)
    assert "escalated for manual intervention: no recovery strategy for logic_error" in text
    lessons = lessons_learned(escalated_incident())
    assert any("add a recovery strategy" in item for item in lessons["What to automate"])
    items = _section(text, "## Action items")
    assert "| 1 | Resolve the escalated incident by hand" in items
    assert "| dev | sme | escalation |" in items
    assert "| ben | scribe |" in items and "| ana | commander |" in items
    assert "SEV3" not in items  # no liaison item below SEV2


def test_roles_missing_everywhere_say_unassigned() -> None:
    items = _section(render_postmortem(escalated_incident()), "## Action items")
    assert "_unassigned (sme)_" in items


def test_incident_roles_win_over_spec() -> None:
    spec = parse_spec("teams:\n  data-platform: {commander: zed}\n")
    items = _section(render_postmortem(recovered_incident(), spec), "## Action items")
    assert "| ana | commander |" in items and "zed" not in items


def test_failed_and_dry_run_steps_become_action_items() -> None:
    incident = recovered_incident()
    first = incident.actions[0]
    incident.actions.append(
        ActionRecord(
            7,
            "scale#1",
            "etl_orders",
            "scale_resources",
            "scale",
            "",
            first.started_at,
            outcome="dry_run",
        )
    )
    items = action_items(incident)
    sources = [i.source for i in items]
    assert "step `retry_with_backoff#1`" in sources
    assert "step `scale#1` (manual)" in sources
    lessons = lessons_learned(incident)
    assert any("dry run" in item for item in lessons["What to automate"])
    assert any("2 failed" not in i and "1 failed" in i for i in lessons["What to improve"])


def test_reopened_incident_is_a_lesson_to_prevent() -> None:
    incident = recovered_incident()
    from receiver.models import TimelineEntry

    incident.timeline.append(TimelineEntry(incident.opened_at, "reopened", None))
    assert any("reopened 1 time" in i for i in lessons_learned(incident)["What to prevent"])


def test_output_is_deterministic() -> None:
    a = render_postmortem(recovered_incident())
    incident = recovered_incident()
    incident.actions.reverse()
    incident.timeline.reverse()
    assert render_postmortem(incident) == a


def test_open_incident_draft_says_not_resolved() -> None:
    incident = recovered_incident()
    incident.state, incident.resolved_at, incident.actions = "diagnosing", None, []
    text = render_postmortem(incident)
    assert "**Ended:** not yet (diagnosing)" in text
    assert "**Time to recover:** not resolved yet" in text


def _outside_code(text: str) -> str:
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text)


def test_hostile_labels_never_become_markup() -> None:
    text = render_postmortem(hostile_incident())
    prose = _outside_code(text)
    # every < > [ ] outside code spans is backslash-escaped: no raw HTML, no links
    for match in re.finditer(r"[<>\[\]]", prose):
        assert prose[match.start() - 1] == "\\", prose[max(0, match.start() - 40) : match.end()]
    # table rows keep their column count despite | and newlines in values
    for line in text.splitlines():
        if line.startswith("| 20"):
            assert len(re.findall(r"(?<!\\)\|", line)) == 4, line
    assert "ünïcødé ✓" in text


def test_code_span_survives_backticks_and_pipes() -> None:
    assert md.code("a`b") == "``a`b``"
    assert md.code("`x`") == "`` `x` ``"
    assert md.cell(md.code("a|b")) == "`a\\|b`"
    assert md.text("[x](javascript:alert(1))") == "\\[x\\](javascript:alert(1))"


def test_control_characters_are_made_visible() -> None:
    assert clean_text("a\x1b[31mb\nc\u202e") == "a\\x1b[31mb c\\u202e"


@pytest.mark.parametrize("sev", SEVS)
def test_sev_table_matches_rules_severity(sev: str) -> None:
    deg_text, users = SEV_TABLE[sev]
    deg = {
        "unavailable": "unavailable",
        "significant problems": "significant",
        "performance problems": "performance",
        "low level annoyances": "annoyance",
    }[deg_text]
    impact = {
        "most users affected": "most",
        "many users affected": "many",
        "some users affected": "some",
        "no users affected": "none",
    }[users]
    assert deg in DEGRADATIONS and impact in IMPACTS
    assert sev_for(deg, impact) == sev


def test_users_affected_for_unknown_sev() -> None:
    incident = recovered_incident()
    incident.sev = "SEV9"
    assert users_affected(incident).startswith("unknown")


def test_users_affected_is_the_declared_impact_not_the_sev() -> None:
    incident = recovered_incident()  # SEV2: significant problems
    opened = incident.timeline[0].at
    incident.timeline.append(
        TimelineEntry(opened, "sev_set", {"sev": "SEV2", "why": "sev label", "impact": "most"})
    )
    text = render_postmortem(incident)
    assert "**Users affected:** most users affected (SEV2: significant problems)" in text
    assert "SEV2 — significant problems, most users affected" in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.2, "<1s"), (45, "45s"), (725, "12m 05s"), (11220, "3h 07m"), (187200, "2d 04h")],
)
def test_format_duration(seconds: float, text: str) -> None:

    assert format_duration(timedelta(seconds=seconds)) == text


def test_nested_timeline_details_render_on_one_row() -> None:
    incident = escalated_incident()
    from receiver.models import TimelineEntry

    incident.timeline[-1] = TimelineEntry(
        incident.timeline[-1].at,
        "escalated",
        {
            "reason": "all actions failed",
            "roles": {"commander": "ana", "sme": ["dev", "eve"]},
            "error": None,
        },
    )
    text = render_postmortem(incident)
    assert "| `escalated` | reason: all actions failed; roles: commander=ana, sme=dev/eve |" in text
    assert "escalated for manual intervention: all actions failed" in text


def test_escalated_then_resolved_says_when_the_alert_cleared() -> None:
    incident = escalated_incident()
    incident.state = "resolved"
    incident.resolved_at = incident.timeline[-1].at + timedelta(minutes=20)
    text = render_postmortem(incident)
    assert (
        "escalated for manual intervention: no recovery strategy for logic_error; "
        "the alert cleared 20m 00s after the escalation"
    ) in text


def test_lifecycle_reason_prefix_is_not_repeated() -> None:
    incident = escalated_incident()
    from receiver.models import TimelineEntry

    at = incident.timeline[-1].at
    incident.timeline[-1] = TimelineEntry(
        at, "escalated", {"reason": "requires manual intervention: no strategy"}
    )
    assert "escalated for manual intervention: no strategy" in render_postmortem(incident)
