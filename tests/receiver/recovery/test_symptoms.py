"""Every cause's symptom queries parse, and an alert's pipeline stays a string literal in them."""

from __future__ import annotations

from typing import Any

import promql_parser
import pytest

from pipemedic.vocabulary import CAUSE_NAMES
from receiver.recovery.verify import symptoms
from rules.promql import selectors_in
from rules.spec import DiagnosisThresholds

HOSTILE = 'x"} or vector(1) or up{a=~".+'


@pytest.mark.parametrize("cause", CAUSE_NAMES)
def test_symptoms_parse_and_select_only_the_pipeline(cause: str) -> None:
    for s in symptoms(cause, HOSTILE, 60, DiagnosisThresholds()):
        tree: Any = promql_parser.parse(s.query)
        for sel in selectors_in(tree):
            values = {m.name: m.value for m in sel.matchers.matchers}
            assert values.get("pipeline", HOSTILE) == HOSTILE, s.query


def test_thresholds_come_from_the_spec() -> None:
    strict = DiagnosisThresholds(memory_ratio=0.5, disk_free_bytes=10, cpu_ratio=0.75)
    queries = {c: [s.query for s in symptoms(c, "p", 60, strict)] for c in CAUSE_NAMES}
    assert any(q.endswith(">= 0.5") for q in queries["memory_limit"])
    assert any(q.endswith("< 10") for q in queries["disk_full"])
    assert any(q.endswith(">= 0.75") for q in queries["cpu_saturation"])
    assert any(q.endswith(">= 1.5") for q in queries["resource_contention"])
