"""Ask Prometheus once for a question many diagnoses ask at the same moment.

In an alert storm the worker diagnoses a batch of pipelines at once
(``receiver.worker.pool``), and their handlers ask the same questions in
step: the liveness of each pipeline, then its dependency probes, and so on.
:class:`BatchedQueries` collects the per-pipeline questions
(``queries.PipelineExpr``) asked during one turn of the event loop and sends
each distinct question once, for all the pipelines that asked it
(``pipeline=~"a|b|c"``, grouped ``by (pipeline)``); each asker gets its own
pipeline's rows without the ``pipeline`` label, exactly the rows its own
query would have returned. A question asked by one pipeline alone, and any
other query, goes out unchanged: one event at a time behaves as before.

If the shared query fails (Prometheus down, a timeout), every asker gets
that error, and its diagnosis says ``unknown`` with the error, as it would
had it asked alone.

Example::

    prom = BatchedQueries(PrometheusAPI(url, session))
    await asyncio.gather(*(diagnose(a, spec.pipeline(a.pipeline), prom) for a in alerts))
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any

from receiver.diagnosis.prometheus import PrometheusQuery
from receiver.diagnosis.queries import PipelineExpr
from rules.promql import Expr

__all__ = ["BatchedQueries"]

_Waiting = dict[str, list["asyncio.Future[list[dict[str, Any]]]"]]


class BatchedQueries:
    """A ``PrometheusQuery`` that merges equal per-pipeline questions asked together.

    ``max_pipelines`` bounds one query's alternation (a larger group is split).
    ``sent`` counts the HTTP queries made, for the benchmark and tests.
    """

    def __init__(self, prom: PrometheusQuery, *, max_pipelines: int = 200) -> None:
        self.prom = prom
        self.max_pipelines = max(max_pipelines, 1)
        self.sent = 0
        # question -> (an expression asking it, pipeline -> its askers), until the flush
        self._asked: dict[Hashable, tuple[PipelineExpr, _Waiting]] = {}
        self._flush_due = False
        self._sending: set[asyncio.Task[None]] = set()

    async def query(self, promql: str | Expr) -> list[dict[str, Any]]:
        """Run an instant query; a per-pipeline question waits for this loop turn's others."""
        if not isinstance(promql, PipelineExpr) or not promql.pipeline or promql.many is None:
            self.sent += 1
            return await self.prom.query(promql)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[dict[str, Any]]] = loop.create_future()
        _, waiting = self._asked.setdefault(promql.question, (promql, {}))
        waiting.setdefault(promql.pipeline, []).append(answer)
        if not self._flush_due:
            # after the tasks woken in this turn have asked theirs
            self._flush_due = True
            loop.call_soon(self._flush)
        return await answer

    def _flush(self) -> None:
        self._flush_due = False
        asked, self._asked = self._asked, {}
        for expr, waiting in asked.values():
            names = list(waiting)
            for start in range(0, len(names), self.max_pipelines):
                chunk = {n: waiting[n] for n in names[start : start + self.max_pipelines]}
                task = asyncio.ensure_future(self._send(expr, chunk))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _send(self, expr: PipelineExpr, waiting: _Waiting) -> None:
        self.sent += 1
        try:
            if list(waiting) == [expr.pipeline]:  # asked alone: its own query, unchanged
                by_pipeline = {expr.pipeline: await self.prom.query(expr)}
            else:
                by_pipeline = _split(await self.prom.query(expr.for_pipelines(list(waiting))))
        except asyncio.CancelledError:  # shutting down: the askers are cancelled too
            for answer in _askers(waiting):
                answer.cancel()
            raise
        except Exception as exc:  # every asker gets the error: diagnosed unknown, with it
            for answer in _askers(waiting):
                answer.set_exception(exc)
            return
        for name, futures in waiting.items():
            rows = by_pipeline.get(name, [])
            for i, answer in enumerate(futures):
                if not answer.done():  # an asker cancelled meanwhile
                    answer.set_result(rows if i == 0 else [_copy(r) for r in rows])


def _askers(waiting: _Waiting) -> list[asyncio.Future[list[dict[str, Any]]]]:
    return [answer for futures in waiting.values() for answer in futures if not answer.done()]


def _split(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Hand each pipeline its rows, without the ``pipeline`` label the grouping added."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        metric = dict(row.get("metric") or {})
        name = metric.pop("pipeline", None)
        if isinstance(name, str):
            out.setdefault(name, []).append({**row, "metric": metric})
    return out


def _copy(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "metric": dict(row.get("metric") or {})}
