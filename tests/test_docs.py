"""docs/ covers what the code accepts and does, and the repository points nowhere outside itself.

The configuration reference names every field ``receiver.yml`` and the spec's
schema accept (asked of the parsers themselves, so a new field without docs
fails here); the action contracts name every environment variable, body key
and context field the actions hand over; the lifecycle names every state;
the generated ``docs/vocabulary.md`` is checked in ``tests/test_vocabulary.py``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pipemedic.vocabulary import IncidentState
from receiver.actions import ActionContext, HttpAction
from receiver.actions.command import RUN_TOKEN_ENV, command_env
from receiver.config import parse_config
from receiver.errors import ConfigError
from receiver.recovery.config import RecoveryConfig
from rules.severity import DEGRADATIONS, IMPACTS, sev_for
from rules.spec import SCHEMA_PATH

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _backticked_words(path: Path) -> set[str]:
    """Every identifier-like word inside a `code span` or a fenced block of ``path``."""
    text = path.read_text(encoding="utf-8")
    spans = re.findall(r"```.*?```|`[^`\n]+`", text, flags=re.S)
    return {w for span in spans for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span)}


def _known_fields(raw: dict[str, Any]) -> list[str]:
    """Ask ``parse_config`` which fields the section holding ``zz_unknown`` accepts."""
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "probe.yml")
    found = re.search(r"known: ([a-z_, ]+)\)", str(caught.value))
    assert found, str(caught.value)
    return found.group(1).split(", ")


_PROBE = {"zz_unknown": 1}
_SECTIONS: list[dict[str, Any]] = [
    _PROBE,
    {"auth": _PROBE},
    {"auth": {"bearer": _PROBE}},
    {"auth": {"basic": _PROBE}},
    {"queue": _PROBE},
    {"workers": _PROBE},
    {"notify": _PROBE},
    {"notify": {"paging": _PROBE}},
    {"recovery": _PROBE},
    {"people": _PROBE},
    {"people": {"users": [_PROBE]}},
    {"people": {"proxy": _PROBE}},
    {"people": {"login": _PROBE}},
]


def test_every_receiver_yml_field_is_in_the_configuration_reference() -> None:
    documented = _backticked_words(DOCS / "configuration.md")
    fields = {f for raw in _SECTIONS for f in _known_fields(raw)}
    assert {f.name for f in dataclasses.fields(RecoveryConfig)} <= fields
    assert sorted(fields - documented) == []


def _schema_properties(node: Any, defs: dict[str, Any], seen: frozenset[str]) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                yield from _schema_properties(defs[name], defs, seen | {name})
            return
        for name, sub in (node.get("properties") or {}).items():
            yield name
            yield from _schema_properties(sub, defs, seen)
        for key in ("items", "additionalProperties"):
            yield from _schema_properties(node.get(key), defs, seen)
        for sub in (node.get("patternProperties") or {}).values():
            yield from _schema_properties(sub, defs, seen)
        for key in ("oneOf", "anyOf", "allOf"):
            for sub in node.get(key) or ():
                yield from _schema_properties(sub, defs, seen)


def test_every_spec_field_is_in_the_configuration_reference() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    fields = set(_schema_properties(schema, schema.get("$defs", {}), frozenset()))
    assert {"defaults", "pipelines", "teams", "known_metrics", "diagnosis"} <= fields
    assert sorted(fields - _backticked_words(DOCS / "configuration.md")) == []


async def test_the_action_contracts_name_what_actions_hand_over() -> None:
    documented = _backticked_words(DOCS / "actions.md")
    async with aiohttp.ClientSession() as session:
        ctx = ActionContext(
            incident_id=7,
            pipeline="p",
            alertname="a",
            cause="c",
            strategy="s",
            attempt=1,
            session=session,
            params={"resource": "memory"},
        )
        env = set(command_env(ctx)) - {"PATH", "HOME", "LANG", "LC_ALL", "TZ"}
        body = HttpAction({"url": "http://127.0.0.1:1/"}).body(ctx)
    assert sorted((env | {RUN_TOKEN_ENV}) - documented) == []
    assert sorted(set(body) - documented) == []
    assert sorted({f.name for f in dataclasses.fields(ActionContext)} - documented) == []


def test_the_lifecycle_names_every_state() -> None:
    documented = _backticked_words(DOCS / "incidents.md")
    assert sorted({s.value for s in IncidentState} - documented) == []


def test_the_sev_table_is_the_one_incidents_use() -> None:
    text = (DOCS / "incidents.md").read_text(encoding="utf-8")
    header = re.search(r"\| degradation \\ impact \|(.*)\|\n", text)
    assert header is not None
    impacts = re.findall(r"`(\w+)`", header.group(1))
    assert impacts == list(IMPACTS)
    for degradation in DEGRADATIONS:
        row = re.search(rf"\| `{degradation}` \|(.*)\|\n", text)
        assert row is not None, degradation
        shown = [cell.strip() for cell in row.group(1).split("|")]
        assert shown == [sev_for(degradation, impact) for impact in IMPACTS], degradation


def test_the_readme_links_every_doc() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((docs/[^)#]+)", readme))
    assert sorted(f"docs/{p.name}" for p in DOCS.glob("*.md")) == sorted(linked)


def test_nothing_in_the_repository_points_outside_it() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    outside = re.compile(r"\.\./shared|DESIGN\.md")
    found = []
    for name in filter(None, tracked):
        path = ROOT / name.decode()
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [
            f"{name.decode()}:{n}"
            for n, line in enumerate(text.splitlines(), 1)
            if outside.search(line)
        ]
    assert found == []


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file (lower case, punctuation dropped)."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    headings = re.findall(r"^#{1,6} (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_link_between_the_docs_reaches_its_file_and_heading() -> None:
    broken = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://|mailto:", target):
                continue
            name, _, anchor = target.partition("#")
            linked = (page.parent / name).resolve() if name else page
            if not linked.exists() or (anchor and anchor not in _anchors(linked)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
