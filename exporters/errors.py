"""Errors of the exporters package.

::

    ExporterError              anything the exporter refuses or cannot deliver
    ├── InvalidEventError      an event (HTTP or Python API) breaks the event schema;
    │                          carries every problem with its field path ($[3].records_failed)
    ├── CardinalityError       a new pipeline (or error reason) would pass the configured bound
    └── PushError              the Pushgateway refused a push or could not be reached

``classify.PipelineFailure`` is not among them on purpose: a pipeline raises it
inside a run to fail that run with a category and reason, and the run
re-raises it to the pipeline's own code.

Messages name the offending value and where it is, so a pipeline author can
fix the sender without reading the exporter's code.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CardinalityError", "ExporterError", "FieldProblem", "InvalidEventError", "PushError"]


class ExporterError(Exception):
    """Anything the exporter refuses to record."""


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with an event: the JSON path of the field and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidEventError(ExporterError, ValueError):
    """An event breaks the schema; ``problems`` lists each bad field path.

    ``kind`` says what broke, as the rejection-reason label: ``schema``,
    ``invalid_json`` or ``encoding``.
    """

    def __init__(self, problems: list[FieldProblem], kind: str = "schema") -> None:
        self.problems = problems
        self.kind = kind
        super().__init__("; ".join(str(p) for p in problems[:5]))


class CardinalityError(ExporterError):
    """Recording this would create more series than the configured bound allows."""

    def __init__(self, message: str, path: str = "$") -> None:
        self.path = path
        super().__init__(message)


class PushError(ExporterError):
    """The Pushgateway refused the push or could not be reached."""
