"""Fuzz POST /api/v1/lineage's decoder and mapping: a 400 naming a path, or applied; nothing else.

Whatever the body, ``decode_event`` returns an event or raises
``InvalidEventError`` with a ``$`` path; an event always records (or hits the
pipeline bound) and the exposition still parses. Bounded in `make test`
(``HYPOTHESIS_PROFILE=default``), longer with ``HYPOTHESIS_PROFILE=bench``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_paths import json_paths
from prometheus_client.parser import text_string_to_metric_families

from exporters.errors import CardinalityError, InvalidEventError
from exporters.openlineage import LineageRecorder, decode_event
from exporters.registry import PipelineRegistry
from rules.spec import parse_spec

settings.register_profile(
    "default", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "bench", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

VALID: dict[str, Any] = {
    "eventType": "COMPLETE",
    "eventTime": "2026-01-01T12:00:00Z",
    "producer": "https://example.test",
    "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    "run": {
        "runId": "01890a5d-ac96-774b-bcce-b302099a8057",
        "facets": {
            "parent": {
                "run": {"runId": "01890a5d-ac96-774b-bcce-b302099a8058"},
                "job": {"namespace": "ns", "name": "dag"},
            },
            "errorMessage": {"message": "TimeoutError: x", "programmingLanguage": "PYTHON"},
        },
    },
    "job": {"namespace": "ns", "name": "dag.task"},
    "inputs": [
        {
            "namespace": "pg",
            "name": "t_in",
            "inputFacets": {
                "dataQualityAssertions": {
                    "assertions": [{"assertion": "unique", "success": False, "actual": "3"}]
                }
            },
        }
    ],
    "outputs": [
        {
            "namespace": "s3",
            "name": "t_out",
            "facets": {"schema": {"fields": [{"name": "id", "type": "int", "fields": []}]}},
            "outputFacets": {"outputStatistics": {"rowCount": 5}},
        }
    ],
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["START", "FAIL", "2026-01-01T00:00:00Z", str(uuid.UUID(int=7)), "", "$"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """The valid event with one field replaced, removed or given a sibling."""
    doc = copy.deepcopy(VALID)
    paths = json_paths(doc)
    path = draw(st.sampled_from(paths))
    parent: Any = doc
    for part in path[:-1]:
        parent = parent[part]
    action = draw(st.sampled_from(["replace", "delete", "sibling"]))
    if action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif action == "sibling" and isinstance(parent, dict):
        parent[draw(st.text(max_size=12))] = draw(values)
    else:
        parent[path[-1]] = draw(values)
    return doc


def check(body: bytes) -> None:
    registry = PipelineRegistry(parse_spec("{}", "f.yml"), max_pipelines=5, clock=lambda: 1.8e9)
    recorder = LineageRecorder(registry, max_datasets=3, max_open_runs=3)
    try:
        event = decode_event(body)
    except InvalidEventError as exc:
        assert exc.problems and exc.problems[0].path.startswith("$"), exc
        assert exc.kind in ("schema", "invalid_json")
        return
    for _ in range(2):  # twice: a retry must be harmless too
        with contextlib.suppress(CardinalityError):
            recorder.record(event)
    families = list(text_string_to_metric_families(recorder.render()))
    assert families


@given(mutated())
def test_mutated_events_are_refused_with_a_path_or_applied(doc: Any) -> None:
    check(json.dumps(doc).encode())


@given(values)
def test_any_json_is_refused_with_a_path_or_applied(doc: Any) -> None:
    check(json.dumps(doc).encode())


@given(st.binary(max_size=300))
def test_any_bytes_are_refused_with_a_path(body: bytes) -> None:
    check(body)


def test_the_valid_base_event_applies() -> None:
    registry = PipelineRegistry(parse_spec("{}", "f.yml"), clock=lambda: 1.8e9)
    recorder = LineageRecorder(registry, max_datasets=3, max_open_runs=3)
    recorder.record(decode_event(json.dumps(VALID).encode()))
    assert "dag" in registry
