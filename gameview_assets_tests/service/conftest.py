"""A PostgreSQL server for the whole session, and a fresh database per test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import count

import pytest

from gameview_assets_tests.service.postgres import PostgresServer, postgres_server

_databases = count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_env(postgres: PostgresServer, request: pytest.FixtureRequest) -> dict[str, str]:
    """DAGSTER_PG_* of a new, empty database named after the test."""
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]
    return postgres.create_database(f"{name}_{next(_databases)}")
