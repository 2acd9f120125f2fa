"""Build incidents and specs with people and destinations for the notification tests."""

from __future__ import annotations

from datetime import UTC, datetime

from receiver.models import ActionRecord, Diagnosis, Evidence, Incident
from rules.spec import Spec, parse_spec

HOSTILE = "@channel <!everyone> [x](http://evil.example) *bold*\r\nBcc: victim@evil.example"


def spec_with(destinations: str, team: str = "data-platform") -> Spec:
    """Return a spec whose ``team`` has people and the given ``notify:`` YAML list items."""
    return parse_spec(
        f"""
teams:
  {team}:
    commander: {{name: Ada Lovelace, email: ada@example.com, chat: ada}}
    scribe: Grace Hopper
    liaison: {{name: Lin Manager, email: lin@example.com}}
    sme: [Ken]
    notify:
{destinations}
""",
        "test-spec.yml",
    )


def incident(pipeline: str = "etl_orders", hostile: bool = False, iid: int = 7) -> Incident:
    """Return an escalated incident; ``hostile`` puts attacker text where labels go."""
    text = HOSTILE if hostile else "timeouts from shop_api"
    at = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)
    return Incident(
        id=iid,
        pipeline=HOSTILE if hostile else pipeline,
        state="escalated",
        sev="SEV2",
        opened_at=at,
        team="data-platform",
        roles={
            "commander": "Ada Lovelace",
            "scribe": "Grace Hopper",
            "liaison": "Lin Manager",
            "sme": ["Ken"],
        },
        diagnosis=Diagnosis(
            cause="logic_error",
            handler="check_data_integrity",
            summary=text,
            evidence=(Evidence(query="pipeline_errors_total", result=[], note=text),),
        ),
        actions=[
            ActionRecord(
                incident_id=iid,
                step="1",
                pipeline=pipeline,
                strategy="retry_with_backoff",
                action="http",
                target="t",
                started_at=at,
                outcome="failure",
            )
        ],
    )
