"""The cases of one alert kind's generated promtool test: series in, alerts expected out.

A :class:`Builder` knows the spec and the kind; a kind's module (its
``RULES.cases``) returns :class:`Case` objects, usually through
:func:`threshold_cases` (a pipeline not in the spec above and below the
default, and every listed pipeline whose settings differ placed *between*
the default and its own threshold, so that firing or not proves the
override applied) or :func:`label_cases` (label-only kinds: the labels must
come from the spec). The expected annotations are rendered by
:mod:`rules.templates` from the same definitions the rules use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from pipemedic import vocabulary
from rules.alerts import AlertKind, for_seconds, params_for
from rules.durations import format_duration
from rules.generate import EXPORTER_JOB
from rules.rulefile import FOR_LABEL
from rules.spec import PipelineSpec, Spec

__all__ = [
    "EXPORTER_INSTANCE",
    "MARGIN",
    "MAX_LISTED",
    "STEP",
    "Builder",
    "Case",
    "KindTests",
    "const",
    "free_name",
    "label_cases",
    "num",
    "per_minute",
    "promtool_test",
    "series",
    "tests_of",
    "threshold_cases",
]

EXPORTER_INSTANCE = "127.0.0.1:9108"
# Listed pipelines per test: enough to prove overrides, bounded for huge specs.
MAX_LISTED = 25
STEP = 60  # seconds between samples and between evaluations
# How long after the longest ``for`` a test checks that everything fired.
MARGIN = 10 * 60


@dataclass
class Case:
    """One pipeline in a test: its series and, if it must fire, its expected alert."""

    series: list[tuple[str, str]]
    alert: dict[str, Any] | None = None
    for_s: float = 0.0


def series(metric: str, labels: dict[str, str], values: str) -> tuple[str, str]:
    """Return one input series of a promtool test: ``metric{labels}`` and its values."""
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}", values


def num(value: float) -> str:
    """Format a number as promtool's series notation takes it."""
    return str(int(value)) if float(value).is_integer() else repr(value)


def const(value: float, steps: int) -> str:
    """Return a series' values that hold ``value`` for ``steps`` steps."""
    return f"{num(value)}x{steps}"


def free_name(spec: Spec, name: str) -> str:
    """Return ``name``, lengthened until no pipeline of the spec has it."""
    while name in spec.pipelines:
        name += "_x"
    return name


def per_minute(ratio: float) -> tuple[int, int]:
    """Return (processed, failed) records per step for an error ratio."""
    processed = 10_000
    return processed, round(ratio * processed)


class Builder:
    """Build the cases of one alert kind for one spec."""

    def __init__(self, spec: Spec, k: AlertKind) -> None:
        self.spec = spec
        self.k = k
        self.unlisted = free_name(spec, "pipemedic_unlisted")
        self.unlisted_ok = free_name(spec, "pipemedic_unlisted_ok")

    def pipeline(self, name: str) -> PipelineSpec:
        return self.spec.pipeline(name)

    def labels(self, pipeline: str, **extra: str) -> dict[str, str]:
        """Return an exporter series' labels for ``pipeline``."""
        return {"pipeline": pipeline, "job": EXPORTER_JOB, "instance": EXPORTER_INSTANCE, **extra}

    def for_(self, pipeline: str) -> float:
        return for_seconds(self.pipeline(pipeline), self.k.kind)

    def expected(
        self, name: str, value: float, extra: dict[str, str] | None = None
    ) -> dict[str, Any]:
        p = self.pipeline(name)
        params = params_for(p, self.k.kind)
        labels = {"pipeline": name, "category": self.k.category, **params.labels(), **(extra or {})}
        if name in self.spec.pipelines and for_seconds(p, self.k.kind) != for_seconds(
            self.spec.defaults, self.k.kind
        ):
            labels[FOR_LABEL] = format_duration(for_seconds(p, self.k.kind))
        return {
            "exp_labels": labels,
            "exp_annotations": {
                "summary": self.k.summary.render(labels, value),
                "description": self.k.description.render(labels, value),
                "runbook_url": labels["runbook_url"],
            },
        }

    def case(self, pipeline: str, found: list[tuple[str, str]], value: float | None) -> Case:
        """Return a case of ``pipeline``: it fires with ``value``, or stays silent for None."""
        alert = self.expected(pipeline, value) if value is not None else None
        return Case(found, alert, self.for_(pipeline))

    def listed(self) -> list[str]:
        """Return listed pipelines whose settings or ``for`` differ, at most MAX_LISTED."""
        base = params_for(self.spec.defaults, self.k.kind)
        base_for = for_seconds(self.spec.defaults, self.k.kind)
        out = [
            name
            for name, p in self.spec.pipelines.items()
            if params_for(p, self.k.kind) != base or for_seconds(p, self.k.kind) != base_for
        ]
        return out[:MAX_LISTED]


@dataclass(frozen=True)
class KindTests:
    """A kind module's ``TESTS``: its promtool cases, or tests of its own.

    ``cases``: the pipelines of the kind's test (checked after the longest
    ``for``); ``tests``: whole promtool tests, for kinds that need their own
    timing or series; ``fires_at_start``: whether an alert with ``for: 0s``
    already fires at the first evaluation (a rate needs two samples first;
    None: the test does not check then).
    """

    cases: Callable[[Builder, int], list[Case]] | None = None
    tests: Callable[[Spec], list[dict[str, Any]]] | None = None
    fires_at_start: bool | None = True


@cache
def tests_of(row: vocabulary.AlertKind) -> KindTests:
    """Return the ``TESTS`` of the module a kind's row names."""
    found = getattr(importlib.import_module(row.rule_module), "TESTS", None)
    if not isinstance(found, KindTests):
        raise TypeError(f"{row.rule_module} has no TESTS (a KindTests) for kind {row.kind!r}")
    return found


# (builder, pipeline, measured value, whether it fires, steps) -> its case
MakeCase = Callable[[Builder, str, float, bool, int], Case]


def _between_or_above(default: float, own: float, above: float) -> tuple[float, bool]:
    """Return a value that tells the pipeline's own threshold from the default, and if it fires."""
    if own == default:
        return above, True
    return (default + own) / 2, own < default


def threshold_cases(
    b: Builder, steps: int, make: MakeCase, above: Callable[[float], float]
) -> list[Case]:
    """Cases for kinds firing above one threshold: ``above(t)`` is a value that exceeds ``t``."""
    d = params_for(b.spec.defaults, b.k.kind).value
    cases = [
        make(b, b.unlisted, above(d), True, steps),
        make(b, b.unlisted_ok, d / 2, False, steps),
    ]
    for pipeline in b.listed():
        own = params_for(b.pipeline(pipeline), b.k.kind).value
        value, fires = _between_or_above(d, own, max(above(d), above(own)))
        cases.append(make(b, pipeline, value, fires, steps))
    return cases


def label_cases(b: Builder, steps: int, metric: str, extra: dict[str, str]) -> list[Case]:
    """Cases for label-only kinds: ``metric`` 0 fires, 1 does not; labels come from the spec."""
    cases: list[Case] = []
    firing = [b.unlisted, *b.listed()]
    for pipeline in [*firing, b.unlisted_ok]:
        fires = pipeline in firing
        cases.append(
            Case(
                [series(metric, b.labels(pipeline, **extra), const(0 if fires else 1, steps))],
                b.expected(pipeline, 0.0, extra) if fires else None,
                b.for_(pipeline),
            )
        )
    return cases


def promtool_test(
    name: str, k: AlertKind, cases: list[Case], end: float | None = None
) -> dict[str, Any]:
    """Return one promtool test: at 30s only ``for: 0s`` alerts (if the kind fires at
    once), after the longest ``for`` (or at ``end``) all of them."""
    longest = max([c.for_s for c in cases] + [0.0])
    at = int(end if end is not None else longest + MARGIN)
    late = [c.alert for c in cases if c.alert]
    checks = [{"eval_time": format_duration(at), "alertname": k.alert, "exp_alerts": late}]
    at_start = tests_of(k.row).fires_at_start
    if at_start is not None:
        early = [c.alert for c in cases if c.alert and at_start and c.for_s == 0]
        checks.insert(0, {"eval_time": "30s", "alertname": k.alert, "exp_alerts": early})
    return {
        "name": name,
        "interval": f"{STEP}s",
        "input_series": [{"series": s, "values": v} for c in cases for s, v in c.series],
        "alert_rule_test": checks,
    }
