"""Engine and session factory for the agent's one database, and its migrations.

SQLite is the zero-set-up default; PostgreSQL (via psycopg 3) is for production and for
several instances. Both go through the same code and the same Alembic migrations, which are
applied automatically whenever the store is opened.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "make_engine",
    "open_store",
    "session_scope",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain `postgresql://` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # WAL with NORMAL syncs at checkpoints, not every commit: a killed process loses
    # nothing committed; only a power cut may lose the last transactions.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`, with SQLite tuned for one writer and several readers."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            json_serializer=_dumps,
            json_deserializer=orjson.loads,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, pool_pre_ping=True, json_serializer=_dumps, json_deserializer=orjson.loads
    )


def _dumps(value: Any) -> str:
    """JSON columns as compact UTF-8 text, by orjson: about eight times faster than the
    standard library on score components, which a full rescoring writes for every account.
    Keys that are not strings (ints) become strings, as the standard library does; what
    orjson refuses (an integer beyond 64 bits in a vendor's raw record) falls back to it."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, check_circular=False, separators=(",", ":"))


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (the latest by default)."""
    command.upgrade(alembic_config(engine), revision)


def open_store(url: str) -> Engine:
    """An engine on a database whose schema is up to date."""
    engine = make_engine(url)
    upgrade(engine)
    return engine


_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _write_lock(engine: Engine) -> AbstractContextManager[object]:
    """SQLite has one writer: threads of this process take turns instead of failing busy.

    Deferred SQLite transactions that read, then write, fail at once with "database is
    locked" when another connection wrote meanwhile; taking turns here avoids that, while
    fetching (the slow part of a sync) still overlaps. PostgreSQL needs no such lock.
    """
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(engine)
        if lock is None:
            lock = _WRITE_LOCKS[engine] = threading.RLock()
    return lock


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with _write_lock(engine), Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def session_for(db: Engine | Session) -> Iterator[Session]:
    """The caller's session as it is (the caller commits), or a new committing one."""
    if isinstance(db, Session):
        yield db
        return
    with session_scope(db) as session:
        yield session
