"""Records from any SQL database: one query per kind, for the tables kept in a warehouse.

Most companies keep product usage (and often tickets or survey answers) in a warehouse
table rather than behind an API. The admin gives a SQLAlchemy URL (`SQL__URL`) and, in the
sources file, one query per kind whose columns are those of the file import (see
`connectors.files`):

    [sql.queries]
    usage = '''
      select account_id, account_domain, week_start, active_users, licensed_seats
      from analytics.weekly_usage where loaded_at >= :since'''

A query that uses `:since` is incremental: it receives the start of the last successful run
(minus the engine's lookback) as UTC text `YYYY-MM-DD HH:MM:SS` (cast it where the column
is a timestamp: `loaded_at >= cast(:since as timestamp)`), and the stream's cursor is the
start of this run. A query
without it is read whole each time, which upserts make harmless. Rows are mapped by the
same pure functions as imported files, so a row that cannot be mapped is quarantined.

A `usage` query may return the weekly shape above or usage in long form (`account_id,
account_domain, date` or `week_start`, `metric, value[, period]`: see
`connectors.usage_metrics`). Account traits come in long form from a `traits` query:

    traits = '''
      select account_id, name, value, kind, as_of from analytics.account_attributes'''

`account_id` is the CRM id of the account (resolved as identity resolves a CRM id; a row
whose id matches no stored account is quarantined), `kind` one of number, category, date,
boolean (optional: else the kind stored for the trait, else read from the values), and
`as_of` when the value held (optional: the time of the run). Extra columns of an
`accounts` query are traits too, as in an accounts file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from connectors.base import (
    Connector,
    CursorKind,
    Fetcher,
    Json,
    Page,
    Record,
    Request,
    StartContext,
    StreamSpec,
)
from connectors.errors import FatalError, MappingError, scrub
from connectors.files import KINDS, map_file_row, prepare_rows
from connectors.paginators import SinglePagePaginator
from connectors.row_values import Row, clean_row, row_text, row_when
from connectors.trait_records import check_name, trait_record
from connectors.usage_metrics import is_long_form, long_form_key
from settings import ConfigError, Settings
from store.db import normalise_url
from store.models import TRAIT_KINDS
from store.traits import TraitError, TraitValue

__all__ = ["SOURCE", "SqlFetcher", "build"]

SOURCE = "sql"
TRAITS = "traits"
"""The query of account traits in long form; after the kinds, so its accounts exist."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SqlFetcher:
    """A `Fetcher` that runs the query named by a request's path, rows as text columns."""

    def __init__(self, url: str, queries: Mapping[str, str]) -> None:
        parsed = make_url(normalise_url(url))
        self._engine = create_engine(parsed, pool_pre_ping=True)
        self._queries = queries
        self._secrets = [parsed.password] if parsed.password else []

    def fetch(self, request: Request) -> Json:
        query = self._queries[request.path]
        params = {"since": request.params["since"]} if ":since" in query else {}
        try:
            with self._engine.connect() as conn:
                result = conn.execute(text(query), params)
                columns = list(result.keys())
                rows = [
                    clean_row(
                        {
                            "line": number,
                            **{c: None if v is None else str(v) for c, v in zip(columns, row)},  # noqa: B905  # a row has as many values as columns
                        }
                    )
                    for number, row in enumerate(result, start=1)
                ]
        except SQLAlchemyError as exc:
            cause = exc.orig if isinstance(exc, DBAPIError) else exc
            detail = scrub(str(cause).splitlines()[0], self._secrets)
            raise FatalError(
                f"sql: the {request.path} query failed ({type(exc).__name__}: {detail}): "
                "check [sql.queries] in the sources file and SQL__URL"
            ) from None
        return {"rows": rows}

    def close(self) -> None:
        self._engine.dispose()


def _since(ctx: StartContext) -> dict[str, Any]:
    since = ctx.since or EPOCH
    return {"since": since.replace(tzinfo=None).isoformat(sep=" ")}


def _row_key(kind: str, row: Mapping[str, Any]) -> str:
    """A row's identity across runs (row numbers move as the table changes)."""
    if kind == "usage":
        if is_long_form(row):
            return long_form_key(row)
        return f"usage {row.get('account_id')}:{row.get('week_start')}"
    if kind == TRAITS:
        return f"traits {row.get('account_id')}:{row.get('name')}:{row.get('as_of') or ''}"
    return f"{kind} {row.get('id') or 'row ' + str(row.get('line'))}"


def map_trait_row(row: Row) -> list[Record]:
    """A long-form traits row -> one trait value of the account with that CRM id."""
    line = row.get("line")
    if "_error" in row:
        raise MappingError(f"line {line}: {row['_error']}")
    account = row_text(row, "account_id", required=True) or ""
    try:
        name = check_name(row_text(row, "name"))
    except ValueError as exc:
        raise MappingError(f"line {line}: {exc}") from None
    kind = (row_text(row, "kind") or "").lower() or None
    if kind is not None:
        if kind not in TRAIT_KINDS:
            raise MappingError(
                f"line {line}: kind {kind[:40]!r} is not one of {', '.join(TRAIT_KINDS)}"
            )
        try:
            TraitValue.parse(kind, row.get("value"))
        except TraitError as exc:
            raise MappingError(f"line {line}: value of {name[:40]}: {exc}") from None
    seen_at = row_when(row, "as_of")
    return [trait_record(account, name, row.get("value"), kind=kind, by="crm_id", seen_at=seen_at)]


def _mapper(kind: str) -> Callable[[Mapping[str, Any]], list[Record]]:
    return map_trait_row if kind == TRAITS else partial(map_file_row, kind)


def _prepared(kind: str) -> Callable[[Fetcher, list[Json]], list[Json]] | None:
    if kind != "accounts":
        return None
    return lambda _fetcher, rows: prepare_rows(kind, rows)


def _run_started(page: Page) -> str:
    return page.start.now.isoformat()


def build(settings: Settings) -> Connector:
    """The SQL connector: one stream per configured kind, in the file import's order."""
    url = settings.sql.url
    if url is None:
        raise ConfigError("sql is not configured: set SQL__URL in .env")
    extra = settings.source_config(SOURCE).model_extra or {}
    queries = extra.get("queries")
    if not isinstance(queries, dict) or not queries:
        raise ConfigError(
            "sql has no queries: add [sql.queries] with one query per kind to the sources file"
        )
    kinds = (*KINDS, TRAITS)
    unknown = sorted(set(queries) - set(kinds))
    if unknown:
        raise ConfigError(f"sql queries {', '.join(unknown)} are not kinds: use {', '.join(kinds)}")
    streams = tuple(
        StreamSpec(
            name=kind,
            path=kind,
            query=_since,
            records_key="rows",
            paginator=SinglePagePaginator,
            mapper=_mapper(kind),
            record_key=partial(_row_key, kind),
            enrich=_prepared(kind),
            cursor_kind=CursorKind.TIMESTAMP,
            cursor=_run_started,
        )
        for kind in kinds
        if kind in queries
    )
    plain = {kind: str(q) for kind, q in queries.items()}
    return Connector(
        source=SOURCE,
        streams=streams,
        open=lambda: SqlFetcher(url.get_secret_value(), plain),
        secrets=(url,),
    )
