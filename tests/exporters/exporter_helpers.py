"""Helpers of the exporter tests (importable by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

RUN_FINISHED: dict[str, Any] = {
    "pipeline": "etl_orders",
    "event": "run_finished",
    "status": "failure",
    "duration_seconds": 812.5,
    "records_processed": 10000,
    "records_failed": 730,
    "category": "connectivity",
    "reason": "timeout",
    "timestamp": 1795245097.8,
}
"""The README's example event: a failed run with records and an error reason."""

JSON_HEADERS = {"Content-Type": "application/json"}
"""What every POST to the exporter must say (415 otherwise)."""


class StartExporter(Protocol):
    """The ``exporter`` fixture: start `pipemedic exporter` and return its base URL."""

    def __call__(
        self, spec_yaml: str, port: int, *args: str, env: dict[str, str] | None = None
    ) -> str: ...


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "") -> object:
    """Poll ``predicate`` until it returns something truthy; fail after a generous deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.1)


def multiprocess_worker(directory: str, worker: int, runs: int) -> int:
    """Run in a worker process: record ``runs`` runs (every third one fails) and a heartbeat."""
    from exporters.multiprocess import worker_registry

    registry = worker_registry(directory)
    shared = registry.pipeline("shared_etl")
    for i in range(runs):
        try:
            with shared.run() as run:
                run.processed(10)
                if i % 3 == 2:
                    raise ConnectionResetError("peer went away")
        except ConnectionResetError:
            pass
    registry.pipeline(f"own_{worker}").heartbeat(memory_bytes=float(worker), sample=False)
    return runs
