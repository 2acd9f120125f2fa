"""One module per generated alert kind: its signal, annotations and promtool cases.

The kind's row in :mod:`pipemedic.vocabulary.alerts` names its module; the
module's ``RULES`` (a :class:`KindRules`) says what only the rules need:

* ``summary``/``description``: the annotation templates;
* ``signal``: for a per-pipeline kind, its candidates (the pipelines whose
  alert may fire) and the operator comparing them with each threshold of
  the row; :mod:`rules.generate` records them and joins them with the spec
  (:func:`rules.specdata.joined`). Kinds without one (``exporter_down``, the
  burn-rate kinds) write their own rules (``alerts``, or :mod:`rules.slo`);
* ``records``: recording rules the signal reads, given the spec and its
  rate window;
* ``alerts``: the alerting rules of a kind without a per-pipeline signal.

The module's ``TESTS`` (a :class:`rules.testcases.KindTests`) gives the
pipelines of its generated promtool test.

Example::

    rules_of(alert_kind("sla")).signal(spec, "5m").ops    # ('>',)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from pipemedic.vocabulary import AlertKind
from rules.promql import Expr
from rules.templates import Label, Template, Value

if TYPE_CHECKING:
    from rules.spec import Spec

__all__ = ["PIPELINE", "KindRules", "Signal", "rules_of", "template"]

PIPELINE = Label("pipeline")


def template(*parts: str | Label | Value) -> Template:
    """Return an annotation template from its parts."""
    return Template(tuple(parts))


@dataclass(frozen=True)
class Signal:
    """A kind's candidates and, per threshold of its row, the operator that fires.

    A label-only kind has no operator: its candidates fire as they are.
    Several thresholds fire when any comparison holds (outside a band).
    """

    candidates: Expr
    ops: tuple[str, ...] = ()


@dataclass(frozen=True)
class KindRules:
    """What the rules and their tests need of one alert kind (see the module docstring)."""

    summary: Template
    description: Template
    signal: Callable[[Spec, str], Signal] | None = None
    records: Callable[[Spec, str], list[dict[str, Any]]] | None = None
    alerts: Callable[[Spec], list[dict[str, Any]]] | None = None


@cache
def rules_of(row: AlertKind) -> KindRules:
    """Return the ``RULES`` of the module a kind's row names."""
    found = getattr(importlib.import_module(row.rule_module), "RULES", None)
    if not isinstance(found, KindRules):
        raise TypeError(f"{row.rule_module} has no RULES (a KindRules) for kind {row.kind!r}")
    return found
