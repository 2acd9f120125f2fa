"""CPU per body of the two wire decoders, in-process: ``python -m bench.decode_cpu``.

Prints microseconds per call (best of 7) for the receiver's webhook decoder
(``parse_body``, 1 and 20 alerts), the SQLite row encoding of a 20-alert
notification (``event_rows``) and the exporter's ``parse_changes`` (one event, a
batch of 50 heartbeats, and a body only the schema admits, which takes the slow
path). Absolute figures move with the machine: compare two commits by running
this alternately in a checkout of each (``PYTHONPATH=<checkout>``), as
``bench/results/intake.md`` round 7 does. Repeating one body favours any memo
that outlives a request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from exporters.events import parse_changes
from receiver.intake.webhook import parse_body
from receiver.store.sqlite.ingest import event_rows

NOW = 1767268900.0


def _best(fn: Callable[[], object], calls: int) -> float:
    runs = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - started) / calls * 1e6)
    return min(runs)


def _notification(alerts: int) -> bytes:
    def alert(i: int) -> dict[str, Any]:
        return {
            "status": "firing",
            "labels": {"alertname": "PipelineDown", "pipeline": f"p{i}", "instance": f"h{i}:9108"},
            "annotations": {"summary": "pipeline down"},
            "startsAt": "2026-01-01T12:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": f"{i:016x}",
        }

    doc = {
        "version": "4",
        "groupKey": '{}:{pipeline="p"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "pipemedic",
        "groupLabels": {"pipeline": "p"},
        "commonLabels": {"alertname": "PipelineDown"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert(i) for i in range(alerts)],
    }
    return json.dumps(doc).encode()


def main() -> None:
    one, twenty = _notification(1), _notification(20)
    built = parse_body(twenty)
    event = json.dumps(
        {
            "pipeline": "etl_orders",
            "event": "run_finished",
            "status": "failure",
            "duration_seconds": 12.5,
            "records_processed": 1000,
            "records_failed": 3,
            "category": "connectivity",
            "reason": "timeout",
            "timestamp": NOW - 100,
        }
    ).encode()
    batch = json.dumps(
        [{"pipeline": f"p{i}", "event": "heartbeat", "memory_bytes": 1e9} for i in range(50)]
    ).encode()
    slow = b'{"pipeline":"x","event":"run_finished","status":"success","records_processed":5.0}'
    results = {
        "webhook 1 alert": _best(lambda: parse_body(one), 3000),
        "webhook 20 alerts": _best(lambda: parse_body(twenty), 500),
        "event_rows 20 alerts": _best(lambda: event_rows(built, 1.0), 500),
        "events 1": _best(lambda: parse_changes(event, NOW), 5000),
        "events batch 50": _best(lambda: parse_changes(batch, NOW), 300),
        "events slow path": _best(lambda: parse_changes(slow, NOW), 300),
    }
    for name, micros in results.items():
        print(f"{name:22} {micros:8.2f} us")


if __name__ == "__main__":
    main()
