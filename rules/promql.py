"""Build PromQL from small typed pieces, and check every result with a real parser.

The generator never glues query strings by hand: it composes selectors,
aggregations, calls and binary operations, each of which knows its operator
precedence, so parentheses appear exactly where PromQL needs them. Every
finished expression goes through :func:`check`, which parses it with
``promql_parser`` (the Rust port of Prometheus' own parser).

Example::

    ratio = binop(
        selector("pipeline:records_failed:rate5m"),
        "/",
        binop(selector("pipeline:records_processed:rate5m"), ">", number(0)),
    )
    check(ratio).text
    # 'pipeline:records_failed:rate5m / (pipeline:records_processed:rate5m > 0)'
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import promql_parser

__all__ = [
    "Expr",
    "agg",
    "binop",
    "call",
    "check",
    "matrix",
    "number",
    "offset",
    "one_of",
    "parenthesized",
    "parse",
    "quote",
    "selector",
    "selectors_in",
    "subquery",
]

# Binary operator precedence, lowest first (Prometheus' parser/lex.go).
_PRECEDENCE: dict[str, int] = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 3,
    "!=": 3,
    "<": 3,
    "<=": 3,
    ">": 3,
    ">=": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "atan2": 5,
    "^": 6,
}
_ATOM = 100
_SET_OPS = frozenset({"or", "and", "unless"})


@dataclass(frozen=True)
class Expr:
    """A PromQL expression: its text and the precedence of its outermost operator."""

    text: str
    precedence: int = _ATOM

    def __str__(self) -> str:
        return self.text


_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_METRIC_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
_SIMPLE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(value: str) -> str:
    """Return ``value`` as a double-quoted PromQL string literal that means exactly it.

    The one escaping function for every label value and string argument,
    whether it comes from the spec or from an alert (untrusted). Backslash,
    quote and line breaks get their escapes; any other control or unassigned
    character becomes a ``\\u``/``\\U`` escape; a lone surrogate (not
    encodable) becomes U+FFFD. Nothing in ``value`` can end the literal.
    """
    if value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'  # nothing to escape (the common case: a name)
    out = ['"']
    for ch in value:
        if ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
            continue
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cn", "Co", "Zl", "Zp"):
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def selector(metric: str, matchers: Mapping[str, str] | None = None, **equal: str) -> Expr:
    """Return an instant selector with every value escaped by :func:`quote`.

    ``equal`` values always match literally (an alert's ``pipeline`` label
    goes there, so ``=~.+`` in it is a name, not a regex); only ``matchers``
    values may start with ``=~``/``!=``/``!~`` to choose the operator. The
    metric and label names are ours and must be identifiers (``ValueError``).
    """
    if not _METRIC_NAME.match(metric):
        raise ValueError(f"invalid metric name {metric!r}")
    ops: dict[str, tuple[str, str]] = {}
    for name, raw in (matchers or {}).items():
        op = "="
        for candidate in ("=~", "!~", "!="):
            if raw.startswith(candidate):
                op, raw = candidate, raw[len(candidate) :]
                break
        ops[name] = (op, raw)
    ops.update({name: ("=", value) for name, value in equal.items()})
    parts: list[str] = []
    for name, (op, value) in sorted(ops.items()):
        if not _LABEL_NAME.match(name):
            raise ValueError(f"invalid label name {name!r}")
        parts.append(f"{name}{op}{quote(value)}")
    return Expr(f"{metric}{{{', '.join(parts)}}}" if parts else metric)


def one_of(values: Iterable[str]) -> str:
    """Return a ``=~`` matcher (a :func:`selector` ``matchers`` value) matching exactly ``values``.

    Each value is regex-escaped, so a name is a name, never a pattern
    (Prometheus anchors the alternation); :func:`selector` then quotes it.
    """
    return "=~" + "|".join(re.escape(value) for value in values)


def matrix(vector: Expr, window: str) -> Expr:
    """Return a range selector over ``window`` (a Prometheus duration)."""
    return Expr(f"{vector.text}[{window}]")


def offset(vector: Expr, window: str) -> Expr:
    """Return an instant selector shifted ``window`` into the past."""
    return Expr(f"{vector.text} offset {window}")


def subquery(expr: Expr, window: str, step: str) -> Expr:
    """Return ``(expr)[window:step]``: ``expr`` evaluated every ``step`` over ``window``."""
    return Expr(f"{_wrap(expr, _ATOM)}[{window}:{step}]")


def number(value: float) -> Expr:
    """Return a number literal in its shortest exact form (``0.05``, ``14.4``, ``3600``)."""
    text = repr(float(value))
    return Expr(text[:-2] if text.endswith(".0") else text)


def call(function: str, *args: Expr | str) -> Expr:
    """Return a function call; ``str`` arguments become string literals."""
    rendered = [a.text if isinstance(a, Expr) else quote(a) for a in args]
    return Expr(f"{function}({', '.join(rendered)})")


def agg(
    op: str,
    expr: Expr,
    by: Iterable[str] = (),
    *,
    without: Iterable[str] = (),
    param: float | None = None,
) -> Expr:
    """Return an aggregation such as ``max by (pipeline) (expr)`` or ``max without (x) (expr)``;
    ``param``: the parameter of ``topk``/``bottomk``/``quantile`` (``topk by (p) (5, expr)``)."""
    labels, dropped = tuple(by), tuple(without)
    if labels and dropped:
        raise ValueError("an aggregation groups either by or without labels, not both")
    grouping = f" by ({', '.join(labels)})" if labels else ""
    if dropped:
        grouping = f" without ({', '.join(dropped)})"
    first = f"{number(param).text}, " if param is not None else ""
    return Expr(f"{op}{grouping} ({first}{expr.text})")


def _wrap(expr: Expr, need: int) -> str:
    return f"({expr.text})" if expr.precedence < need else expr.text


def binop(
    lhs: Expr,
    op: str,
    rhs: Expr,
    *,
    on: Iterable[str] | None = None,
    group_left: Iterable[str] | None = None,
    newline: bool = False,
) -> Expr:
    """Return ``lhs op rhs`` with ``on(...)``/``group_left(...)`` and minimal parentheses.

    ``newline`` puts the operator on its own line, for long set operations
    that SREs read in the generated files.
    """
    precedence = _PRECEDENCE[op]
    modifier = ""
    if on is not None:
        modifier += f" on ({', '.join(on)})"
    if group_left is not None:
        if op in _SET_OPS:
            raise ValueError(f"group_left is not allowed with {op!r}")
        modifier += f" group_left ({', '.join(group_left)})"
    # left-associative (all but ^): a left operand of equal precedence needs no parentheses
    left = _wrap(lhs, precedence if op != "^" else precedence + 1)
    right = _wrap(rhs, precedence + 1 if op != "^" else precedence)
    sep = "\n" if newline else " "
    return Expr(f"{left}{sep}{op}{modifier}{sep if newline else ' '}{right}", precedence)


def parenthesized(expr: Expr) -> Expr:
    """Return ``(expr)`` as an atom, where parentheses help the reader though PromQL needs none."""
    return Expr(f"({expr.text})")


def parse(text: str) -> promql_parser.Expr:
    """Parse PromQL; ``ValueError`` quotes the expression that does not parse."""
    try:
        return promql_parser.parse(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid PromQL {text!r}: {exc}") from None


def check(expr: Expr) -> Expr:
    """Return ``expr`` after proving it parses; generation stops on a bad query."""
    parse(expr.text)
    return expr


def selectors_in(tree: promql_parser.Expr) -> Iterator[promql_parser.VectorSelector]:
    """Yield every vector selector of a parsed expression (inside ranges too)."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(tree, visit)
    return iter(found)
