"""Push a batch job's pipeline metrics to a Pushgateway.

A short batch job may end before Prometheus scrapes it, so it pushes its
metrics instead, grouped by ``job`` and ``pipeline`` (no ``instance``
label: the next run of the job replaces the last one's group, wherever it
ran). ``pipeline_up`` is never pushed: a pushed value never goes stale, so it
would claim the job alive long after it ended; batch jobs are watched
through ``pipeline_last_success_timestamp_seconds`` instead.

Example::

    with pushed_run("http://127.0.0.1:9091", "nightly_export") as run:
        run.processed(export())
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from exporters.api import Run
from exporters.errors import PushError
from exporters.registry import PipelineRegistry
from exporters.render import FAMILIES, render_state
from exporters.vocabulary import check_pipeline_name
from rules.spec import Spec

__all__ = ["DEFAULT_JOB", "PushError", "push_pipeline", "pushed_run", "render_push_body"]

DEFAULT_JOB = "pipemedic-batch"


def render_push_body(registry: PipelineRegistry, pipeline: str) -> bytes:
    """Render one pipeline's metrics (all but ``pipeline_up``) as Prometheus text."""
    state = registry.get(pipeline)
    if state is None:
        raise PushError(f"pipeline {pipeline!r} has recorded nothing to push")
    with registry.lock:
        fragments = render_state(state)
    out = []
    for (name, kind, text), fragment in zip(FAMILIES[1:], fragments, strict=True):
        if fragment:
            out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n{fragment}")
    return "".join(out).encode()


def push_pipeline(
    gateway_url: str,
    registry: PipelineRegistry,
    pipeline: str,
    *,
    job: str = DEFAULT_JOB,
    method: str = "PUT",
    timeout: float = 10.0,
) -> None:
    """Push ``pipeline``'s metrics to ``gateway_url`` under /metrics/job/<job>/pipeline/<name>.

    ``PUT`` replaces the group (the default, like prometheus_client's
    ``push_to_gateway``); ``POST`` replaces only the metrics pushed.
    """
    check_pipeline_name(pipeline)
    check_pipeline_name(job, "job")
    if method not in ("PUT", "POST"):
        raise ValueError(f"method must be PUT or POST, not {method!r}")
    url = (
        f"{gateway_url.rstrip('/')}/metrics/job/{quote(job, safe='')}"
        f"/pipeline/{quote(pipeline, safe='')}"
    )
    request = urllib.request.Request(
        url,
        data=render_push_body(registry, pipeline),
        method=method,
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        raise PushError(f"push to {url} failed with HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise PushError(f"push to {url} failed: {exc}") from None


@contextmanager
def pushed_run(
    gateway_url: str,
    pipeline: str,
    *,
    job: str = DEFAULT_JOB,
    spec: Spec | None = None,
    registry: PipelineRegistry | None = None,
) -> Iterator[Run]:
    """Record one run of a batch job and push it when the block ends, failed or not.

    Yields the ``Run`` of the Python API; an exception is recorded, pushed
    and re-raised.
    """
    registry = registry or PipelineRegistry(spec, max_pipelines=16)
    handle = registry.pipeline(pipeline)
    try:
        with handle.run() as run:
            yield run
    finally:
        push_pipeline(gateway_url, registry, pipeline, job=job)
