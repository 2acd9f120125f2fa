"""PipelineErrorBudgetBurnSlow: the slow burn-rate tier of an SLO pipeline (rules by rules.slo)."""

from __future__ import annotations

from rules.kinds import PIPELINE, KindRules, template
from rules.templates import Value
from rules.testcases import KindTests

RULES = KindRules(
    summary=template("Pipeline ", PIPELINE, " is burning its error budget"),
    description=template(
        PIPELINE,
        ": the error budget is burning ",
        Value(),
        "x faster than its SLO allows (1d and 2h, or 3d and 6h windows): ticket.",
    ),
)
TESTS = KindTests(fires_at_start=False)  # a burn rate needs its windows' samples first
