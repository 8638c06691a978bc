"""Fixtures of the connector tests.

`db_url` is narrowed here for speed: the connector suite runs well over a hundred store
tests, so on PostgreSQL they share one migrated database per run, emptied with TRUNCATE
before each test, instead of cloning a database per test. SQLite still gets a fresh copy.
Every store test still runs on both dialects through the shared `engine` fixture.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlmodel import SQLModel

from tests.conftest import RUN_ID, _pg_admin, _pg_url, sqlite_copy


@pytest.fixture(scope="session")
def pg_shared(pg_template: str) -> Iterator[str]:
    name = f"ha_c_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _pg_url(name)
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate(url: str) -> None:
    tables = sql.SQL(", ").join(sql.Identifier(t) for t in SQLModel.metadata.tables)
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(tables))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database of each dialect."""
    if request.param == "sqlite":
        yield sqlite_copy(request, tmp_path)
        return
    url: str = request.getfixturevalue("pg_shared")
    _truncate(url)
    yield url
