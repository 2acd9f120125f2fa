"""Incidents and specs with people and destinations, and a poll helper, for notify tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from receiver.models import ActionRecord, Diagnosis, Evidence, Incident
from rules.spec import Spec, parse_spec


async def wait_for(check: Callable[[], Awaitable[bool]], deadline: float = 90.0) -> None:
    """Poll ``check`` until true; fail with a clear message after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not await check():
        if loop.time() > end:
            raise AssertionError(f"condition not met within {deadline}s")
        await asyncio.sleep(0.02)


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
