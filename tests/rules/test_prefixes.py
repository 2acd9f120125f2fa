"""Recording-rule prefixes: `pipeline:` series keep a pipeline, `pipemedic:` tables hold none."""

from __future__ import annotations

import pytest

from rules.generate import generate
from rules.promql import number, selector
from rules.rulefile import record
from rules.spec import load_spec


def test_every_generated_record_is_named_by_what_it_holds() -> None:
    spec = load_spec("rules/pipelines.yml")
    names = {
        r["record"] for f in generate(spec) for g in f.groups for r in g["rules"] if "record" in r
    }
    assert names and all(n.startswith(("pipeline:", "pipemedic:")) for n in names)
    assert "pipemedic:alert_spec:default" in names and "pipeline:alert_spec:info" in names


@pytest.mark.parametrize(
    ("name", "expr", "labels", "message"),
    [
        ("job:x:rate5m", selector("x"), None, "name it pipeline:... or pipemedic:..."),
        ("pipemedic:x:info", number(1), {"pipeline": "a"}, "holds a pipeline"),
        ("pipeline:x:value", number(1), {"kind": "sla"}, "has no pipeline label"),
    ],
)
def test_a_record_named_against_the_convention_is_a_generator_bug(
    name: str, expr: object, labels: dict[str, str] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        record(name, expr, labels)  # type: ignore[arg-type]
