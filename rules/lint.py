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

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import promql_parser

from pipemedic.vocabulary.causes import CATEGORIES
from pipemedic.vocabulary.metrics import METRICS, family_names
from rules.durations import is_duration
from rules.errors import Problem, YamlError
from rules.promql import parse
from rules.severity import SEVS
from rules.yamlpos import Loaded, dotted, line_of, load_yaml
from rules.yamlpos import Path as FieldPath

__all__ = [
    "CHECKS",
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
# target labels every scraped series has (EXPORTER_LABEL: set on exporter targets)
_ALWAYS = frozenset({"job", "instance", "__name__", "pipemedic_target"})
# series name -> label -> the only values that label takes on it
_VOCABULARY: dict[str, dict[str, frozenset[str]]] = {
    series: {label: frozenset(values) for label, values in m.values.items()}
    for m in METRICS
    for series in m.series_names()
}
_STATIC_VALUES: dict[str, tuple[str, ...]] = {
    "severity": ("critical", "warning", "info"),
    "sev": SEVS,
    "category": tuple(CATEGORIES),
}


class _KnownMetrics:
    """The spec's ``known_metrics``: metric names, or regexes a whole name must match.

    A team's own metrics (Airflow's statsd, dbt, Spark...) are known to
    exist; their labels and types are theirs, so selectors over them are
    not checked further and ``rate()`` over them is allowed.
    """

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.names: set[str] = set()
        patterns: list[str] = []
        for entry in entries:
            if _METRIC_NAME.fullmatch(entry):
                self.names.add(entry)
            else:
                patterns.append(f"(?:{entry})")
        self.pattern = re.compile("|".join(patterns)) if patterns else None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in self.names or (self.pattern is not None and bool(self.pattern.fullmatch(name)))
        )


_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# ``# pipemedic: disable=unknown-metric,counter`` above a rule or inside it (pint's style)
_DISABLE = re.compile(r"#\s*pipemedic:\s*disable\s*=\s*([A-Za-z0-9_,\s-]+)")
# Checks a rule may disable; ``syntax`` cannot be (promtool would refuse the file anyway).
CHECKS: tuple[str, ...] = (
    "annotations",
    "conflict",
    "counter",
    "for",
    "label-values",
    "labels",
    "unknown-metric",
)


@dataclass
class _Doc:
    """A rule file being linted: where it is, its parsed YAML, its line index (lazy), and
    the checks each rule disables (rule path -> check names)."""

    file: str
    loaded: Loaded
    disabled: dict[FieldPath, frozenset[str]] = field(default_factory=dict)

    def allowed(self, rule: FieldPath, problems: Iterable[Problem]) -> list[Problem]:
        """Return ``problems`` of one rule without those of the checks it disables."""
        off = self.disabled.get(rule, frozenset())
        return [p for p in problems if p.check not in off]

    @property
    def data(self) -> Any:
        return self.loaded.data

    @property
    def index(self) -> Mapping[FieldPath, int]:
        return self.loaded.index

    def problem(self, path: FieldPath, message: str, check: str) -> Problem:
        return Problem(self.file, line_of(self.index, path), dotted(path), message, check)


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


def _counter_problems(
    doc: _Doc, path: FieldPath, tree: promql_parser.Expr, known: _KnownMetrics
) -> list[Problem]:
    out: list[Problem] = []

    def visit(node: promql_parser.Expr) -> None:
        if not isinstance(node, promql_parser.Call) or node.func.name not in COUNTER_FUNCTIONS:
            return
        for arg in node.args:
            if isinstance(arg, promql_parser.MatrixSelector):
                name = arg.vector_selector.name or ""
                if name in known:
                    continue  # the spec's known_metrics: a team's own metric, its own naming
                if name and (":" in name or not name.endswith(_COUNTER_SUFFIXES)):
                    out.append(
                        doc.problem(
                            path,
                            f"{node.func.name}() over {name!r}, which is not a counter "
                            "(counters end in _total, _count, _sum or _bucket)",
                            "counter",
                        )
                    )

    promql_parser.walk(tree, visit)
    return out


def _selector_problems(
    doc: _Doc,
    path: FieldPath,
    tree: promql_parser.Expr,
    recorded: AbstractSet[str],
    known: _KnownMetrics,
) -> list[Problem]:
    out: list[Problem] = []

    def visit(node: promql_parser.Expr) -> None:
        if not isinstance(node, promql_parser.VectorSelector) or not node.name:
            return
        name = node.name
        if name in recorded or name in _ANY_LABELS or name in known:
            return
        if name not in KNOWN_METRICS:
            out.append(
                doc.problem(
                    path,
                    f"selector {name!r} never matches: no exporter exports it, no rule "
                    "records it and the spec's known_metrics does not list it",
                    "unknown-metric",
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
                        "unknown-metric",
                    )
                )
            elif m.value not in _VOCABULARY[name].get(m.name, frozenset({m.value})):
                allowed = ", ".join(sorted(_VOCABULARY[name][m.name]))
                out.append(
                    doc.problem(
                        path,
                        f"selector {name}{{{m.name}={m.value!r}}} never "
                        f"matches: {m.name} is one of {allowed}",
                        "unknown-metric",
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
                    "label-values",
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
        out.append(
            doc.problem(path, f"alert {name!r} has no 'for': it fires on one bad sample", "for")
        )
    elif not is_duration(str(rule["for"])):
        out.append(
            doc.problem((*path, "for"), f"{rule['for']!r} is not a Prometheus duration", "for")
        )
    static = rule.get("labels") or {}
    produced = _produced_labels(tree, recorded) if tree is not None else set()
    for label in REQUIRED_LABELS:
        if label not in static and label not in produced:
            out.append(doc.problem(path, f"alert {name!r} lacks the label {label!r}", "labels"))
    out += _static_value_problems(doc, path, static)
    annotations = rule.get("annotations") or {}
    for key in REQUIRED_ANNOTATIONS:
        if not str(annotations.get(key) or "").strip():
            out.append(
                doc.problem(path, f"alert {name!r} lacks the annotation {key!r}", "annotations")
            )
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
                    conflict = doc.problem(
                        (*path, "labels", key),
                        f"alert {name!r} has {key}={value!r} here but {key}={first[0]!r} "
                        f"at {where}: duplicate alert name with conflicting labels",
                        "conflict",
                    )
                    out += doc.allowed(path, [conflict])
    return out


def _load(file: str, text: str) -> tuple[_Doc | None, list[Problem]]:
    try:
        # generated files grow with the spec; aliases, depth and duplicate keys stay bounded
        loaded = load_yaml(text, file, max_bytes=None)
    except YamlError as exc:
        return None, exc.problems
    doc = _Doc(file, loaded)
    data = loaded.data
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        return None, [Problem(file, 1, "groups", "a rule file needs a list of groups")]
    return doc, _read_disables(doc, text)


def _read_disables(doc: _Doc, text: str) -> list[Problem]:
    """Attach each ``# pipemedic: disable=...`` comment to its rule; name unknown checks.

    A comment belongs to the rule right below it (only comments or blank
    lines between) or, otherwise, to the rule whose lines it is on.
    """
    if _DISABLE.search(text) is None:
        return []  # generated files: nothing to find, no line index to build
    lines = text.splitlines()
    starts = sorted((line_of(doc.index, path), path) for path, _ in _rules(doc))
    problems: list[Problem] = []
    for number, line in enumerate(lines, start=1):
        match = _DISABLE.search(line)
        if match is None or not starts:
            continue
        names = frozenset(n.strip() for n in match.group(1).split(",") if n.strip())
        below = bisect.bisect_left(starts, (number, ()))  # the first rule starting here or later
        only_comments = not line[: match.start()].strip() and all(
            not ln.strip() or ln.lstrip().startswith("#")
            for ln in lines[number : starts[below][0] - 1 if below < len(starts) else number]
        )
        if below < len(starts) and (starts[below][0] == number or only_comments):
            rule = starts[below][1]
        elif below > 0:
            rule = starts[below - 1][1]
        else:
            continue
        for name in sorted(names - set(CHECKS)):
            problems.append(
                Problem(
                    doc.file,
                    number,
                    dotted(rule),
                    f"unknown check {name!r} in a disable comment (one of {', '.join(CHECKS)})",
                )
            )
        doc.disabled[rule] = doc.disabled.get(rule, frozenset()) | (names & set(CHECKS))
    return problems


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


def lint_texts(files: Mapping[str, str], known_metrics: Iterable[str] = ()) -> list[Problem]:
    """Lint rule files given as name -> YAML text; return every problem found.

    ``known_metrics``: the spec's metric names or regexes that exist besides
    pipemedic's own (:class:`_KnownMetrics`).
    """
    known = _KnownMetrics(known_metrics)
    problems: list[Problem] = []
    docs: list[_Doc] = []
    for file, text in files.items():
        doc, refused = _load(file, text)
        problems += refused
        if doc is not None:
            docs.append(doc)
    recorded = _recorded_labels(docs)
    recorded_names = recorded.keys()  # one view for every rule (a set per rule was quadratic)
    for doc in docs:
        for path, rule in _rules(doc):
            found: list[Problem] = []
            tree: promql_parser.Expr | None = None
            try:
                tree = parse(str(rule.get("expr", "")))
            except ValueError as exc:
                found.append(doc.problem((*path, "expr"), str(exc), "syntax"))
            if tree is not None:
                found += _counter_problems(doc, (*path, "expr"), tree, known)
                found += _selector_problems(doc, (*path, "expr"), tree, recorded_names, known)
            if "alert" in rule:
                found += _alert_problems(doc, path, rule, tree, recorded)
            elif isinstance(rule.get("labels"), dict):
                found += _static_value_problems(doc, path, rule["labels"])
            problems += doc.allowed(path, found)
    problems += _duplicate_problems(docs)
    return sorted(set(problems))


def lint_files(
    paths: Iterable[Path],
    extra: Mapping[str, str] | None = None,
    known_metrics: Iterable[str] = (),
) -> list[Problem]:
    """Lint rule files on disk, together with ``extra`` (name -> text, e.g. generated ones)."""
    files = dict(extra or {})
    for path in paths:
        try:
            files[str(path)] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return [Problem(str(path), 0, "", f"cannot read: {exc}")]
    return lint_texts(files, known_metrics)
