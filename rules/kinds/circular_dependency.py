"""PipelineCircularDependency: the pipeline is on a cycle of the lineage graph.

Two sources, so that neither alone is trusted to see everything: the
exporter's ``pipeline_dependency_cycle`` (cycles of any length in the graph
one exporter learned and was declared), and, from ``pipeline_upstream_info``
directly, cycles of at most two pipelines (a self-dependency, or A and B
each upstream of the other) whose edges may come from different exporters.
PromQL cannot join edges many-to-many, so longer cycles are the exporter's
to find.
"""

from __future__ import annotations

import itertools

from rules.kinds import PIPELINE, KindRules, Signal, template
from rules.promql import Expr, agg, binop, call, number, selector
from rules.spec import Spec
from rules.testcases import Builder, Case, KindTests, const, free_name, series

CYCLE = "pipeline_dependency_cycle"
EDGES = "pipeline_upstream_info"


def _reversed(edges: Expr) -> Expr:
    """Return every edge turned around: ``pipeline`` and ``upstream`` swapped."""
    peer = call("label_replace", edges, "peer", "$1", "pipeline", "(.+)")
    turned = call("label_replace", peer, "pipeline", "$1", "upstream", "(.+)")
    return call("label_replace", turned, "upstream", "$1", "peer", "(.+)")


def _signal(spec: Spec, window: str) -> Signal:
    edges = selector(EDGES)
    short = binop(edges, "and", _reversed(edges), on=("pipeline", "upstream"))
    return Signal(
        agg("max", binop(binop(selector(CYCLE), ">", number(0)), "or", short), ("pipeline",))
    )


def _cases(b: Builder, steps: int) -> list[Case]:
    """The exporter's cycle metric, a two-pipeline cycle of edges; a chain stays silent."""
    one = const(1, steps)
    cases = [b.case(p, [series(CYCLE, b.labels(p), one)], 1.0) for p in (b.unlisted, *b.listed())]
    a, c = free_name(b.spec, "pipemedic_cycle_a"), free_name(b.spec, "pipemedic_cycle_b")
    cases += [
        b.case(a, [series(EDGES, b.labels(a, upstream=c), one)], 1.0),
        b.case(c, [series(EDGES, b.labels(c, upstream=a), one)], 1.0),
    ]
    chain = [free_name(b.spec, f"pipemedic_chain_{n}") for n in "abc"]
    cases += [
        Case([series(EDGES, b.labels(down, upstream=up), one)])
        for down, up in itertools.pairwise(chain)
    ]
    cases.append(Case([series("pipeline_up", b.labels(b.unlisted_ok), one)]))
    return cases


RULES = KindRules(
    summary=template("Pipeline ", PIPELINE, " is on a circular dependency"),
    description=template(
        PIPELINE,
        ": its lineage leads back to itself (GET /lineage on the exporter lists the cycle); "
        "its runs wait on their own output.",
    ),
    signal=_signal,
)
TESTS = KindTests(cases=_cases)
