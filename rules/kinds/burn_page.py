"""PipelineErrorBudgetBurn: the fast burn-rate tier of an SLO pipeline (rules by rules.slo)."""

from __future__ import annotations

from rules.kinds import PIPELINE, KindRules, template
from rules.templates import Value
from rules.testcases import KindTests

RULES = KindRules(
    summary=template("Pipeline ", PIPELINE, " is burning its error budget fast"),
    description=template(
        PIPELINE,
        ": the error budget is burning ",
        Value(),
        "x faster than its SLO allows (1h and 5m, or 6h and 30m windows): page.",
    ),
)
TESTS = KindTests(fires_at_start=False)  # a burn rate needs its windows' samples first
