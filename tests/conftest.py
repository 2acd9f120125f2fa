"""Shared fixtures: real Prometheus, Alertmanager and Pushgateway on loopback.

Each fixture is a factory: call it with a configuration and get a started
server; every server started in a test is stopped after it. A server that
fails to start fails the test with its log (``pipemedic.stack.ServerError``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipemedic.stack import AlertmanagerServer, ManagedServer, PrometheusServer, PushgatewayServer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def _servers() -> Iterator[list[ManagedServer]]:
    started: list[ManagedServer] = []
    yield started
    for server in reversed(started):
        server.stop()


@pytest.fixture
def prometheus_server(
    _servers: list[ManagedServer], tmp_path: Path
) -> Callable[..., PrometheusServer]:
    """Start a real Prometheus: ``prometheus_server(config_yaml)``."""

    def start(config: str = "global: {}\n", **kwargs: Any) -> PrometheusServer:
        server = PrometheusServer(
            config, workdir=tmp_path / f"prometheus-{len(_servers)}", **kwargs
        )
        _servers.append(server)
        return server.start()

    return start


@pytest.fixture
def alertmanager_server(
    _servers: list[ManagedServer], tmp_path: Path
) -> Callable[..., AlertmanagerServer]:
    """Start a real Alertmanager: ``alertmanager_server(config_yaml)``."""

    def start(config: str, **kwargs: Any) -> AlertmanagerServer:
        server = AlertmanagerServer(
            config, workdir=tmp_path / f"alertmanager-{len(_servers)}", **kwargs
        )
        _servers.append(server)
        return server.start()

    return start


@pytest.fixture
def pushgateway_server(
    _servers: list[ManagedServer], tmp_path: Path
) -> Callable[[], PushgatewayServer]:
    """Start a real Pushgateway: ``pushgateway_server()``."""

    def start() -> PushgatewayServer:
        server = PushgatewayServer(workdir=tmp_path / f"pushgateway-{len(_servers)}")
        _servers.append(server)
        return server.start()

    return start
