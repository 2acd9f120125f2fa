"""Errors of the rules package.

::

    RulesError                 anything the rules package refuses
    ├── YamlError              a YAML file too large, too deep, alias-bombed or with duplicate keys
    ├── SpecError              rules/pipelines.yml is invalid (carries every problem)
    ├── UnsetVariable          a ${VAR} of a notify URL is not set (names it, never a value)
    └── RuleFileError          a generated or custom rule file is invalid

Each problem names the file, the line and the field path, e.g.
``rules/pipelines.yml:14: pipelines.etl_orders.sla: '30 minutes' is not a Prometheus duration``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem", "RuleFileError", "RulesError", "SpecError", "UnsetVariable", "YamlError"]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong, with where it is."""

    file: str
    line: int
    path: str
    message: str
    # the lint check that found it (``unknown-metric``...), which a rule may disable
    check: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{text} [{self.check}]" if self.check else text


class RulesError(Exception):
    """Base of every error the rules package raises."""


class _ProblemsError(RulesError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class YamlError(_ProblemsError):
    """A YAML document was refused before it was built (rules.yamlpos.load_yaml)."""


class SpecError(_ProblemsError):
    """The pipeline spec is invalid; ``problems`` lists every error found."""


class RuleFileError(_ProblemsError):
    """A Prometheus rule file is invalid; ``problems`` lists every error found."""


class UnsetVariable(RulesError, ValueError):
    """A ``${VAR}`` of a destination URL is not set (names the variable, never a value)."""
