"""The demo's server configurations, derived from the default deployment's own files.

``prometheus.yml`` and ``alertmanager.yml`` at the top of the repository are
the real configuration of the default deployment; the demo reads them and
changes only what a seconds-long demo on this run's ports needs: scrape and
evaluation every second, the generated rules of this run, the addresses of
this run's servers, Alertmanager's short ``group_wait``/``group_interval``.
Routes, grouping, inhibition and ``send_resolved`` stay as shipped. The
demo runs no Pushgateway, so its scrape job is left out (a target that is
never up would page about the exporter). The receiver's configuration is
written from scratch (the receiver's defaults plus demo timing).

Example::

    text = prometheus_config(REPO / "prometheus.yml", ports, [run / "rules" / "*.rules.yml"])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from yarl import URL

from pipemedic.stack import LOOPBACK, free_port

__all__ = [
    "DEFAULT_PORTS",
    "Ports",
    "alertmanager_config",
    "prometheus_config",
    "receiver_config",
    "receiver_store_url",
]

EXPORTER_JOB: Final = "pipemedic-exporter"
RECEIVER_JOB: Final = "pipemedic-receiver"
PROMETHEUS_JOB: Final = "prometheus"
PUSHGATEWAY_JOB: Final = "pipemedic-pushgateway"


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one demo run."""

    exporter: int = 9108
    receiver: int = 9099
    prometheus: int = 9090
    alertmanager: int = 9093

    @classmethod
    def free(cls) -> Ports:
        """Return free ports (tests, or a second demo next to a running deployment)."""
        return cls(free_port(), free_port(), free_port(), free_port())

    def address(self, name: str) -> str:
        return f"{LOOPBACK}:{getattr(self, name)}"


DEFAULT_PORTS: Final = Ports()


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a YAML mapping")
    return doc


def prometheus_config(source: Path, ports: Ports, rule_globs: Sequence[Path]) -> str:
    """Return ``source`` (prometheus.yml) with demo intervals, rules and ports."""
    doc = _load(source)
    doc["global"] = {
        **(doc.get("global") or {}),
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    doc["alerting"] = {
        "alertmanagers": [{"static_configs": [{"targets": [ports.address("alertmanager")]}]}]
    }
    doc["rule_files"] = [str(g) for g in rule_globs]
    targets = {
        EXPORTER_JOB: ports.address("exporter"),
        RECEIVER_JOB: ports.address("receiver"),
        PROMETHEUS_JOB: ports.address("prometheus"),
    }
    jobs = []
    for job in doc.get("scrape_configs") or []:
        name = job.get("job_name")
        if name == PUSHGATEWAY_JOB:
            continue
        if name in targets:
            job = {**job, "static_configs": [{"targets": [targets[name]]}]}
        jobs.append(job)
    doc["scrape_configs"] = jobs
    head = f"# Written by `pipemedic demo` from {source}: demo intervals, this run's ports.\n"
    return head + yaml.safe_dump(doc, sort_keys=False)


def _short_timers(route: dict[str, Any], top: bool) -> None:
    if top or "group_wait" in route:
        route["group_wait"] = "1s"
    if top or "group_interval" in route:
        route["group_interval"] = "2s"
    for child in route.get("routes") or []:
        _short_timers(child, top=False)


def alertmanager_config(source: Path, ports: Ports) -> str:
    """Return ``source`` (alertmanager.yml) with short group timers and this run's receiver."""
    doc = _load(source)
    _short_timers(doc.get("route") or {}, top=True)
    receiver = ports.address("receiver")
    for entry in doc.get("receivers") or []:
        for hook in entry.get("webhook_configs") or []:
            url = URL(str(hook.get("url", "")))
            if url.host in ("127.0.0.1", "localhost"):
                host, _, port = receiver.rpartition(":")
                hook["url"] = str(url.with_host(host).with_port(int(port)))
    head = f"# Written by `pipemedic demo` from {source}: short group timers, this run's ports.\n"
    return head + yaml.safe_dump(doc, sort_keys=False)


def receiver_store_url(run: Path) -> str:
    """Return the demo receiver's store: SQLite in the run folder, kept after the demo."""
    return f"sqlite:///{run / 'receiver.db'}"


def receiver_config(ports: Ports, run: Path, spec_path: Path) -> str:
    """Return the receiver's configuration: defaults, this run's files, demo timing."""
    doc = {
        "listen": ports.address("receiver"),
        "store": receiver_store_url(run),
        "prometheus_url": f"http://{ports.address('prometheus')}",
        "spec": str(spec_path),
        # the demo's browser is on this machine: links in notifications point here
        "external_url": f"http://{ports.address('receiver')}",
        # every demo pipeline's incident at once, and their resolutions, without queueing
        "workers": {"concurrency": 8, "poll_interval_seconds": 0.2},
        "recovery": {
            "max_concurrent_actions": 8,
            "backoff_base_seconds": 2,
            "backoff_max_seconds": 10,
            "verify_deadline_seconds": 60,
            "verify_interval_seconds": 1,
            # errors of the cause must stay away this long for a fix to count
            "verify_window_seconds": 10,
        },
    }
    head = "# Written by `pipemedic demo`: the receiver's defaults with demo timing.\n"
    return head + yaml.safe_dump(doc, sort_keys=False)
