"""Lint Prometheus rule files the way pint's core checks do, without a Prometheus.

Checks (each problem names file:line and the field path):

* every expression parses; every alert has ``for`` (a duration);
* every alert carries the labels ``pipeline``, ``severity``, ``sev``,
  ``category``, ``team`` (static, or produced by its expression: ``by``,
  ``group_left``, ``label_replace``, selector matchers, the static labels of
  a recorded series it selects) with valid static values (an alert's, or a
  recording rule's, whose series alerts carry),
  and the annotations ``summary``, ``description``, ``runbook_url``;
* ``rate()``/``irate()``/``increase()``/``resets()`` only over counters;
* one alert name never carries conflicting static labels across rules;
* no selector that can never match: unknown metric names, labels a known
  metric does not have, values outside a known label's vocabulary.

Known metrics are the families of :mod:`pipemedic.vocabulary.metrics`
(the exporter's, Prometheus' own) and everything any linted file records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from pipemedic.vocabulary.causes import CATEGORIES
from pipemedic.vocabulary.metrics import METRICS, family_names
from rules.durations import is_duration
from rules.errors import Problem
from rules.promql import parse
from rules.severity import SEVS
from rules.yamlpos import Path as FieldPath
from rules.yamlpos import dotted, line_index, line_of

__all__ = [
    "COUNTER_FUNCTIONS",
    "KNOWN_METRICS",
    "REQUIRED_ANNOTATIONS",
    "REQUIRED_LABELS",
    "lint_files",
    "lint_texts",
]

REQUIRED_LABELS: tuple[str, ...] = ("pipeline", "severity", "sev", "category", "team")
REQUIRED_ANNOTATIONS: tuple[str, ...] = ("summary", "description", "runbook_url")
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase", "resets"})
_COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")

# metric -> its labels (besides job/instance): every family of the vocabulary's table
KNOWN_METRICS: dict[str, frozenset[str]] = family_names()
_ANY_LABELS = frozenset({"ALERTS", "ALERTS_FOR_STATE"})
_ALWAYS = frozenset({"job", "instance", "__name__"})
# label -> the only values it takes, for metrics with that label
_VOCABULARY: dict[str, frozenset[str]] = {
    label: frozenset(values) for m in METRICS for label, values in m.values.items()
}
_STATIC_VALUES: dict[str, tuple[str, ...]] = {
    "severity": ("critical", "warning", "info"),
    "sev": SEVS,
    "category": tuple(CATEGORIES),
}


@dataclass
class _Doc:
    """A rule file being linted: where it is, its parsed YAML and its line index."""

    file: str
    data: Any
    index: Mapping[FieldPath, int]

    def problem(self, path: FieldPath, message: str) -> Problem:
        return Problem(self.file, line_of(self.index, path), dotted(path), message)


def _rules(doc: _Doc) -> Iterable[tuple[FieldPath, dict[str, Any]]]:
    groups = doc.data.get("groups") if isinstance(doc.data, dict) else None
    for gi, group in enumerate(groups or ()):
        for ri, rule in enumerate((group or {}).get("rules") or ()):
            if isinstance(rule, dict):
                yield ("groups", gi, "rules", ri), rule


def _produced_labels(
    tree: promql_parser.Expr, recorded: Mapping[str, set[str]] | None = None
) -> set[str]:
    """Return the labels an expression may put on its results (generous, like pint)."""
    labels: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            if node.modifier.type == promql_parser.AggModifierType.By:
                labels.update(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            labels.update(node.modifier.group_labels or ())
        elif isinstance(node, promql_parser.Call) and node.func.name == "label_replace":
            dst = node.args[1]
            if isinstance(dst, promql_parser.StringLiteral):
                labels.add(dst.val)
        elif isinstance(node, promql_parser.VectorSelector):
            labels.update(m.name for m in node.matchers.matchers)
            labels.update(KNOWN_METRICS.get(node.name or "", ()))
            labels.update((recorded or {}).get(node.name or "", ()))

    promql_parser.walk(tree, visit)
    return labels


def _counter_problems(doc: _Doc, path: FieldPath, tree: promql_parser.Expr) -> list[Problem]:
    out: list[Problem] = []

    def visit(node: promql_parser.Expr) -> None:
        if not isinstance(node, promql_parser.Call) or node.func.name not in COUNTER_FUNCTIONS:
            return
        for arg in node.args:
            if isinstance(arg, promql_parser.MatrixSelector):
                name = arg.vector_selector.name or ""
                if name and (":" in name or not name.endswith(_COUNTER_SUFFIXES)):
                    out.append(
                        doc.problem(
                            path,
                            f"{node.func.name}() over {name!r}, which is not a counter "
                            "(counters end in _total, _count, _sum or _bucket)",
                        )
                    )

    promql_parser.walk(tree, visit)
    return out


def _selector_problems(
    doc: _Doc, path: FieldPath, tree: promql_parser.Expr, recorded: set[str]
) -> list[Problem]:
    out: list[Problem] = []

    def visit(node: promql_parser.Expr) -> None:
        if not isinstance(node, promql_parser.VectorSelector) or not node.name:
            return
        name = node.name
        if name in recorded or name in _ANY_LABELS:
            return
        if name not in KNOWN_METRICS:
            out.append(
                doc.problem(
                    path,
                    f"selector {name!r} never matches: no exporter exports it and no "
                    "rule records it",
                )
            )
            return
        has = KNOWN_METRICS[name] | _ALWAYS
        for m in node.matchers.matchers:
            if m.op != promql_parser.MatchOp.Equal or not m.value:
                continue
            if m.name not in has:
                out.append(
                    doc.problem(
                        path,
                        f"selector {name}{{{m.name}=...}} never matches: "
                        f"{name} has no {m.name!r} label",
                    )
                )
            elif m.name in _VOCABULARY and m.value not in _VOCABULARY[m.name]:
                allowed = ", ".join(sorted(_VOCABULARY[m.name]))
                out.append(
                    doc.problem(
                        path,
                        f"selector {name}{{{m.name}={m.value!r}}} never "
                        f"matches: {m.name} is one of {allowed}",
                    )
                )

    promql_parser.walk(tree, visit)
    return out


def _static_value_problems(doc: _Doc, path: FieldPath, static: Mapping[str, Any]) -> list[Problem]:
    """Return static labels (of an alert, or of a record whose series alerts carry) out of range."""
    out: list[Problem] = []
    for label, allowed in _STATIC_VALUES.items():
        value = static.get(label)
        if value is not None and value not in allowed:
            out.append(
                doc.problem(
                    (*path, "labels", label),
                    f"{value!r} is not a valid {label} (one of {', '.join(allowed)})",
                )
            )
    return out


def _alert_problems(
    doc: _Doc,
    path: FieldPath,
    rule: dict[str, Any],
    tree: promql_parser.Expr | None,
    recorded: Mapping[str, set[str]],
) -> list[Problem]:
    out: list[Problem] = []
    name = rule.get("alert")
    if "for" not in rule:
        out.append(doc.problem(path, f"alert {name!r} has no 'for': it fires on one bad sample"))
    elif not is_duration(str(rule["for"])):
        out.append(doc.problem((*path, "for"), f"{rule['for']!r} is not a Prometheus duration"))
    static = rule.get("labels") or {}
    produced = _produced_labels(tree, recorded) if tree is not None else set()
    for label in REQUIRED_LABELS:
        if label not in static and label not in produced:
            out.append(doc.problem(path, f"alert {name!r} lacks the label {label!r}"))
    out += _static_value_problems(doc, path, static)
    annotations = rule.get("annotations") or {}
    for key in REQUIRED_ANNOTATIONS:
        if not str(annotations.get(key) or "").strip():
            out.append(doc.problem(path, f"alert {name!r} lacks the annotation {key!r}"))
    return out


def _duplicate_problems(docs: Sequence[_Doc]) -> list[Problem]:
    seen: dict[str, dict[str, tuple[str, _Doc, FieldPath]]] = {}
    out: list[Problem] = []
    for doc in docs:
        for path, rule in _rules(doc):
            name = rule.get("alert")
            if not name:
                continue
            labels = seen.setdefault(str(name), {})
            for key, value in (rule.get("labels") or {}).items():
                first = labels.setdefault(key, (str(value), doc, path))
                if first[0] != str(value):
                    where = f"{first[1].file}:{line_of(first[1].index, first[2])}"
                    out.append(
                        doc.problem(
                            (*path, "labels", key),
                            f"alert {name!r} has {key}={value!r} here but {key}={first[0]!r} "
                            f"at {where}: duplicate alert name with conflicting labels",
                        )
                    )
    return out


def _load(file: str, text: str) -> tuple[_Doc | None, list[Problem]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return None, [Problem(file, mark.line + 1 if mark else 1, "", f"invalid YAML: {exc}")]
    doc = _Doc(file, data, line_index(text))
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        return None, [Problem(file, 1, "groups", "a rule file needs a list of groups")]
    return doc, []


def _recorded_labels(docs: Sequence[_Doc]) -> dict[str, set[str]]:
    """Return recorded metric -> labels its rules may give it (chains resolved)."""
    recorded: dict[str, set[str]] = {}
    rules = [r for d in docs for _, r in _rules(d) if "record" in r]
    for _ in range(3):  # recording rules may read each other; three rounds settle our chains
        for rule in rules:
            labels = recorded.setdefault(str(rule["record"]), set())
            labels.update((rule.get("labels") or {}).keys())
            try:
                labels.update(_produced_labels(parse(str(rule.get("expr", ""))), recorded))
            except ValueError:
                continue
    return recorded


def lint_texts(files: Mapping[str, str]) -> list[Problem]:
    """Lint rule files given as name -> YAML text; return every problem found."""
    problems: list[Problem] = []
    docs: list[_Doc] = []
    for file, text in files.items():
        doc, found = _load(file, text)
        problems += found
        if doc is not None:
            docs.append(doc)
    recorded = _recorded_labels(docs)
    for doc in docs:
        for path, rule in _rules(doc):
            tree: promql_parser.Expr | None = None
            try:
                tree = parse(str(rule.get("expr", "")))
            except ValueError as exc:
                problems.append(doc.problem((*path, "expr"), str(exc)))
            if tree is not None:
                problems += _counter_problems(doc, (*path, "expr"), tree)
                problems += _selector_problems(doc, (*path, "expr"), tree, set(recorded))
            if "alert" in rule:
                problems += _alert_problems(doc, path, rule, tree, recorded)
            elif isinstance(rule.get("labels"), dict):
                problems += _static_value_problems(doc, path, rule["labels"])
    problems += _duplicate_problems(docs)
    return sorted(set(problems))


def lint_files(paths: Iterable[Path], extra: Mapping[str, str] | None = None) -> list[Problem]:
    """Lint rule files on disk, together with ``extra`` (name -> text, e.g. generated ones)."""
    files = dict(extra or {})
    for path in paths:
        try:
            files[str(path)] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return [Problem(str(path), 0, "", f"cannot read: {exc}")]
    return lint_texts(files)
