"""Bulk, dialect-aware upserts keyed on natural keys such as `(source, external_id)`.

One `INSERT ... ON CONFLICT DO UPDATE` per chunk on SQLite and PostgreSQL alike, so a
replayed page of records changes nothing and a sync never writes row by row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel

__all__ = ["bulk_upsert"]

CHUNK = 500


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]  # SQLModel sets it on table models
    assert isinstance(table, Table)
    return table


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
    """
    table = _table(model)
    deduped: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        deduped[tuple(row[k] for k in keys)] = dict(row)
    if not deduped:
        return 0
    values = list(deduped.values())
    columns = list(values[0].keys())
    to_update = [c for c in (update if update is not None else columns) if c not in keys]
    dialect = session.get_bind().dialect.name
    for start in range(0, len(values), CHUNK):
        chunk = values[start : start + CHUNK]
        if dialect == "postgresql":
            pg_stmt = postgresql.insert(table).values(chunk)
            set_ = {c: pg_stmt.excluded[c] for c in to_update}
            stmt: Any = (
                pg_stmt.on_conflict_do_update(index_elements=list(keys), set_=set_)
                if set_
                else pg_stmt.on_conflict_do_nothing(index_elements=list(keys))
            )
        elif dialect == "sqlite":
            lite_stmt = sqlite.insert(table).values(chunk)
            set_ = {c: lite_stmt.excluded[c] for c in to_update}
            stmt = (
                lite_stmt.on_conflict_do_update(index_elements=list(keys), set_=set_)
                if set_
                else lite_stmt.on_conflict_do_nothing(index_elements=list(keys))
            )
        else:
            raise NotImplementedError(f"upsert is not implemented for the {dialect} dialect")
        session.execute(stmt)
    return len(values)
