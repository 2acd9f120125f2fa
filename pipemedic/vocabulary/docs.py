"""Write docs/vocabulary.md from the vocabulary's tables, so the docs cannot drift from them.

``python -m pipemedic.vocabulary.docs > docs/vocabulary.md``; a test fails
while the committed file differs from what this renders.
"""

from __future__ import annotations

from pipemedic.vocabulary.alerts import ALERT_KINDS
from pipemedic.vocabulary.causes import CAUSES
from pipemedic.vocabulary.metrics import METRICS
from rules.lint import REQUIRED_ANNOTATIONS, REQUIRED_LABELS

__all__ = ["render_markdown"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _causes() -> list[str]:
    lines = [
        "## Error reason -> cause -> recovery",
        "",
        "Diagnosis turns the `reason` of `pipeline_errors_total` (or the evidence of an",
        "alert kind) into a cause; recovery runs the cause's default strategy (the spec's",
        "`recovery:` may override it per pipeline) or escalates to people, saying why; a",
        "recovery counts as verified once new errors of the cause's reasons and its",
        "symptoms are gone.",
        "",
        "| cause | category | reasons | recovery | verified when clear | prevent |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in CAUSES:
        reasons = ", ".join(f"`{r}`" for r in c.reasons) or "-"
        recovery = f"`{c.strategy}`" if c.strategy else f"escalate: {_cell(c.escalation)}"
        symptoms = "; ".join(f"{s.note} (`{s.signal}` {s.op} its limit)" for s in c.symptoms)
        lines.append(
            f"| `{c.name}` | {c.category or '-'} | {reasons} | {recovery} | {symptoms or '-'} | "
            f"{_cell(c.prevent) or '-'} |"
        )
    return lines


def _alerts() -> list[str]:
    lines = [
        "## Alert kinds",
        "",
        "The spec names a kind in `for.<kind>`, `severity.<kind>` and",
        "`defaults.keep_firing_for.<kind>`; the SEV is the degradation x the pipeline's",
        "`impact` (the table: docs/incidents.md). Every alert, generated or custom, carries",
        f"the labels {_names(REQUIRED_LABELS)} and the annotations",
        f"{_names(REQUIRED_ANNOTATIONS)}: the receiver routes and files incidents by them",
        "(`pipemedic rules check` refuses a rule without them).",
        "",
        "A pipeline with no recovery of its own (a downstream pipeline, once its upstream's",
        "incident recovered) is verified by its alert's own condition: not reported down, and",
        'the column "still failing while" (docs/incidents.md, "Across the lineage graph").',
        "",
        "| kind | alert | category | degradation | thresholds (spec) | for | keep_firing_for "
        "| still failing while |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k in ALERT_KINDS:
        thresholds = ", ".join(f"`{t}`" for t in k.thresholds) or "-"
        clears = k.clears.note if k.clears is not None else "-"
        lines.append(
            f"| `{k.kind}` | `{k.alert}` | {k.category} | {k.degradation} | {thresholds} | "
            f"{k.for_} | {k.keep_firing_for or '-'} | {clears} |"
        )
    return lines


def _metrics() -> list[str]:
    lines = [
        "## Metrics",
        "",
        "| metric | type | labels | written by | help |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in METRICS:
        labels = ", ".join(f"`{label}`" for label in m.labels) or "-"
        lines.append(f"| `{m.name}` | {m.type} | {labels} | {m.source} | {_cell(m.help)} |")
    return lines


def render_markdown() -> str:
    """Return docs/vocabulary.md."""
    parts = [
        "# The vocabulary: causes, alert kinds, metrics",
        "",
        "Generated from `pipemedic/vocabulary/` by",
        "`python -m pipemedic.vocabulary.docs > docs/vocabulary.md`; do not edit by hand.",
        "",
        *_causes(),
        "",
        *_alerts(),
        "",
        *_metrics(),
    ]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
