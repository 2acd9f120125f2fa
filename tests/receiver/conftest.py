"""Receiver fixtures: a throwaway PostgreSQL cluster, one fresh database per call.

The cluster starts once per test session (initdb takes about a second) and is
stopped at the end; every call of ``postgres_server()`` creates a new empty
database in it, so tests never see each other's rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from pipemedic.pgserver import PostgresServer

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresServer]:
    """Start one real PostgreSQL on 127.0.0.1 for the session (initdb in a temp folder)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_server(postgres_cluster: PostgresServer) -> Callable[[], str]:
    """Create a fresh database: ``dsn = postgres_server()`` -> ``postgresql://...``."""

    def create() -> str:
        return postgres_cluster.create_database(f"test_{next(_database_numbers)}")

    return create
