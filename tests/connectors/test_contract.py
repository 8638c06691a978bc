"""The contract every stream of every connector keeps, run against the fake vendors.

Paging ends; a repeated page token stops the loop with PagingError; the cursor never moves
backwards; a second sync fetches nothing new; a 429 is waited out for exactly Retry-After
and retried; a crash between a page's commit and its cursor's commit loses nothing. Streams
that reconcile deletes apply what a complete listing reveals, once, and nothing when the
listing stops part-way.
"""

from __future__ import annotations

import contextlib
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session, SQLModel

from connectors import sync
from connectors.base import CursorKind, parse_iso, table_of
from connectors.errors import PagingError
from connectors.paginators import SinglePagePaginator
from store.db import make_engine
from store.models import SyncRun, SyncState
from tests.connectors.worlds import VANISH, WORLDS, World

CASES = [
    ("hubspot", "owners"),
    ("hubspot", "companies"),
    ("hubspot", "archived_companies"),
    ("hubspot", "deals"),
    ("hubspot", "archived_deals"),
    ("salesforce", "users"),
    ("salesforce", "accounts"),
    ("salesforce", "deleted_accounts"),
    ("salesforce", "opportunities"),
    ("salesforce", "deleted_opportunities"),
    ("zendesk", "organizations"),
    ("zendesk", "tickets"),
    ("zendesk", "satisfaction_ratings"),
    ("stripe", "events"),
    ("stripe", "customers"),
    ("stripe", "subscriptions"),
    ("stripe", "invoices"),
    ("freshdesk", "companies"),
    ("freshdesk", "tickets"),
    ("freshdesk", "deleted_tickets"),
    ("intercom", "companies"),
    ("intercom", "conversations"),
    ("chargebee", "customers"),
    ("chargebee", "subscriptions"),
    ("chargebee", "invoices"),
    ("usage_file", "usage"),
]


@pytest.fixture(params=CASES, ids=[f"{s}-{t}" for s, t in CASES])
def case(request: pytest.FixtureRequest) -> tuple[World, str]:
    source, stream = request.param
    return WORLDS[source](), stream


def _counts(engine: Engine) -> dict[str, int]:
    skip = {"sync_runs", "sync_state"}
    with Session(engine) as session:
        return {
            name: session.scalar(select(func.count()).select_from(table)) or 0
            for name, table in SQLModel.metadata.tables.items()
            if name not in skip
        }


def _cursor(engine: Engine, source: str, stream: str) -> str | None:
    with Session(engine) as session:
        return session.scalar(
            select(SyncState.cursor).where(  # type: ignore[call-overload]
                SyncState.source == source, SyncState.stream == stream
            )
        )


def _kind(world: World, stream: str) -> CursorKind:
    return world.connector.stream(stream).cursor_kind


def _not_backwards(kind: CursorKind, before: str | None, after: str | None) -> bool:
    if before is None or kind is not CursorKind.TIMESTAMP:
        return after == before or before is None or kind is not CursorKind.TIMESTAMP
    return after is not None and parse_iso(after) >= parse_iso(before)  # type: ignore[operator]


def test_paging_ends_and_cursor_never_moves_backwards(
    engine: Engine, case: tuple[World, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, stream = case
    saved: list[str] = []
    original = sync._save_cursor

    def spy(engine: Engine, source: str, name: str, cursor: str, now: Any) -> None:
        if name == stream:
            saved.append(cursor)
        original(engine, source, name, cursor, now)

    monkeypatch.setattr(sync, "_save_cursor", spy)
    result = world.sync(engine, world.streams_for(stream))[stream]
    assert result.status == "ok", result.error
    single_page = world.connector.stream(stream).paginator is SinglePagePaginator
    assert result.pages >= (1 if single_page else 2)
    assert result.records > 0
    if _kind(world, stream) is CursorKind.TIMESTAMP:
        stamps = [parse_iso(c) for c in saved]
        assert stamps == sorted(stamps)  # type: ignore[type-var]
        assert saved, "a timestamp stream commits a cursor"


def test_cursor_never_moves_backwards_past_a_later_commit(
    engine: Engine, case: tuple[World, str]
) -> None:
    world, stream = case
    if _kind(world, stream) is not CursorKind.TIMESTAMP:
        pytest.skip("only timestamp cursors are ordered")
    future = "2099-01-01T00:00:00+00:00"
    with Session(engine) as session:
        session.add(SyncState(source=world.connector.source, stream=stream, cursor=future))
        session.commit()
    world.sync(engine, world.streams_for(stream))
    assert _cursor(engine, world.connector.source, stream) == future


def test_second_sync_fetches_nothing_new(engine: Engine, case: tuple[World, str]) -> None:
    world, stream = case
    source = world.connector.source
    first = world.sync(engine, world.streams_for(stream))[stream]
    assert first.status == "ok", first.error
    counts, cursor = _counts(engine), _cursor(engine, source, stream)
    second = world.sync(engine, world.streams_for(stream))[stream]
    assert second.status == "ok", second.error
    assert _counts(engine) == counts
    assert _not_backwards(_kind(world, stream), cursor, _cursor(engine, source, stream))


def test_repeated_page_token_stops_with_paging_error(
    engine: Engine, case: tuple[World, str]
) -> None:
    world, stream = case
    if world.vendor is None:
        pytest.skip("a single-page source has no page token")
    world.vendor.stuck.add(stream)
    result = world.sync(engine, world.streams_for(stream))[stream]
    assert result.status == "failed"
    assert isinstance(result.exception, PagingError)
    with Session(engine) as session:
        [run] = [r for r in session.execute(select(SyncRun)).scalars() if r.stream == stream]
    assert run.status == "failed"
    assert run.error is not None
    assert "repeated" in run.error


def test_rate_limit_waits_retry_after_then_retries(engine: Engine, case: tuple[World, str]) -> None:
    world, stream = case
    if world.vendor is None:
        pytest.skip("a file has no rate limit")
    world.vendor.throttle[stream] = "7"
    result = world.sync(engine, world.streams_for(stream))[stream]
    assert result.status == "ok", result.error
    assert world.sleeps == [7.0]
    assert stream not in world.vendor.throttle


def test_server_errors_and_timeouts_are_retried(engine: Engine, case: tuple[World, str]) -> None:
    world, stream = case
    if world.vendor is None:
        pytest.skip("a file has no server")
    world.vendor.failures[stream] = ["503", "timeout", "502"]
    result = world.sync(engine, world.streams_for(stream))[stream]
    assert result.status == "ok", result.error
    assert len(world.sleeps) == 3, "each failure waits once, with backoff"
    assert world.vendor.failures[stream] == []


def test_a_vendor_that_stays_down_is_given_up_within_bounds(
    engine: Engine, case: tuple[World, str]
) -> None:
    world, stream = case
    if world.vendor is None:
        pytest.skip("a file has no server")
    world.vendor.failures[stream] = ["500"] * 50
    result = world.sync(engine, world.streams_for(stream))[stream]
    assert result.status == "failed"
    assert result.error is not None
    assert "gave up after 5 attempts" in result.error
    assert 50 - len(world.vendor.failures[stream]) == 5, "attempts are capped"
    assert sum(world.sleeps) <= 300, "total waiting is capped"


def test_crash_between_page_commit_and_cursor_commit_loses_nothing(
    engine: Engine,
    case: tuple[World, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sqlite_template: Path,
) -> None:
    world, stream = case
    shutil.copy(sqlite_template, tmp_path / "clean.db")
    clean = make_engine(f"sqlite:///{tmp_path / 'clean.db'}")
    try:
        WORLDS[world.connector.source]().sync(clean, world.streams_for(stream))
        expected = _counts(clean)
    finally:
        clean.dispose()

    original = sync._save_cursor
    crashed: list[str] = []

    def crash(engine: Engine, source: str, name: str, cursor: str, now: Any) -> None:
        if name == stream and not crashed:
            crashed.append(cursor)
            raise RuntimeError("power cut")
        original(engine, source, name, cursor, now)

    monkeypatch.setattr(sync, "_save_cursor", crash)
    with contextlib.suppress(RuntimeError):
        world.sync(engine, world.streams_for(stream))
    monkeypatch.setattr(sync, "_save_cursor", original)
    if _kind(world, stream) is not CursorKind.NONE:
        assert crashed, "the stream committed a cursor, so the crash happened"
    rerun = WORLDS[world.connector.source]()
    results = rerun.sync(engine, world.streams_for(stream))
    assert all(r.status == "ok" for r in results.values())
    assert _counts(engine) == expected


# Deletes applied by reconciles: streams whose complete listing shows every live record ------

RECONCILED = sorted(VANISH)


@pytest.fixture(params=RECONCILED, ids=[f"{s}-{t}" for s, t in RECONCILED])
def reconciled(request: pytest.FixtureRequest) -> tuple[World, str]:
    source, stream = request.param
    return WORLDS[source](), stream


def _deleted_ids(engine: Engine, world: World, stream: str) -> set[str]:
    plan = world.connector.stream(stream).reconcile
    assert plan is not None, f"{stream} declares no reconcile"
    table = table_of(plan.model)
    query = select(table.c.external_id).where(
        table.c.source == world.connector.source, table.c.deleted_at.is_not(None)
    )
    with Session(engine) as session:
        return set(session.execute(query).scalars())


def test_a_complete_listing_applies_the_deletes_it_reveals_once(
    engine: Engine, reconciled: tuple[World, str]
) -> None:
    world, stream = reconciled
    first = world.sync(engine, world.streams_for(stream))[stream]
    assert (first.status, first.reconciled) == ("ok", 0), first.error
    before = _deleted_ids(engine, world, stream)
    gone = VANISH[(world.connector.source, stream)](world.vendor)
    world.now += timedelta(days=1)
    second = world.sync(engine, world.streams_for(stream))[stream]
    assert (second.status, second.reconciled) == ("ok", 1), second.error
    assert _deleted_ids(engine, world, stream) == before | {gone}
    world.now += timedelta(days=1)
    third = world.sync(engine, world.streams_for(stream))[stream]
    assert (third.status, third.reconciled) == ("ok", 0), third.error
    assert _deleted_ids(engine, world, stream) == before | {gone}


def test_a_listing_that_stops_part_way_applies_no_delete(
    engine: Engine, reconciled: tuple[World, str]
) -> None:
    world, stream = reconciled
    world.sync(engine, world.streams_for(stream))
    before = _deleted_ids(engine, world, stream)
    VANISH[(world.connector.source, stream)](world.vendor)
    world.vendor.stuck.add(stream)
    world.now += timedelta(days=1)
    result = world.sync(engine, world.streams_for(stream))[stream]
    assert result.status == "failed"
    assert result.reconciled == 0
    assert _deleted_ids(engine, world, stream) == before
