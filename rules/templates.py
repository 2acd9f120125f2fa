"""Annotation templates as structure: one definition, two renderings.

An annotation is a sequence of text, ``$labels.<name>`` and ``$value``
(through one of Prometheus' humanize functions). :meth:`Template.go` gives
the Go template Prometheus evaluates; :meth:`Template.render` gives the text
Prometheus will produce for given labels and value, which is how the
generated promtool unit tests know the exact annotations to expect.

Example::

    t = Template(("error ratio of ", Label("pipeline"), " is ", Value("humanizePercentage")))
    t.go()                                      # 'error ratio of {{ $labels.pipeline }} is ...'
    t.render({"pipeline": "etl"}, 0.1)          # 'error ratio of etl is 10%'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Label", "Template", "Value", "humanize", "humanize_duration", "humanize_percentage"]


@dataclass(frozen=True)
class Label:
    """The value of one of the alert's labels."""

    name: str


@dataclass(frozen=True)
class Value:
    """The alert's value through a humanize function (``humanize``, ``humanizeDuration``...)."""

    function: str = "humanize"


Part = str | Label | Value


def _go_g(value: float) -> str:
    """Format like Go's ``%.4g`` (same digits, Go's exponent style)."""
    return f"{value:.4g}"


def humanize(value: float) -> str:
    """Format a number the way Prometheus' ``humanize`` does (SI prefixes, 4 digits)."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _go_g(value)
    prefix = ""
    if abs(value) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix, value = p, value / 1000
        return _go_g(value) + prefix
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return _go_g(value) + prefix


def humanize_percentage(value: float) -> str:
    """Format a ratio the way Prometheus' ``humanizePercentage`` does."""
    return _go_g(value * 100) + "%"


def humanize_duration(value: float) -> str:
    """Format seconds the way Prometheus' ``humanizeDuration`` does (``2h 0m 0s``)."""
    if math.isnan(value) or math.isinf(value):
        return _go_g(value)
    if value == 0:
        return _go_g(value) + "s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        total = int(abs(value))
        seconds, minutes = total % 60, (total // 60) % 60
        hours, days = (total // 3600) % 24, total // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_go_g(abs(value))}s"
    prefix = ""
    for p in ("m", "u", "n"):
        if value >= 1:
            break
        prefix, value = p, value * 1000
    return f"{_go_g(value)}{prefix}s"


_FUNCTIONS = {
    "humanize": humanize,
    "humanizePercentage": humanize_percentage,
    "humanizeDuration": humanize_duration,
}


@dataclass(frozen=True)
class Template:
    """An annotation: text with the alert's labels and value spliced in."""

    parts: tuple[Part, ...]

    def __post_init__(self) -> None:
        for part in self.parts:
            if isinstance(part, Value) and part.function not in _FUNCTIONS:
                raise ValueError(f"unknown humanize function {part.function!r}")

    def go(self) -> str:
        """Return the Go template text Prometheus evaluates."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, Label):
                out.append(f"{{{{ $labels.{part.name} }}}}")
            elif isinstance(part, Value):
                out.append(f"{{{{ $value | {part.function} }}}}")
            else:
                out.append(part.replace("{{", "{{`{{`}}"))
        return "".join(out)

    def render(self, labels: Mapping[str, str], value: float) -> str:
        """Return what Prometheus will render for these labels and value."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, Label):
                out.append(labels.get(part.name, ""))
            elif isinstance(part, Value):
                out.append(_FUNCTIONS[part.function](value))
            else:
                out.append(part)
        return "".join(out)
