"""The whole stack of the lineage end-to-end tests, started in the order alerts flow back.

The receiver (real diagnosis and firing check, recovery the counting seam
``FakeRecover``: which incidents recover is the question), a real Alertmanager
posting to it, and a real Prometheus scraping the test's ``EvidenceExporter``
and evaluating ``rule_files``, alerting that Alertmanager.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from core_helpers import ALERTMANAGER_TO_RECEIVER, FakeRecover
from recovery_evidence import EvidenceExporter, prometheus_config

from pipemedic.stack import AlertmanagerServer, PrometheusServer, free_port
from receiver.app import create_app
from receiver.config import parse_config


@dataclass(frozen=True)
class LineageStack:
    receiver: TestServer
    prometheus: PrometheusServer
    recover: FakeRecover


async def start_lineage_stack(
    tmp_path: Path,
    exporter: EvidenceExporter,
    rule_files: str,
    prometheus_server: Callable[..., PrometheusServer],
    alertmanager_server: Callable[..., AlertmanagerServer],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    **receiver_config: Any,
) -> LineageStack:
    """Start receiver, Alertmanager and Prometheus (the fixtures stop them)."""
    prom_port = free_port()
    recover = FakeRecover("recovered")
    config = parse_config(
        {
            "store": f"sqlite:///{tmp_path / 'receiver.db'}",
            "prometheus_url": f"http://127.0.0.1:{prom_port}",
            "workers": {"poll_interval_seconds": 0.1, "concurrency": 4},
            **receiver_config,
        }
    )
    receiver = await aiohttp_server(
        create_app(config, spec=exporter.spec, recover=lambda *_: recover), host="127.0.0.1"
    )
    am = await asyncio.to_thread(
        alertmanager_server, ALERTMANAGER_TO_RECEIVER.format(url=receiver.make_url("/alerts"))
    )
    prom_config = prometheus_config(
        exporter.address, rule_files=rule_files, alertmanager=am.address
    )
    server = await asyncio.to_thread(prometheus_server, prom_config, port=prom_port)
    return LineageStack(receiver, server, recover)
