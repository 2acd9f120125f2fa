"""The vocabulary's tables are consistent with each other and with every part that reads them."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from exporters.render import FAMILIES
from pipemedic.vocabulary import (
    ALERT_KINDS,
    CATEGORIES,
    CAUSES,
    DEFAULT_RECOVERY,
    METRICS,
    REASON_CAUSE,
    Source,
    by_alert,
)
from pipemedic.vocabulary.docs import render_markdown
from receiver.diagnosis import ALERT_HANDLERS, HANDLERS
from receiver.models import Diagnosis, Incident
from receiver.recovery.strategies import STRATEGIES
from receiver.recovery.verify import SIGNALS, symptoms
from receiver.report.followups import lessons_learned
from rules import testcases
from rules.alerts import kinds
from rules.lint import KNOWN_METRICS
from rules.severity import DEGRADATIONS
from rules.spec import BUILTIN_DEFAULTS, load_spec
from rules.strategies import BUILTIN_STRATEGIES


def test_each_reason_points_to_one_cause_of_its_category() -> None:
    reasons = Counter(r for c in CAUSES for r in c.reasons)
    assert [r for r, n in reasons.items() if n > 1] == []
    for c in CAUSES:
        for r in c.reasons:
            assert REASON_CAUSE[r] == (c.category, c.name)


def test_each_cause_recovers_with_a_real_strategy_or_says_why_it_escalates() -> None:
    for c in CAUSES:
        if c.strategy is None:
            assert c.escalation, c.name
            assert c.name not in DEFAULT_RECOVERY
        else:
            assert c.strategy in STRATEGIES and c.strategy in BUILTIN_STRATEGIES, c.name
            assert load_spec(None).pipeline("any").strategy_for(c.name) == c.strategy


def test_each_symptom_has_a_query_and_verification_asks_it() -> None:
    for c in CAUSES:
        queries = [s.query for s in symptoms(c.name, "etl", 300)]
        assert len(queries) == 1 + bool(c.reasons) + len(c.symptoms), c.name
        for s in c.symptoms:
            assert s.signal in SIGNALS, (c.name, s.signal)


def test_each_known_cause_has_a_prevent_lesson() -> None:
    for c in CAUSES:
        if c.name == "unknown":
            continue
        incident = Incident(
            id=1,
            pipeline="etl",
            state="resolved",
            sev="SEV3",
            category=str(c.category),
            opened_at=datetime(2026, 1, 1, tzinfo=UTC),
            diagnosis=Diagnosis(c.name, "handler", "summary"),
        )
        assert any(c.prevent in item for item in lessons_learned(incident)["What to prevent"])


def test_alert_kinds_are_unique_and_complete() -> None:
    assert (
        len({k.kind for k in ALERT_KINDS})
        == len({k.alert for k in ALERT_KINDS})
        == len(ALERT_KINDS)
    )
    assert [k.row for k in kinds()] == list(ALERT_KINDS)  # each row's module has its RULES
    assert all(
        isinstance(testcases.tests_of(row), testcases.KindTests) for row in ALERT_KINDS
    )  # and its TESTS
    assert set(BUILTIN_DEFAULTS["for"]) == {k.kind for k in ALERT_KINDS}
    for k in ALERT_KINDS:
        assert k.degradation in DEGRADATIONS
        assert k.category in CATEGORIES and k.category in HANDLERS
        assert ALERT_HANDLERS[k.alert] == k.category
        assert by_alert(k.alert) is k


def test_metric_table_feeds_the_renderer_and_the_linter() -> None:
    rendered = [m for m in METRICS if m.source == Source.PIPELINE]
    assert [(m.name, m.type, m.help) for m in rendered] == list(FAMILIES)
    assert len({m.name for m in METRICS}) == len(METRICS)
    for m in METRICS:
        for series in m.series_names():
            assert KNOWN_METRICS[series] >= frozenset(m.labels)


def test_docs_vocabulary_is_generated_from_the_tables() -> None:
    committed = (Path(__file__).resolve().parents[1] / "docs" / "vocabulary.md").read_text()
    assert committed == render_markdown(), (
        "docs/vocabulary.md is stale: python -m pipemedic.vocabulary.docs > docs/vocabulary.md"
    )
