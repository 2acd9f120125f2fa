"""Fuzz the spec loader: whatever the text, a Spec or a SpecError naming file:line, nothing else.

Bounded in `make test` (the ``default`` profile below); `make bench` runs the
same properties longer (``HYPOTHESIS_PROFILE=bench``, bench/bench_fuzz_spec.py).
"""

from __future__ import annotations

import os
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.errors import SpecError
from rules.spec import Spec, parse_spec

settings.register_profile(
    "default", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "bench", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SOURCE = "fuzz.yml"


def outcome(text: str) -> Spec | SpecError:
    """Parse; only SpecError may come out, and each problem names this file."""
    try:
        return parse_spec(text, SOURCE)
    except SpecError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file == SOURCE
            assert problem.line >= 0
            assert str(problem).startswith(SOURCE)
        return exc


# Text made of YAML's structural characters: flow and block, anchors, aliases, tags, keys.
yaml_chars = st.text(
    alphabet=st.sampled_from(list("abdefps:_-&*!<>[]{},?|'\"#\n  0123456789.{}%@`")),
    max_size=300,
)


@given(yaml_chars)
def test_any_text_gives_a_spec_or_a_spec_error(text: str) -> None:
    outcome(text)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["1h", "5m", "0s", "0.05", "{{ x }}", "https://r/x", "some", "critical"]),
)
keys = st.one_of(
    st.sampled_from(
        [
            "defaults",
            "pipelines",
            "teams",
            "known_metrics",
            "sla",
            "for",
            "down",
            "team",
            "runbook_url",
            "actions",
            "slo",
            "objective",
            "dependencies",
            "description",
            "etl",
        ]
    ),
    st.text(min_size=1, max_size=8),
)
documents: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=30,
)


@given(documents)
def test_any_structure_gives_a_spec_or_a_spec_error(doc: Any) -> None:
    outcome(yaml.safe_dump(doc))


@given(st.dictionaries(keys, documents, min_size=1, max_size=4), st.data())
def test_a_duplicated_key_is_always_refused(doc: dict[str, Any], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(doc)))
    text = yaml.safe_dump(doc) + yaml.safe_dump({key: doc[key]})
    result = outcome(text)
    assert isinstance(result, SpecError)
    assert any("duplicate key" in p.message for p in result.problems)


@given(st.integers(2, 12), st.integers(2, 12))
def test_nested_aliases_are_refused_or_small(width: int, depth: int) -> None:
    """width^depth nodes from a few hundred bytes: refused once beyond the alias budget."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, depth)]
    result = outcome("\n".join(lines) + "\n")
    assert isinstance(result, SpecError)  # top-level a0... is never a spec field
    expanded = sum(width**i for i in range(2, depth + 1))
    if expanded > 100_000:
        assert any("aliases expand" in p.message for p in result.problems)
