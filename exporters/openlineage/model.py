"""Decode and validate one OpenLineage event (RunEvent, DatasetEvent, JobEvent) in one pass.

msgspec reads the raw bytes straight into the Structs below, which hold
only what the exporter uses: the core of the spec (``eventType``,
``eventTime``, ``run.runId`` as a UUID, ``job.namespace``/``name``,
``producer``, ``schemaURL``) and the facets it maps (``parent``,
``errorMessage``, ``outputStatistics``, ``dataQualityAssertions``,
``schema``). Every other field and facet is skipped unread, as the spec
requires of consumers (unknown facets are accepted). A known field of the
wrong type, a missing core field or a size over the bounds below is an
``InvalidEventError`` naming the JSON path (``$.run.runId``).

Bounds (hostile events): names up to 1024 characters, 1000 inputs and 1000
outputs, 2000 schema fields per dataset nested at most 8 deep, 1000
assertions per dataset, JSON nesting within msgspec's recursion guard; the
body itself is bounded by the endpoint (``ExporterConfig.max_body_bytes``).

Example::

    event = decode_event(body)       # InvalidEventError with the path on any problem
    event.kind, event.run_id, event.job
"""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta, Struct

from exporters.errors import FieldProblem, InvalidEventError

__all__ = [
    "EVENT_TYPES",
    "MAX_DATASETS_PER_EVENT",
    "Assertion",
    "Dataset",
    "JobRef",
    "LineageEvent",
    "SchemaField",
    "decode_event",
]

EVENT_TYPES: Final = ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")
MAX_DATASETS_PER_EVENT: Final = 1000
MAX_SCHEMA_DEPTH: Final = 8

Name = Annotated[str, Meta(min_length=1, max_length=1024)]
Text = Annotated[str, Meta(max_length=1024)]
Url = Annotated[str, Meta(min_length=1, max_length=2048)]
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
EventType = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]


class SchemaField(Struct, gc=False):
    """A column of the ``schema`` dataset facet; ``fields`` for nested types (structs)."""

    name: Text
    type: Text | None = None
    fields: Annotated[list[SchemaField], Meta(max_length=2000)] = []


class SchemaFacet(Struct, gc=False):
    fields: Annotated[list[SchemaField], Meta(max_length=2000)] = []


class Assertion(Struct, gc=False):
    """One ``dataQualityAssertions`` entry; dbt puts its failing-row count in ``actual``."""

    assertion: Text
    success: bool
    column: Text | None = None
    actual: Annotated[str, Meta(max_length=64)] | int | float | None = None


class AssertionsFacet(Struct, gc=False):
    assertions: Annotated[list[Assertion], Meta(max_length=1000)] = []


class OutputStatistics(Struct, gc=False):
    rowCount: Count | None = None


class DatasetFacets(Struct, gc=False):
    schema: SchemaFacet | None = None
    dataQualityAssertions: AssertionsFacet | None = None


class InputFacets(Struct, gc=False):
    dataQualityAssertions: AssertionsFacet | None = None


class OutputFacets(Struct, gc=False):
    outputStatistics: OutputStatistics | None = None


class Dataset(Struct, gc=False):
    """An input or output dataset, or a DatasetEvent's dataset."""

    namespace: Name
    name: Name
    facets: DatasetFacets | None = None
    inputFacets: InputFacets | None = None
    outputFacets: OutputFacets | None = None


class JobRef(Struct, gc=False, frozen=True):
    namespace: Name
    name: Name


class RunRef(Struct, gc=False):
    runId: uuid.UUID


class ParentRoot(Struct, gc=False):
    run: RunRef
    job: JobRef


class ParentFacet(Struct, gc=False):
    """The ``parent`` run facet; ``root`` (spec 1.1 of the facet) names the chain's top."""

    run: RunRef
    job: JobRef
    root: ParentRoot | None = None


class ErrorMessageFacet(Struct, gc=False):
    message: Annotated[str, Meta(max_length=65536)]
    programmingLanguage: Text | None = None
    stackTrace: Annotated[str, Meta(max_length=262144)] | None = None


class RunFacets(Struct, gc=False):
    parent: ParentFacet | None = None
    errorMessage: ErrorMessageFacet | None = None


class Run(Struct, gc=False):
    runId: uuid.UUID
    facets: RunFacets | None = None


class Job(Struct, gc=False):
    namespace: Name
    name: Name


Datasets = Annotated[list[Dataset], Meta(max_length=MAX_DATASETS_PER_EVENT)]


class _Wire(Struct, gc=False):
    """Every top-level field of the three event kinds; which are present says the kind."""

    eventTime: datetime.datetime
    producer: Url
    schemaURL: Url
    eventType: EventType | None = None
    run: Run | None = None
    job: Job | None = None
    dataset: Dataset | None = None
    inputs: Datasets | None = None
    outputs: Datasets | None = None


class LineageEvent(Struct, gc=False):
    """A validated event: ``kind`` is ``run``, ``dataset`` or ``job``."""

    kind: Literal["run", "dataset", "job"]
    event_type: str  # START ... OTHER for run events; DATASET / JOB otherwise
    at: float  # eventTime, unix seconds
    run_id: uuid.UUID | None
    job: JobRef | None
    parent: ParentFacet | None
    error: ErrorMessageFacet | None
    inputs: list[Dataset]
    outputs: list[Dataset]


_DECODER: Final = msgspec.json.Decoder(_Wire)
_AT: Final = re.compile(r" - at `(\$[^`]*)`$")
# eventTime must be a real moment: 1970 .. 2200 (unix seconds)
_MAX_TIME: Final = 7258118400.0


def _invalid(path: str, message: str, kind: str = "schema") -> InvalidEventError:
    return InvalidEventError([FieldProblem(path, message)], kind=kind)


def _unix(at: datetime.datetime) -> float:
    if at.tzinfo is None:  # the spec asks for an offset; read a naive time as UTC
        at = at.replace(tzinfo=datetime.UTC)
    return at.timestamp()


def _check_depth(fields: list[SchemaField], path: str, depth: int = 1) -> None:
    for i, f in enumerate(fields):
        if f.fields:
            if depth >= MAX_SCHEMA_DEPTH:
                raise _invalid(
                    f"{path}[{i}].fields", f"schema fields nest deeper than {MAX_SCHEMA_DEPTH}"
                )
            _check_depth(f.fields, f"{path}[{i}].fields", depth + 1)


def _check_schemas(datasets: list[Dataset], base: str) -> None:
    for i, d in enumerate(datasets):
        if d.facets is not None and d.facets.schema is not None:
            _check_depth(d.facets.schema.fields, f"{base}[{i}].facets.schema.fields")


def decode_event(body: bytes) -> LineageEvent:
    """Decode one event; ``InvalidEventError`` names the path of the first problem."""
    try:
        wire = _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        found = _AT.search(text)
        path = found.group(1) if found else "$"
        message = text[: found.start()] if found else text
        raise _invalid(path, message) from None
    except msgspec.DecodeError as exc:
        raise _invalid("$", f"invalid JSON: {exc}", "invalid_json") from None
    except RecursionError:
        raise _invalid("$", "invalid JSON: nested too deeply", "invalid_json") from None
    at = _unix(wire.eventTime)
    if not 0 <= at <= _MAX_TIME:
        raise _invalid("$.eventTime", f"{wire.eventTime.isoformat()} is out of range")
    inputs = wire.inputs or []
    outputs = wire.outputs or []
    _check_schemas(inputs, "$.inputs")
    _check_schemas(outputs, "$.outputs")
    if wire.run is not None:
        if wire.job is None:
            raise _invalid("$.job", "is required in a RunEvent (an event with run)")
        facets = wire.run.facets
        return LineageEvent(
            kind="run",
            event_type=wire.eventType or "OTHER",
            at=at,
            run_id=wire.run.runId,
            job=JobRef(wire.job.namespace, wire.job.name),
            parent=facets.parent if facets is not None else None,
            error=facets.errorMessage if facets is not None else None,
            inputs=inputs,
            outputs=outputs,
        )
    if wire.eventType is not None:
        raise _invalid("$.run", "is required with eventType (a RunEvent)")
    if wire.dataset is not None:
        if wire.job is not None:
            raise _invalid("$.job", "a DatasetEvent has no job (a RunEvent needs run)")
        ds = wire.dataset
        _check_schemas([ds], "$.dataset")
        return LineageEvent("dataset", "DATASET", at, None, None, None, None, [], [ds])
    if wire.job is not None:
        job = JobRef(wire.job.namespace, wire.job.name)
        return LineageEvent("job", "JOB", at, None, job, None, None, inputs, outputs)
    raise _invalid("$", "neither a RunEvent (run, job), a JobEvent (job) nor a DatasetEvent")


def schema_of(dataset: Dataset) -> list[SchemaField] | None:
    """Return the dataset's ``schema`` facet fields, or None when it carries none."""
    facets = dataset.facets
    if facets is None or facets.schema is None or not facets.schema.fields:
        return None
    return facets.schema.fields


def assertions_of(dataset: Dataset) -> list[Assertion]:
    """Return the dataset's assertions (input facet, or the dataset facet dbt also fills)."""
    if dataset.inputFacets is not None and dataset.inputFacets.dataQualityAssertions is not None:
        return dataset.inputFacets.dataQualityAssertions.assertions
    if dataset.facets is not None and dataset.facets.dataQualityAssertions is not None:
        return dataset.facets.dataQualityAssertions.assertions
    return []


def row_count(dataset: Dataset) -> int | None:
    """Return ``outputStatistics.rowCount`` of an output dataset, if given."""
    facets = dataset.outputFacets
    if facets is None or facets.outputStatistics is None:
        return None
    return facets.outputStatistics.rowCount
