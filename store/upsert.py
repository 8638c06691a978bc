"""Bulk, dialect-aware upserts keyed on natural keys such as `(source, external_id)`.

One `INSERT ... ON CONFLICT DO UPDATE` statement, executed for many rows at once, on SQLite
and PostgreSQL alike, so a replayed page of records changes nothing and a sync never
issues a statement per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel

__all__ = ["bulk_upsert", "table_of"]

CHUNK = 500
"""Rows per multi-row VALUES statement."""
MANY_CHUNK = 5000
"""Rows per executemany."""


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy table of a SQLModel table model."""
    table = model.__table__  # type: ignore[attr-defined]  # SQLModel sets it on table models
    assert isinstance(table, Table)
    return table


def _statement(table: Table, dialect: str, keys: Sequence[str], to_update: Sequence[str]) -> Any:
    if dialect == "postgresql":
        pg_stmt = postgresql.insert(table)
        set_ = {c: pg_stmt.excluded[c] for c in to_update}
        return (
            pg_stmt.on_conflict_do_update(index_elements=list(keys), set_=set_)
            if set_
            else pg_stmt.on_conflict_do_nothing(index_elements=list(keys))
        )
    if dialect == "sqlite":
        lite_stmt = sqlite.insert(table)
        set_ = {c: lite_stmt.excluded[c] for c in to_update}
        return (
            lite_stmt.on_conflict_do_update(index_elements=list(keys), set_=set_)
            if set_
            else lite_stmt.on_conflict_do_nothing(index_elements=list(keys))
        )
    raise NotImplementedError(f"upsert is not implemented for the {dialect} dialect")


def bulk_upsert(
    session: Session,
    model: type[SQLModel],
    rows: Iterable[Mapping[str, Any]],
    keys: Sequence[str] = ("source", "external_id"),
    update: Sequence[str] | None = None,
) -> int:
    """Insert `rows`, updating the row with the same `keys` where one exists.

    `update` names the columns overwritten on conflict (default: every column given except
    the keys). Rows within one call that share keys keep the last one. Returns the number of
    distinct rows written.

    Rows that all name the same columns (the usual case) go as one executemany of a
    statement compiled once and cached; rows of mixed shapes go as multi-row VALUES.
    """
    table = table_of(model)
    deduped: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        deduped[tuple([row[k] for k in keys])] = row
    if not deduped:
        return 0
    values = list(deduped.values())
    columns = list(values[0].keys())
    to_update = [c for c in (update if update is not None else columns) if c not in keys]
    stmt = _statement(table, session.get_bind().dialect.name, keys, to_update)
    shape = values[0].keys()
    if all(row.keys() == shape for row in values):
        params = [dict(row) for row in values]
        for start in range(0, len(params), MANY_CHUNK):
            session.execute(stmt, params[start : start + MANY_CHUNK])
        return len(values)
    for start in range(0, len(values), CHUNK):
        session.execute(stmt.values([dict(row) for row in values[start : start + CHUNK]]))
    return len(values)
