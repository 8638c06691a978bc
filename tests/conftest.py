"""Shared fixtures: a migrated database on SQLite and on the local PostgreSQL.

Every store test takes the `engine` fixture and so runs twice, once per dialect. PostgreSQL
tests use a database of their own, cloned from a migrated template made once per run, and
drop it afterwards, so two runs on one machine never collide. Under `CI=true` an unreachable
PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from store.db import make_engine, open_store

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
RUN_ID = uuid.uuid4().hex[:10]


def _pg_url(database: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)  # type: ignore[arg-type]  # identifiers are generated here, not input


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL database that each test clones."""
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"ha_tpl_{RUN_ID}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    engine = open_store(_pg_url(name))
    engine.dispose()
    yield name
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    open_store(f"sqlite:///{path}").dispose()
    return path


def sqlite_copy(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh copy of the migrated SQLite template in `tmp_path`."""
    template: Path = request.getfixturevalue("sqlite_template")
    path = tmp_path / "store.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a freshly migrated, empty database of each dialect."""
    if request.param == "sqlite":
        yield sqlite_copy(request, tmp_path)
        return
    tpl: str = request.getfixturevalue("pg_template")
    name = f"ha_t_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"')
    try:
        yield _pg_url(name)
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated SQLite database, for tests that are not about the store."""
    return sqlite_copy(request, tmp_path)
