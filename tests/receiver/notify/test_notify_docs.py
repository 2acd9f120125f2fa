"""docs/notifications.md's examples are real: the spec and receiver.yml blocks load."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from receiver.config import parse_config
from rules.spec import parse_spec

DOC = (Path(__file__).resolve().parents[3] / "docs" / "notifications.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", DOC, flags=re.S)


def test_the_spec_example_parses_with_people_and_destinations() -> None:
    (text,) = [body for lang, body in BLOCKS if lang == "yaml" and "teams:" in body]
    team = parse_spec(text, "docs/notifications.md").team("data-platform")
    assert team is not None and team.page_sev == "SEV2"
    assert [d.kind for d in team.notify] == ["slack", "mailtos"]
    assert team.notify[1].to == ("commander", "liaison")


def test_the_receiver_config_example_parses() -> None:
    (text,) = [
        body
        for lang, body in BLOCKS
        if lang == "yaml" and "notify:" in body and "teams:" not in body
    ]
    config = parse_config(yaml.safe_load(text), "docs/notifications.md")
    assert config.external_url == "https://pipemedic.example.com"
    assert config.notify.alertmanager_url == "http://127.0.0.1:9093"
    assert config.notify.page_resend_seconds == 60
    assert config.notify.max_age_seconds == 86400
