"""The one fetch loop: run a connector's declared streams into the store, page by page.

For each stream: read the committed cursor, build the first request from it, then for every
page map its records (a record that cannot be mapped goes to quarantine with the reason and
the sync goes on), upsert the page's rows and commit, and only then save the page's cursor
and commit again. A crash at any point therefore resumes from the last committed cursor and
replays at most one page, which the idempotent upserts absorb. Trait values a mapper
returns (`connectors.trait_records`) are written after the page's rows, in its transaction.
Timestamp cursors never move backwards and are re-read with a lookback window. Each stream
run leaves a `SyncRun` row. A stop request (`store.stopping`) ends a stream between pages,
as `stopped`.

Vendors that never say what they deleted are reconciled: a stream that declares `Reconcile`
is asked, once the source's `ReconcilePolicy.every` has passed since its last reconcile, for
a listing of every live record. The ids it shows are kept in memory; only when the listing
has run to its end in one run are the live rows it did not show soft-deleted, a few
statements in one transaction with the time of the reconcile, kept in sync state under
`reconcile_state_key`. A listing that fails or is killed part-way deletes nothing and stays
due. A listing that shows fewer than `min_share` of the live rows (an empty answer to a
token that lost its scope) deletes nothing either: the stream ends `refused`, loudly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlmodel import Session, SQLModel

from connectors.base import (
    Connector,
    CursorKind,
    Fetcher,
    Json,
    Page,
    Reconcile,
    Record,
    StartContext,
    StreamSpec,
    parse_iso,
    table_of,
    validate_record,
)
from connectors.errors import AuthError, FatalError, MappingError, SyncError, scrub
from connectors.trait_records import PendingTrait, is_trait_record, write_trait_records
from logs import bind_log_context, log_scope
from store.db import session_scope
from store.models import QuarantinedRecord, SyncRun, SyncState
from store.stopping import stop_requested
from store.types import utcnow
from store.upsert import bulk_upsert

__all__ = [
    "REFUSED",
    "STOPPED",
    "Progress",
    "ProgressEvent",
    "StreamResult",
    "SyncOptions",
    "SyncSummary",
    "map_records",
    "reconcile_state_key",
    "run_stream",
    "sync_connector",
]

log = logging.getLogger(__name__)

# Errors a mapper raises on a record of unexpected shape: quarantine it, keep syncing.
_SHAPE_ERRORS = (MappingError, LookupError, TypeError, ValueError, AttributeError, ArithmeticError)
REFUSED = "refused"
"""Status of a stream whose records synced but whose reconcile was refused by the guard."""
STOPPED = "stopped"
"""Status of a stream that a stop request ended between pages; it resumes from its cursor."""
RECONCILE_CHUNK = 500
"""Ids per `IN (...)` of a soft delete, well under SQLite's limit of bound variables."""


@dataclass(frozen=True)
class SyncOptions:
    """Engine-wide knobs."""

    lookback: timedelta = timedelta(minutes=10)
    """Timestamp cursors restart this far before the committed cursor."""
    backfill_since: datetime | None = None
    """Read every stream again from this moment, whatever its cursor says (a backfill).
    Cursors still never move backwards: a stream ends where it was or further."""
    clock: Callable[[], datetime] = utcnow


@dataclass(frozen=True)
class ProgressEvent:
    """Sent after every page and once more when a stream is done."""

    source: str
    stream: str
    pages: int
    records: int
    quarantined: int
    total: int | None
    done: bool


Progress = Callable[[ProgressEvent], None]


@dataclass
class StreamResult:
    """How one stream's sync went: `ok`, `failed`, or `refused` (see `REFUSED`)."""

    source: str
    stream: str
    status: str = "ok"
    records: int = 0
    skipped: int = 0
    quarantined: int = 0
    pages: int = 0
    cursor: str | None = None
    error: str | None = None
    reconciled: int = 0
    """Rows soft-deleted because this run's full listing no longer showed them."""
    exception: Exception | None = field(default=None, repr=False, compare=False)


@dataclass
class SyncSummary:
    """What a sync did, for the CLI to print; `links` counts identity links by status."""

    streams: list[StreamResult] = field(default_factory=list)
    links: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.status == "ok" for r in self.streams)

    @property
    def failures(self) -> list[StreamResult]:
        return [r for r in self.streams if r.status != "ok"]

    def records_by_source(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for r in self.streams:
            totals[r.source] = totals.get(r.source, 0) + r.records
        return totals

    def records_by_stream(self) -> dict[tuple[str, str], int]:
        return {(r.source, r.stream): r.records for r in self.streams}

    def reconciled_by_stream(self) -> dict[tuple[str, str], int]:
        """Rows soft-deleted by a reconcile, for the streams that deleted any."""
        return {(r.source, r.stream): r.reconciled for r in self.streams if r.reconciled}

    def raise_first_error(self) -> None:
        """Raise the first stream failure, if any (for callers that want exceptions)."""
        for r in self.failures:
            if r.exception is not None:
                raise r.exception


@dataclass
class _MappedPage:
    records: list[Record] = field(default_factory=list)
    traits: list[PendingTrait] = field(default_factory=list)
    """Trait values, written after the rows (see `connectors.trait_records`)."""
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    mapped_keys: list[str] = field(default_factory=list)
    skipped: int = 0


def map_records(source: str, spec: StreamSpec, raw: Sequence[Json]) -> _MappedPage:
    """Map raw records with the stream's mapper; what fails goes to the quarantine list."""
    page = _MappedPage()
    for item in raw:
        key = spec.record_key(item)
        try:
            rows = spec.mapper(item)
            stamped = [_stamp(source, rec) for rec in rows]
            for rec in stamped:
                if not is_trait_record(rec):
                    validate_record(rec)
        except _SHAPE_ERRORS as exc:
            reason = str(exc) if isinstance(exc, MappingError) else f"{type(exc).__name__}: {exc}"
            page.quarantine.append({"record_key": key, "payload": item, "reason": reason[:1000]})
            continue
        if not stamped:
            page.skipped += 1
            continue
        for rec in stamped:
            if is_trait_record(rec):
                page.traits.append(PendingTrait(key, item, rec))
            else:
                page.records.append(rec)
        page.mapped_keys.append(key)
    return page


@cache
def _has_source(model: type[SQLModel]) -> bool:
    return "source" in table_of(model).columns


def _stamp(source: str, record: Record) -> Record:
    if "source" in record.values or not _has_source(record.model):
        return record
    return Record(record.model, {"source": source, **record.values}, record.keys)


def _upsert_records(session: Session, records: Sequence[Record]) -> None:
    """Upsert a page's rows: last state of each key wins, one statement per shape."""
    latest: dict[tuple[Any, ...], Record] = {}
    for rec in records:
        values = rec.values
        key = (rec.model, *[values[k] for k in rec.keys])
        latest.pop(key, None)
        latest[key] = rec
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    columns: dict[tuple[str, ...], tuple[str, ...]] = {}
    for rec in latest.values():
        names = tuple(rec.values)
        if (ordered := columns.get(names)) is None:
            ordered = columns[names] = tuple(sorted(names))
        groups.setdefault((rec.model, rec.keys, ordered), []).append(rec.values)
    for (model, keys, _), rows in groups.items():
        bulk_upsert(session, model, rows, keys=keys)


def write_page(
    session: Session, source: str, stream: str, page: _MappedPage, now: datetime
) -> None:
    _upsert_records(session, page.records)
    if page.traits:
        unplaced = write_trait_records(session, page.traits, now)
        keys = {q["record_key"] for q in unplaced}
        page.mapped_keys = [k for k in page.mapped_keys if k not in keys]
        page.quarantine.extend(unplaced)
    if page.quarantine:
        base = {"source": source, "stream": stream, "resolved_at": None}
        rows = [{**base, **q} for q in page.quarantine]
        bulk_upsert(session, QuarantinedRecord, rows, keys=("source", "stream", "record_key"))
    quarantine = table_of(QuarantinedRecord).c
    for start in range(0, len(page.mapped_keys), 500):
        session.execute(
            update(table_of(QuarantinedRecord))
            .where(
                quarantine.source == source,
                quarantine.stream == stream,
                quarantine.record_key.in_(page.mapped_keys[start : start + 500]),
                quarantine.resolved_at.is_(None),
            )
            .values(resolved_at=now)
        )


def _save_cursor(engine: Engine, source: str, stream: str, cursor: str, now: datetime) -> None:
    """Commit a stream's cursor; called only after the page's records are committed."""
    with session_scope(engine) as session:
        row = {"source": source, "stream": stream, "cursor": cursor, "updated_at": now}
        bulk_upsert(session, SyncState, [row], keys=("source", "stream"))


def _advance(kind: CursorKind, committed: str | None, new: str) -> str | None:
    """The cursor to commit after a page, or None when it must not move."""
    if new == committed:
        return None
    if kind is CursorKind.TIMESTAMP and committed is not None:
        old_at, new_at = parse_iso(committed), parse_iso(new)
        if old_at is not None and new_at is not None and new_at <= old_at:
            return None  # a lookback page: the cursor never moves backwards
    return new


def _cursors(engine: Engine, source: str) -> dict[str, str | None]:
    with Session(engine) as session:
        state = table_of(SyncState).c
        rows = session.execute(
            select(state.stream, state.cursor).where(state.source == source)
        ).all()
    return {stream: cursor for stream, cursor in rows}


def _start_context(
    spec: StreamSpec, cursors: Mapping[str, str | None], options: SyncOptions, reconcile: bool
) -> StartContext:
    committed = cursors.get(spec.name)
    if options.backfill_since is not None:
        return StartContext(None, options.backfill_since, options.clock(), dict(cursors), reconcile)
    since = None
    if spec.cursor_kind is CursorKind.TIMESTAMP and committed:
        at = parse_iso(committed)
        since = at - options.lookback if at else None
    return StartContext(committed, since, options.clock(), dict(cursors), reconcile)


# Delete reconciliation ---------------------------------------------------------------------


def reconcile_state_key(stream: str) -> str:
    """The sync-state stream name under which a stream's last reconcile time is kept."""
    return f"{stream}:reconciled"


def _reconcile_due(
    connector: Connector, spec: StreamSpec, cursors: Mapping[str, str | None], now: datetime
) -> bool:
    """Whether this run of the stream must list everything and reconcile deletes."""
    if spec.reconcile is None:
        return False
    try:
        last = parse_iso(cursors.get(reconcile_state_key(spec.name)))
    except MappingError:
        return True  # an unreadable time: reconcile, and write a readable one
    return last is None or now - last >= connector.reconcile.every


def _note_seen(seen: set[str], spec: StreamSpec, raw: Sequence[Json], page: _MappedPage) -> None:
    """Every record of a listed page counts as seen, mapped or not (quarantined, skipped)."""
    seen.update(spec.record_key(item) for item in raw)
    model = spec.reconcile.model if spec.reconcile else None
    seen.update(
        str(rec.values["external_id"])
        for rec in page.records
        if rec.model is model and "external_id" in rec.values
    )


def _scoped(plan: Reconcile, source: str) -> list[Any]:
    """The conditions that select the live rows a reconcile covers."""
    columns = table_of(plan.model).c
    conditions = [columns.source == source, columns.deleted_at.is_(None)]
    conditions += [columns[name] == value for name, value in plan.scope.items()]
    return conditions


def _live_ids(session: Session, plan: Reconcile, source: str) -> set[str]:
    columns = table_of(plan.model).c
    query = select(columns.external_id).where(*_scoped(plan, source))
    return set(session.execute(query).scalars())


def _soft_delete(
    session: Session, plan: Reconcile, source: str, ids: Sequence[str], now: datetime
) -> None:
    """Set `deleted_at` on the given live rows: one statement per chunk of ids."""
    table = table_of(plan.model)
    for start in range(0, len(ids), RECONCILE_CHUNK):
        chunk = ids[start : start + RECONCILE_CHUNK]
        session.execute(
            update(table)
            .where(*_scoped(plan, source), table.c.external_id.in_(chunk))
            .values(deleted_at=now)
        )


def _refusal(spec: StreamSpec, source: str, kept: int, live: int, min_share: float) -> str:
    return (
        f"{source}/{spec.name}: the full listing showed {kept} of {live} live rows "
        f"({kept / live:.0%}), below the reconcile guard of {min_share:.0%}, so nothing was "
        f"deleted; check that the credentials still see every record, or lower "
        f"reconcile_min_share for {source} in the sources file if the deletes are real"
    )


def _reconcile(
    engine: Engine,
    connector: Connector,
    spec: StreamSpec,
    seen: set[str],
    result: StreamResult,
    now: datetime,
) -> None:
    """After a complete listing: soft-delete the live rows it did not show, unless too many.

    The deletes and the time of the reconcile commit together, or not at all.
    """
    plan, policy, source = spec.reconcile, connector.reconcile, connector.source
    assert plan is not None
    with session_scope(engine) as session:
        live = _live_ids(session, plan, source)
        missing = sorted(live - seen)
        kept = len(live) - len(missing)
        if missing and kept < policy.min_share * len(live):
            result.status = REFUSED
            result.error = _refusal(spec, source, kept, len(live), policy.min_share)
            log.warning("%s", result.error)
            return
        _soft_delete(session, plan, source, missing, now)
        state = {"source": source, "stream": reconcile_state_key(spec.name)}
        row = {**state, "cursor": now.isoformat(), "updated_at": now}
        bulk_upsert(session, SyncState, [row], keys=("source", "stream"))
    result.reconciled = len(missing)
    if missing:
        log.info("%s/%s: %d rows no longer listed, soft-deleted", source, spec.name, len(missing))


def _page_records(spec: StreamSpec, body: Json) -> list[Json]:
    items = body.get(spec.records_key)
    if not isinstance(items, list):
        raise FatalError(f"the {spec.name} response has no list under {spec.records_key!r}")
    records = [i if isinstance(i, dict) else {"value": i} for i in items]
    return records[::-1] if spec.newest_first else records


def _record_run(engine: Engine, result: StreamResult, run_id: int | None, now: datetime) -> int:
    values = {
        "source": result.source,
        "stream": result.stream,
        "status": result.status,
        "records": result.records,
        "quarantined": result.quarantined,
        "pages": result.pages,
        "error": result.error,
    }
    runs = table_of(SyncRun)
    with session_scope(engine) as session:
        if run_id is None:
            inserted = session.execute(
                insert(runs).values(started_at=now, **values).returning(runs.c.id)
            )
            return int(inserted.scalar_one())
        session.execute(update(runs).where(runs.c.id == run_id).values(finished_at=now, **values))
        return run_id


@log_scope
def run_stream(
    engine: Engine,
    connector: Connector,
    spec: StreamSpec,
    fetcher: Fetcher,
    options: SyncOptions | None = None,
    progress: Progress | None = None,
) -> StreamResult:
    """Sync one stream; failures are recorded in the result and its SyncRun, not raised.

    Errors that are not a `SyncError` (bugs, a lost database) are recorded and re-raised.
    """
    options = options or SyncOptions()
    source = connector.source
    result = StreamResult(source, spec.name, status="running")
    run_id = _record_run(engine, result, None, options.clock())
    bind_log_context(source=source, stream=spec.name, run_id=run_id)
    total: int | None = None

    def report(done: bool) -> None:
        if progress is not None:
            event = ProgressEvent(
                source, spec.name, result.pages, result.records, result.quarantined, total, done
            )
            progress(event)

    try:
        cursors = _cursors(engine, source)
        due = _reconcile_due(connector, spec, cursors, options.clock())
        ctx = _start_context(spec, cursors, options, reconcile=due)
        seen: set[str] | None = set() if due else None
        committed = result.cursor = cursors.get(spec.name)
        request = spec.first_request(ctx)
        paginator = spec.paginator()
        while request is not None:
            if stop_requested():  # between pages: the pages so far and their cursor are committed
                result.status, result.error = STOPPED, "stop requested before its next page"
                break
            body = fetcher.fetch(request)
            paginator.update(body)
            raw = _page_records(spec, body)
            if spec.enrich is not None and raw:
                raw = spec.enrich(fetcher, raw)
            if total is None and spec.total_key and isinstance(body.get(spec.total_key), int):
                total = body[spec.total_key]
            mapped = map_records(source, spec, raw)
            if seen is not None:
                _note_seen(seen, spec, raw, mapped)
            with session_scope(engine) as session:
                write_page(session, source, spec.name, mapped, options.clock())
            result.pages += 1
            result.records += len(mapped.mapped_keys)
            result.skipped += mapped.skipped
            result.quarantined += len(mapped.quarantine)
            if spec.cursor is not None:
                page = Page(request, body, raw, not paginator.has_more, ctx)
                new = spec.cursor(page)
                moved = _advance(spec.cursor_kind, committed, new) if new is not None else None
                if moved is not None:
                    _save_cursor(engine, source, spec.name, moved, options.clock())
                    committed = result.cursor = moved
            report(done=False)
            request = paginator.next_request(request) if paginator.has_more else None
        if result.status != STOPPED:
            result.status = "ok"
            if seen is not None and result.pages:  # the listing ran to its end in this run
                _reconcile(engine, connector, spec, seen, result, options.clock())
    except Exception as exc:
        result.status = "failed"
        result.exception = exc
        kind = type(exc).__name__
        message = scrub(str(exc), connector.secret_values())
        result.error = message if isinstance(exc, SyncError) else f"{kind}: {message}"
        log.warning("%s/%s failed: %s", source, spec.name, result.error)
        try:
            _record_run(engine, result, run_id, options.clock())
        except Exception:  # the store itself may be what failed: keep the first error
            log.exception("%s/%s: could not record the failed run", source, spec.name)
        report(done=True)
        if not isinstance(exc, SyncError):
            raise
        return result
    _record_run(engine, result, run_id, options.clock())
    report(done=True)
    return result


@log_scope
def sync_connector(
    engine: Engine,
    connector: Connector,
    *,
    streams: Sequence[str] | None = None,
    options: SyncOptions | None = None,
    progress: Progress | None = None,
) -> list[StreamResult]:
    """Sync a connector's streams in their declared order, then its set-based finalize.

    An `AuthError` stops the source: every later stream would be refused the same way.
    """
    bind_log_context(source=connector.source)
    selected = [s for s in connector.streams if streams is None or s.name in streams]
    results: list[StreamResult] = []
    fetcher = connector.open()
    try:
        for spec in selected:
            if stop_requested():  # later streams wait for the next run
                break
            result = run_stream(engine, connector, spec, fetcher, options, progress)
            results.append(result)
            if isinstance(result.exception, AuthError):
                return results
    finally:
        fetcher.close()
    if connector.finalize is not None:
        with session_scope(engine) as session:
            connector.finalize(session)
    return results
