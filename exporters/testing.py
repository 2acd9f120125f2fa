"""Read sample values back out of an exposition, for tests of code that uses the exporter.

Example::

    body = Exposition(registry).render().decode()
    assert sample_value(body, "pipeline_runs_total", pipeline="etl_orders", status="success") == 1
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["sample_value", "samples"]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse Prometheus text into {(sample name, labels): value}."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return out


def sample_value(text: str, name: str, **labels: str) -> float | None:
    """Return the value of the sample with exactly these labels, or None when absent."""
    return samples(text).get((name, frozenset(labels.items())))
