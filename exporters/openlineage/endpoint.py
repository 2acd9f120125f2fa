"""Serve ``POST /api/v1/lineage`` and ``GET /lineage`` on the exporter.

``POST /api/v1/lineage`` takes what the OpenLineage HTTP transport posts by
default: one event as ``application/json``, gzip-encoded when the
transport's ``compression: gzip`` is set (aiohttp decodes it, and the body
limit applies to the decoded size), with ``Authorization: Bearer <api_key>``
when the exporter has a token. Answers: 200 ``{"accepted": 1}`` (or
``{"accepted": 0, "duplicate": true}`` for a retry), 400 naming the bad
path, 401, 413, 415, 422 over ``--max-pipelines``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Final

from aiohttp import web

from exporters.errors import CardinalityError, FieldProblem, InvalidEventError
from exporters.guard import PostGuard
from exporters.health import HealthMetrics
from exporters.openlineage.model import decode_event
from exporters.openlineage.recorder import LineageRecorder, Outcome

__all__ = ["LineageEndpoint"]

_INLINE_PARSE_BYTES: Final = 64 * 1024
_APPLIED: Final = json.dumps({"accepted": 1}).encode()
_DUPLICATE: Final = json.dumps({"accepted": 0, "duplicate": True}).encode()


def _error(status: int, problems: list[FieldProblem], kind: str) -> web.Response:
    first = problems[0]
    return web.json_response(
        {
            "error": f"{first.path}: {first.message}",
            "path": first.path,
            "reason": kind,
            "errors": [{"path": p.path, "message": p.message} for p in problems],
        },
        status=status,
    )


class LineageEndpoint:
    """The two lineage routes, bound once to the recorder, the guard and the health counters."""

    def __init__(
        self,
        recorder: LineageRecorder,
        guard: PostGuard,
        health: HealthMetrics,
        max_body_bytes: int,
    ) -> None:
        self.recorder, self.guard, self.health = recorder, guard, health
        self.max_body_bytes = max_body_bytes

    async def post(self, request: web.Request) -> web.Response:
        health = self.health
        refusal = self.guard.refuse(request)
        if refusal is not None:
            health.reject("unauthorized" if refusal.status == 401 else "content_type")
            return refusal
        limit = self.max_body_bytes
        too_large = [FieldProblem("$", f"body larger than the limit of {limit} bytes")]
        size = request.content_length
        if size is not None and size > limit:
            health.reject("too_large")
            return _error(413, too_large, "too_large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            health.reject("too_large")
            return _error(413, too_large, "too_large")
        try:
            if len(body) > _INLINE_PARSE_BYTES:
                loop = asyncio.get_running_loop()
                event = await loop.run_in_executor(None, decode_event, body)
            else:
                event = decode_event(body)
            outcome = self.recorder.record(event)
        except InvalidEventError as exc:
            health.reject(exc.kind)
            return _error(400, exc.problems, exc.kind)
        except CardinalityError as exc:
            health.reject("cardinality")
            return _error(422, [FieldProblem("$.job.name", str(exc))], "cardinality")
        body_out = _APPLIED if outcome is Outcome.APPLIED else _DUPLICATE
        return web.Response(body=body_out, content_type="application/json")

    async def get(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        graph = await loop.run_in_executor(None, self.recorder.to_json)
        return web.json_response(graph)
