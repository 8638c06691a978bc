"""Bulk, dialect-aware upserts keyed on natural keys such as `(source, external_id)`.

One `INSERT ... ON CONFLICT DO UPDATE` statement, executed for many rows at once, on SQLite
and PostgreSQL alike, so a replayed page of records changes nothing and a sync never
issues a statement per row.

On PostgreSQL, from `COPY_THRESHOLD` rows, the rows are streamed instead by `COPY` into a
temporary table, then upserted from it by one `INSERT ... SELECT ... ON CONFLICT`, which
spares the server a statement per row (a third less time for plain rows). Rows heavy with
JSON gain little that way: parsing the JSON into `jsonb`, compressing it and storing it
cost the server the same either way. `upsert_stream` therefore keeps the COPY open while
its caller writes batch after batch, so that the server does that work for one batch while
the caller computes the next. Either way the values go through the executemany's bind
processing (JSON serialised by the engine's serialiser, aware datetimes made naive UTC,
Python-side column defaults filled in), so both ways store the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel

from store.pg_copy import PgCopy

__all__ = ["COPY_THRESHOLD", "UpsertStream", "bulk_upsert", "table_of", "upsert_stream"]

CHUNK = 500
"""Rows per multi-row VALUES statement."""
MANY_CHUNK = 5000
"""Rows per executemany."""
COPY_THRESHOLD = 500
"""Rows from which PostgreSQL upserts go by COPY rather than by executemany. Below it the
temporary table's three extra round trips cost more than the rows save."""


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
    statement compiled once and cached, or on PostgreSQL from `COPY_THRESHOLD` rows by COPY;
    rows of mixed shapes go as multi-row VALUES.
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
        copy = PgCopy.start(session, table, columns, len(values), COPY_THRESHOLD)
        if copy is not None:
            bound = copy.bind(values)  # before any SQL: a refused value leaves the session usable
            copy.open()
            try:
                copy.send(bound)
            except BaseException as error:
                copy.abort(error)
                raise
            copy.upsert(stmt)
            return len(values)
        params = [dict(row) for row in values]
        for start in range(0, len(params), MANY_CHUNK):
            session.execute(stmt, params[start : start + MANY_CHUNK])
        return len(values)
    for start in range(0, len(values), CHUNK):
        session.execute(stmt.values([dict(row) for row in values[start : start + CHUNK]]))
    return len(values)


class UpsertStream:
    """Rows written batch after batch, upserted as one `bulk_upsert` per batch would.

    On PostgreSQL the rows go into one COPY that stays open while batches come, and reach
    the table when the stream finishes (or when a key comes again, which first upserts
    what came before it); until then the session's connection is busy with the COPY and
    must not be used. Fewer than `COPY_THRESHOLD` rows go by `bulk_upsert` on finishing.
    Elsewhere each batch goes by `bulk_upsert` as it is written. Every row names the same
    columns. Open one with `upsert_stream`.
    """

    def __init__(
        self,
        session: Session,
        model: type[SQLModel],
        keys: Sequence[str],
        update: Sequence[str] | None,
    ) -> None:
        self._session = session
        self._model = model
        self._table = table_of(model)
        self._keys = list(keys)
        self._update = update
        self._dialect = session.get_bind().dialect.name
        self._shape: list[str] | None = None
        self._shape_set: set[str] = set()
        self._pending: dict[tuple[Any, ...], Mapping[str, Any]] = {}
        """Rows not yet in a COPY, by key: the last of a key kept, where it first came."""
        self._copy: PgCopy | None = None
        self._copied: set[tuple[Any, ...]] = set()
        """Keys in the open COPY."""

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add `rows` to the stream."""
        if self._dialect != "postgresql":
            batch = list(rows)
            self._check_shape(batch)
            bulk_upsert(self._session, self._model, batch, self._keys, self._update)
            return
        distinct: dict[tuple[Any, ...], Mapping[str, Any]] = {}
        for row in rows:
            key = tuple([row[k] for k in self._keys])
            if key in self._copied:  # its earlier row must be upserted before this one
                self._send(list(distinct.values()))
                distinct = {}
                self._flush()
            distinct[key] = row
        self._send(list(distinct.values()))

    def finish(self) -> None:
        """Upsert every row written and not yet upserted."""
        self._flush()
        if self._pending:
            bulk_upsert(
                self._session, self._model, self._pending.values(), self._keys, self._update
            )
            self._pending = {}

    def abort(self, error: BaseException) -> None:
        """Abandon the open COPY, if any, because of `error`; the transaction fails with it."""
        if self._copy is not None:
            self._copy.abort(error)
            self._copy = None

    def _check_shape(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            if self._shape is None:
                self._shape = list(row.keys())
                self._shape_set = set(self._shape)
            elif row.keys() != self._shape_set:
                raise ValueError(f"an upsert stream takes rows of one shape: {self._shape}")

    def _send(self, rows: list[Mapping[str, Any]]) -> None:
        """Rows of distinct keys, none in the open COPY, into the COPY or the pending rows."""
        self._check_shape(rows)
        if self._copy is None:
            for row in rows:
                self._pending[tuple([row[k] for k in self._keys])] = row
            if len(self._pending) < COPY_THRESHOLD:
                return
            assert self._shape is not None
            self._copy = PgCopy.start(
                self._session, self._table, self._shape, len(self._pending), COPY_THRESHOLD
            )
            rows, self._pending = list(self._pending.values()), {}
            if self._copy is None:
                bulk_upsert(self._session, self._model, rows, self._keys, self._update)
                return
            self._copy.open()
        self._copy.send(self._copy.bind(rows))
        self._copied.update(tuple([row[k] for k in self._keys]) for row in rows)

    def _flush(self) -> None:
        """Upsert the rows of the open COPY, if any."""
        if self._copy is None:
            return
        assert self._shape is not None
        to_update = [
            c
            for c in (self._update if self._update is not None else self._shape)
            if c not in self._keys
        ]
        self._copy.upsert(_statement(self._table, self._dialect, self._keys, to_update))
        self._copy = None
        self._copied = set()


@contextmanager
def upsert_stream(
    session: Session,
    model: type[SQLModel],
    keys: Sequence[str] = ("source", "external_id"),
    update: Sequence[str] | None = None,
) -> Iterator[UpsertStream]:
    """An `UpsertStream` of `model` rows, finished when the block ends (and abandoned if it
    raises: on PostgreSQL the transaction then fails too, as a failed statement's does)."""
    stream = UpsertStream(session, model, keys, update)
    try:
        yield stream
    except BaseException as error:
        stream.abort(error)
        raise
    stream.finish()
