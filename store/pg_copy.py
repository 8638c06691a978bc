"""PostgreSQL's fast path for bulk upserts: rows streamed by COPY into a temporary table.

`PgCopy` creates a temporary table with the target's column types and no constraints,
streams the rows into it with psycopg's `COPY ... FROM STDIN`, then upserts them from it in
one `INSERT ... SELECT ... ON CONFLICT` (the statement `store.upsert` builds). The values go
through the same bind processing an executemany applies (the engine's JSON serialiser,
aware datetimes made naive UTC, Python-side column defaults filled in), so either way the
same rows are stored. `store.upsert` decides when it is worth it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Column, ColumnDefault, Table, column, exc, select
from sqlalchemy import table as table_clause
from sqlalchemy.engine import Dialect
from sqlmodel import Session

__all__ = ["PgCopy"]


class _RowContext:
    """What a context-sensitive column default may ask of its execution: the row's values."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.current_parameters = row

    def get_current_parameters(self, isolate_multiinsert_groups: bool = True) -> dict[str, Any]:
        """The values of the row being inserted, as SQLAlchemy's execution context gives."""
        return self.current_parameters


def _defaulted(table: Table, given: Iterable[str]) -> list[Column[Any]] | None:
    """The columns not `given` that an INSERT fills from a Python-side default, in table
    order; None when one of them cannot be computed outside a statement (a SQL expression
    or a sequence), which leaves the rows to the executemany."""
    named = set(given)
    defaulted: list[Column[Any]] = []
    for col in table.columns:
        default = col.default
        if col.key in named or default is None:
            continue
        if not isinstance(default, ColumnDefault) or not (default.is_scalar or default.is_callable):
            return None
        defaulted.append(col)
    return defaulted


def _with_defaults(source: Mapping[str, Any], defaulted: Sequence[Column[Any]]) -> dict[str, Any]:
    """The row with the Python-side defaults of `defaulted` filled in, in order, each seeing
    the values before it (as a context-sensitive default does in an executemany)."""
    row = dict(source)
    for col in defaulted:
        default = col.default
        assert isinstance(default, ColumnDefault)
        row[col.key] = default.arg(_RowContext(row)) if default.is_callable else default.arg
    return row


class PgCopy:
    """One COPY of rows into a temporary table shaped like the target's columns, then one
    `INSERT ... SELECT` from it into the target."""

    def __init__(
        self,
        session: Session,
        driver: psycopg.Connection[Any],
        dialect: Dialect,
        table: Table,
        cols: list[Column[Any]],
        defaulted: list[Column[Any]],
    ) -> None:
        self._session = session
        self._driver = driver
        self._dialect = dialect
        self._table = table
        self._cols = cols
        self._defaulted = defaulted
        self._temp_name = f"upsert_{table.name}"[:63]
        self._temp = sql.Identifier(self._temp_name)
        self._fields = sql.SQL(", ").join(sql.Identifier(col.name) for col in cols)
        self._processors = [
            (col.key, col.type.dialect_impl(dialect).bind_processor(dialect)) for col in cols
        ]
        self._open = ExitStack()
        """The cursor and its COPY, while the COPY is open."""
        self._writer: psycopg.Copy | None = None

    @classmethod
    def start(
        cls, session: Session, table: Table, given: Sequence[str], rows: int, threshold: int
    ) -> PgCopy | None:
        """A COPY for `rows` rows naming the columns `given`; None when they should go by
        executemany: fewer than `threshold`, not PostgreSQL through psycopg, a connection in
        autocommit (the temporary table would not outlive its statement), a column the table
        lacks, or a default only a statement can compute."""
        if rows < threshold or session.get_bind().dialect.name != "postgresql":
            return None
        connection = session.connection()
        driver = connection.connection.driver_connection
        defaulted = _defaulted(table, given)
        if (
            not isinstance(driver, psycopg.Connection)
            or driver.autocommit
            or defaulted is None
            or not all(key in table.c for key in given)
        ):
            return None
        cols = [table.c[key] for key in given] + defaulted
        return cls(session, driver, connection.dialect, table, cols, defaulted)

    def bind(self, rows: Iterable[Mapping[str, Any]]) -> list[list[Any]]:
        """Each row's values, as the executemany would bind them: defaults filled in, then
        every value through its column type's bind processing (JSON is serialised later, by
        the connection's JSON dumper, as for the executemany)."""
        processors = self._processors
        bound: list[list[Any]] = []
        try:
            for source in rows:
                row = _with_defaults(source, self._defaulted) if self._defaulted else source
                bound.append(
                    [
                        row[key] if process is None else process(row[key])
                        for key, process in processors
                    ]
                )
        except Exception as error:  # reported as SQLAlchemy reports a value it cannot bind
            raise exc.StatementError(
                f"({type(error).__module__}.{type(error).__name__}) {error}",
                f"COPY {self._table.name}",
                None,
                error,
            ) from error
        return bound

    def open(self) -> None:
        """Create the temporary table and begin the COPY into it."""
        target = sql.Identifier(
            *([self._table.schema] if self._table.schema else []), self._table.name
        )
        cursor = self._open.enter_context(self._driver.cursor())
        # no constraints and no defaults: rows arrive complete and the target checks them
        create = "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
        cursor.execute(sql.SQL(create).format(self._temp, self._fields, target))
        copy = sql.SQL("COPY {} ({}) FROM STDIN").format(self._temp, self._fields)
        self._writer = self._open.enter_context(cursor.copy(copy))

    def send(self, bound: Iterable[Sequence[Any]]) -> None:
        """Stream bound rows into the COPY."""
        assert self._writer is not None
        write_row = self._writer.write_row
        for row in bound:
            write_row(row)

    def upsert(self, stmt: Any) -> None:
        """End the COPY and upsert its rows into the target with `stmt`'s ON CONFLICT
        clause, in the order they were written (a temporary table filled by one COPY is
        read back in that order), then drop the temporary table."""
        self._open.close()
        source = table_clause(self._temp_name, *(column(col.name) for col in self._cols))
        rows = select(*source.columns)
        self._session.execute(stmt.from_select(self._cols, rows, include_defaults=False))
        self._driver.execute(sql.SQL("DROP TABLE {}").format(self._temp))

    def abort(self, error: BaseException) -> None:
        """End the COPY in failure: the server rolls it back, and the transaction fails."""
        self._open.__exit__(type(error), error, error.__traceback__)
