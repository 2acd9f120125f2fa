"""PipelineExporterDown: an exporter target down, or no exporter target at all.

Exporter targets are those labelled ``pipemedic_target="exporter"``
(:data:`rules.generate.EXPORTER_LABEL`), whatever their job is called. It
has no pipeline of its own; ``pipeline`` is the scrape job, so the receiver
opens one incident for the exporter, not one per pipeline
(``pipemedic-exporter`` when there is no exporter target at all).
"""

from __future__ import annotations

from typing import Any

from rules.alerts import for_seconds, kind, params_for
from rules.durations import format_duration
from rules.generate import EXPORTER_JOB, EXPORTER_LABEL, EXPORTER_TARGET, PUSHGATEWAY_JOB
from rules.kinds import KindRules, template
from rules.promql import binop, call, number, selector
from rules.rulefile import alert_rule
from rules.spec import Spec
from rules.templates import Label
from rules.testcases import EXPORTER_INSTANCE, STEP, KindTests, series

_MARGIN = 10 * 60


def _alerts(spec: Spec) -> list[dict[str, Any]]:
    k = kind("exporter_down")
    targets = selector("up", {EXPORTER_LABEL: EXPORTER_TARGET})
    down = binop(targets, "==", number(0))
    missing = call("label_replace", call("absent", targets), "job", EXPORTER_JOB, "", "")
    expr = call("label_replace", binop(down, "or", missing), "pipeline", "$1", "job", "(.+)")
    for_ = format_duration(for_seconds(spec.defaults, "exporter_down"))
    return [alert_rule(k, expr, for_, spec, params_for(spec.defaults, "exporter_down").labels())]


def _tests(spec: Spec) -> list[dict[str, Any]]:
    k = kind("exporter_down")
    params = params_for(spec.defaults, "exporter_down")
    for_s = for_seconds(spec.defaults, "exporter_down")
    steps = int((for_s + _MARGIN) // STEP) + 5
    end = format_duration(for_s + _MARGIN)

    def alert(labels: dict[str, str], value: float) -> dict[str, Any]:
        full = {**labels, "pipeline": labels["job"], "category": k.category, **params.labels()}
        return {
            "exp_labels": full,
            "exp_annotations": {
                "summary": k.summary.render(full, value),
                "description": k.description.render(full, value),
                "runbook_url": params.runbook_url,
            },
        }

    target = {EXPORTER_LABEL: EXPORTER_TARGET}
    exporter = {"job": EXPORTER_JOB, "instance": EXPORTER_INSTANCE, **target}
    pushgateway = {"job": PUSHGATEWAY_JOB, "instance": "127.0.0.1:9091", **target}
    # any job name: an application serving its own /metrics, labelled as an exporter target
    own = {"job": "team-airflow-metrics", "instance": "127.0.0.1:9102", **target}
    unlabelled = {"job": "node", "instance": "127.0.0.1:9100"}

    def test(name: str, ups: list[tuple[dict[str, str], int]], exp: list[Any]) -> dict[str, Any]:
        return {
            "name": f"PipelineExporterDown: {name}",
            "interval": f"{STEP}s",
            "input_series": [
                {"series": series("up", labels, "")[0], "values": f"{value}x{steps}"}
                for labels, value in ups
            ],
            "alert_rule_test": [{"eval_time": end, "alertname": k.alert, "exp_alerts": exp}],
        }

    return [
        test(
            "a scrape target is down",
            [(exporter, 0), (pushgateway, 1), (own, 0), (unlabelled, 0)],
            [alert(exporter, 0), alert(own, 0)],
        ),
        test(
            "no exporter target at all (absent)",
            [(unlabelled, 1)],
            [alert({"job": EXPORTER_JOB, **target}, 1)],
        ),
        test("all targets up", [(exporter, 1), (pushgateway, 1)], []),
    ]


RULES = KindRules(
    summary=template("Pipeline exporter ", Label("job"), " is down"),
    description=template(
        "Prometheus cannot scrape ",
        Label("job"),
        " ",
        Label("instance"),
        " (or has no target for it): pipeline metrics are not being collected.",
    ),
    alerts=_alerts,
)
TESTS = KindTests(tests=_tests)
