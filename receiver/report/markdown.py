"""Put untrusted text into Markdown without it becoming markup.

Alert labels, annotations and action output end up in the post-mortem. A
label such as ``<script>`` or ``[x](javascript:...)`` must render as the
characters it is wherever the draft is pasted (a wiki, an issue tracker), and
a ``|`` or newline must not break a table. Two forms: ``text`` for prose
(backslash escapes, which CommonMark turns back into the characters) and
``code`` for identifiers and queries (a code span, never interpreted).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from receiver.report.facts import clean_text

__all__ = ["cell", "code", "table", "text"]

# CommonMark backslash-escapable punctuation that can start markup.
_SPECIAL = re.compile(r"([\\`*\[\]<>|&~])")
# Underscore emphasis needs a word boundary; intraword ones (etl_orders) stay.
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def text(value: object) -> str:
    """Return ``value`` as one line of Markdown prose that renders literally."""
    escaped = _SPECIAL.sub(r"\\\1", clean_text(value))
    return _UNDERSCORE.sub(r"\\_", escaped)


def code(value: object) -> str:
    """Return ``value`` as an inline code span (a fence longer than any backtick run)."""
    body = clean_text(value)
    if not body:
        return "` `"
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") or body.startswith(" ") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def cell(markdown: str) -> str:
    """Make already-escaped Markdown safe inside a table cell (pipes even in code spans)."""
    return re.sub(r"(?<!\\)\|", r"\\|", markdown) or " "


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Return a GFM table; cells are Markdown already escaped by ``text``/``code``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
