"""Alembic environment: runs migrations on the engine the store hands over."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import Engine
from sqlmodel import SQLModel

import store.models  # noqa: F401  # registers every table on SQLModel.metadata
from store.types import UTCDateTime

target_metadata = SQLModel.metadata
UNMANAGED_TABLES = frozenset({"apscheduler_jobs"})
"""Tables in the database that migrations leave alone: APScheduler creates its job store."""


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render the project's own column types by their import path."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        autogen_context.imports.add("import store.types")
        return "store.types.UTCDateTime()"
    return False


def _include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Autogenerate neither creates nor drops the unmanaged tables, nor their indexes."""
    if type_ == "table":
        return name not in UNMANAGED_TABLES
    table = getattr(obj, "table", None)
    return getattr(table, "name", None) not in UNMANAGED_TABLES


def run_migrations_online() -> None:
    engine = context.config.attributes.get("engine")
    if not isinstance(engine, Engine):
        raise RuntimeError("run migrations through store.db.upgrade(), which passes the engine")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            render_item=_render_item,
            include_object=_include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
