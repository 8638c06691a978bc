"""A stop request (SIGTERM to `health-agent run`) ends a sync between pages, losing nothing.

The page being fetched when the stop comes is written with its cursor; no further page is
fetched, no later stream starts, and an unfinished full listing deletes nothing. The next
sync resumes from the committed cursor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from connectors.base import (
    Connector,
    CursorKind,
    Json,
    Page,
    Reconcile,
    Record,
    Request,
    StartContext,
    StreamSpec,
)
from connectors.paginators import CursorAfterPaginator
from connectors.sync import STOPPED, SyncOptions, sync_connector
from store import stopping
from store.db import session_scope
from store.models import ExternalLink, SyncRun, SyncState
from store.upsert import bulk_upsert

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SOURCE = "toy"


@pytest.fixture(autouse=True)
def _no_stop_left_behind() -> Iterator[None]:
    stopping.reset()
    yield
    stopping.reset()


@dataclass
class Vendor:
    """Companies in id order, two a page; `after` is the last id of the page before."""

    ids: list[str]
    stop_on_page: int | None = None
    """Serving this page (1-based), the process is asked to stop, as a SIGTERM would."""
    served: list[tuple[str, str | None]] = field(default_factory=list)

    def fetch(self, request: Request) -> Json:
        after = request.params.get("after")
        self.served.append((request.path, after))
        if request.path == "/notes":
            return {"items": []}
        rest = [i for i in self.ids if after is None or i > after]
        page = rest[:2]
        if self.stop_on_page == sum(path == "/companies" for path, _ in self.served):
            stopping.request_stop()
        body: Json = {"items": [{"id": i, "name": f"Company {i}"} for i in page]}
        if len(rest) > 2:
            body["paging"] = {"next": {"after": page[-1]}}
        return body

    def close(self) -> None:
        return None


def _company(raw: Mapping[str, Any]) -> list[Record]:
    values = {"external_id": raw["id"], "kind": "company", "name": raw["name"], "deleted_at": None}
    return [Record(ExternalLink, values)]


def _resume(ctx: StartContext) -> dict[str, Any]:
    return {} if ctx.reconcile or ctx.cursor is None else {"after": ctx.cursor}


def _last_id(page: Page) -> str | None:
    return str(page.records[-1]["id"]) if page.records else None


def _toy(vendor: Vendor) -> Connector:
    companies = StreamSpec(
        name="companies",
        path="/companies",
        query=_resume,
        records_key="items",
        paginator=CursorAfterPaginator,
        mapper=_company,
        cursor_kind=CursorKind.OPAQUE,
        cursor=_last_id,
        reconcile=Reconcile(ExternalLink, {"kind": "company"}),
    )
    notes = StreamSpec(
        name="notes",
        path="/notes",
        records_key="items",
        paginator=CursorAfterPaginator,
        mapper=_company,
    )
    return Connector(SOURCE, (companies, notes), open=lambda: vendor)


def _links(engine: Engine) -> dict[str, datetime | None]:
    with Session(engine) as session:
        rows = session.execute(select(ExternalLink).where(ExternalLink.source == SOURCE))
        return {r.external_id: r.deleted_at for r in rows.scalars()}


def test_a_stop_ends_the_sync_after_the_page_in_flight_and_the_next_run_resumes(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:  # a company the vendor no longer lists
        row = {"source": SOURCE, "external_id": "c0", "kind": "company", "deleted_at": None}
        bulk_upsert(session, ExternalLink, [row])
    vendor = Vendor([f"c{n}" for n in range(1, 8)], stop_on_page=2)
    toy = _toy(vendor)

    [companies] = sync_connector(engine, toy, options=SyncOptions(clock=lambda: T0))

    assert (companies.status, companies.pages, companies.records) == (STOPPED, 2, 4)
    assert vendor.served == [("/companies", None), ("/companies", "c2")], "no third page"
    assert _links(engine) == {"c0": None, "c1": None, "c2": None, "c3": None, "c4": None}, (
        "both pages are stored, and the unfinished listing deleted nothing"
    )
    with Session(engine) as session:
        state = session.get(SyncState, (SOURCE, "companies"))
        [run] = session.execute(select(SyncRun)).scalars()
    assert state is not None
    assert state.cursor == "c4"
    assert (run.status, run.pages, run.error) == (STOPPED, 2, "stop requested before its next page")
    assert run.finished_at is not None

    stopping.reset()  # the next run of the process
    vendor.stop_on_page = None
    vendor.served.clear()
    companies, notes = sync_connector(engine, toy, options=SyncOptions(clock=lambda: T0))
    assert (companies.status, notes.status) == ("ok", "ok")
    assert companies.reconciled == 1, "the listing ran to its end this time: c0 is deleted"
    assert _links(engine)["c0"] == T0
    assert [after for path, after in vendor.served if path == "/companies"] == [
        None,
        "c2",
        "c4",
        "c6",
    ]


def test_a_stop_before_a_stream_starts_leaves_it_for_the_next_run(engine: Engine) -> None:
    vendor = Vendor(["c1"])
    stopping.request_stop()
    assert sync_connector(engine, _toy(vendor)) == []
    assert vendor.served == []
    with Session(engine) as session:
        assert session.execute(select(SyncRun)).first() is None
