"""Share pipeline metrics between worker processes through a directory of snapshots.

prometheus_client's multiprocess mode keeps one file per process and sums
them at scrape time; this is the same idea for pipeline states. Each worker
process writes its registry to ``<dir>/pipemedic-<pid>-<token>.json``
(atomically, by rename) after changes; the exporter reads every file and
merges them (counters add up, timestamps take the latest, see
``PipelineState.merge``). Files of finished workers stay, so their counts
are not lost; clear the directory when the whole pipeline restarts.

Example::

    # in each worker process
    registry = worker_registry("/run/pipemedic", spec)
    with registry.pipeline("etl_orders").run() as run: ...

    # in the process that serves /metrics
    app = create_app(config=ExporterConfig(multiprocess_dir="/run/pipemedic"))
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from exporters.registry import PipelineRegistry
from exporters.state import PipelineState

__all__ = ["DirectoryReader", "SnapshotWriter", "worker_registry"]

_log = logging.getLogger(__name__)
_PREFIX = "pipemedic-"


class SnapshotWriter:
    """Write this process's registry to its own file; a registry listener."""

    def __init__(self, directory: str | Path, min_interval: float = 0.25) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.min_interval = min_interval
        self._pid = -1
        self._path = self.directory
        self._last = 0.0
        self._own_file()

    def _own_file(self) -> None:
        self._pid = os.getpid()
        self._path = self.directory / f"{_PREFIX}{self._pid}-{secrets.token_hex(4)}.json"

    def __call__(self, registry: PipelineRegistry, final: bool) -> None:
        if self._pid != os.getpid():  # forked child: never overwrite the parent's file
            self._own_file()
        now = time.monotonic()
        if not final and now - self._last < self.min_interval:
            return
        self._last = now
        doc = {"pid": self._pid, "pipelines": registry.snapshot()}
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self._path)


def worker_registry(directory: str | Path, *args: Any, **kwargs: Any) -> PipelineRegistry:
    """Return a registry (same arguments as ``PipelineRegistry``) shared through ``directory``."""
    registry = PipelineRegistry(*args, **kwargs)
    registry.reset_on_fork = True
    registry.add_listener(SnapshotWriter(directory))
    return registry


class DirectoryReader:
    """Merge every worker's snapshot; re-read only when a file changed."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._seen: tuple[tuple[str, int, int], ...] = ()
        self._merged: list[PipelineState] = []

    def __call__(self) -> list[PipelineState]:
        files = []
        for path in sorted(self.directory.glob(f"{_PREFIX}*.json")):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            files.append((path.name, st.st_mtime_ns, st.st_size))
        key = tuple(files)
        if key == self._seen:
            return self._merged
        merged: dict[str, PipelineState] = {}
        for name, _mtime, _size in files:
            try:
                doc = json.loads((self.directory / name).read_text())
                states = [PipelineState.from_dict(d) for d in doc["pipelines"]]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                _log.warning("skipping multiprocess file %s: %s", name, exc)
                continue
            for state in states:
                mine = merged.get(state.name)
                if mine is None:
                    merged[state.name] = state
                else:
                    mine.merge(state)
        self._seen = key
        self._merged = list(merged.values())
        return self._merged
