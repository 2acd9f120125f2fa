"""Turn OpenLineage jobs and datasets into pipeline and dataset label values.

A job belongs to the pipeline of the root of its ``parent`` chain (the
Airflow DAG of a task, the ``dbt-run-<project>`` job of a dbt model, the
Spark application of a query). The spec's ``openlineage.pipelines`` list
maps a root job (namespace and name globs) to a pipeline name; otherwise
the root job's name is normalised into a pipeline name:

- every character outside ``[A-Za-z0-9_.:-]`` becomes ``_``;
- a name that does not start with a letter, digit or ``_`` gets a ``_`` prefix;
- a name longer than 128 characters keeps its first 119 and ends with
  ``_`` plus 8 hex digits of its SHA-256, so two long names stay apart.

Dataset labels are ``namespace/name`` normalised the same way (``/`` kept,
256 characters at most), so no event can put quotes, newlines, braces or
PromQL syntax into a label value.

Example::

    pipeline_name("dbt-run-jaffle shop")     # 'dbt-run-jaffle_shop'
    dataset_label("postgres://db:5432", "shop.public.orders")
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from rules.upstream import OpenLineageSpec

__all__ = ["DatasetLabels", "PipelineMapper", "dataset_label", "pipeline_name"]

_NOT_PIPELINE: Final = re.compile(r"[^A-Za-z0-9_.:-]")
_NOT_DATASET: Final = re.compile(r"[^A-Za-z0-9_.:/@=+-]")
_MAX_PIPELINE: Final = 128
_MAX_DATASET: Final = 256
_CACHE_SIZE: Final = 16384


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{text[: limit - 9]}_{digest}"


def pipeline_name(job_name: str) -> str:
    """Normalise a job name into a valid pipeline name (documented in the module)."""
    name = _NOT_PIPELINE.sub("_", job_name)
    if not name or not (name[0].isascii() and (name[0].isalnum() or name[0] == "_")):
        name = f"_{name}"
    return _bounded(name, _MAX_PIPELINE)


def dataset_label(namespace: str, name: str) -> str:
    """Return the ``dataset`` label value of an OpenLineage dataset."""
    return _bounded(_NOT_DATASET.sub("_", f"{namespace}/{name}"), _MAX_DATASET)


class DatasetLabels:
    """``dataset_label`` memoised (bounded): the same few datasets recur in most events."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, str], str] = {}

    def __call__(self, namespace: str, name: str) -> str:
        key = (namespace, name)
        found = self._memo.get(key)
        if found is None:
            found = dataset_label(namespace, name)
            if len(self._memo) >= _CACHE_SIZE:
                self._memo.clear()
            self._memo[key] = found
        return found


class PipelineMapper:
    """Map a root job to its pipeline name: the spec's list first, else the normalised name.

    Results are memoised (bounded: the memo is emptied when it fills), since
    the same few jobs send most events and a glob list is walked per miss.
    """

    def __init__(self, spec: OpenLineageSpec) -> None:
        self.spec = spec
        self._memo: dict[tuple[str, str], str] = {}

    def __call__(self, namespace: str, job: str) -> str:
        key = (namespace, job)
        found = self._memo.get(key)
        if found is None:
            found = self.spec.pipeline_for(namespace, job) or pipeline_name(job)
            if len(self._memo) >= _CACHE_SIZE:
                self._memo.clear()
            self._memo[key] = found
        return found
