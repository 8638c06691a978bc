"""Delete reconciliation in the engine, on a toy source whose listing shows every company.

A complete listing soft-deletes the live rows it no longer shows, and only those; a listing
that fails or dies part-way deletes nothing; a listing that shows too little of the store is
refused, loudly; reconciles follow the source's cadence; a second run changes nothing; a
record that comes back is live again. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlmodel import Session

from connectors.base import (
    Connector,
    Json,
    Reconcile,
    ReconcilePolicy,
    Record,
    Request,
    StartContext,
    StreamSpec,
)
from connectors.errors import RetriableError
from connectors.paginators import CursorAfterPaginator
from connectors.sync import (
    REFUSED,
    StreamResult,
    SyncOptions,
    SyncSummary,
    reconcile_state_key,
    sync_connector,
)
from settings import ConfigError, SourceConfig, load_sources_file
from store.db import session_scope
from store.models import ExternalLink, SurveyResponse, SyncState
from store.upsert import bulk_upsert

T0 = datetime(2025, 6, 10, 12, tzinfo=UTC)
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)
SOURCE = "toy"


class Killed(BaseException):
    """What a SIGKILL looks like from inside: nothing after this point runs."""


@dataclass
class ToyVendor:
    """Companies listed in id order, `page_size` a page, `paging.next.after` to the next."""

    companies: dict[str, str | None] = field(default_factory=dict)
    """id -> name; a company without a name cannot be mapped."""
    page_size: int = 2
    fail_on_page: int | None = None
    failure: BaseException | None = None
    queries: list[StartContext] = field(default_factory=list)

    def fetch(self, request: Request) -> Json:
        start = int(request.params.get("after", 0))
        if self.fail_on_page == start // self.page_size + 1 and self.failure is not None:
            raise self.failure
        ids = sorted(self.companies)
        page = [self._item(i) for i in ids[start : start + self.page_size]]
        body: Json = {"items": page}
        if start + self.page_size < len(ids):
            body["paging"] = {"next": {"after": str(start + self.page_size)}}
        return body

    def _item(self, ident: str) -> Json:
        name = self.companies[ident]
        return {"id": ident} if name is None else {"id": ident, "name": name}

    def close(self) -> None:
        return None


def _company(raw: Mapping[str, Any]) -> list[Record]:
    values = {"external_id": raw["id"], "kind": "company", "name": raw["name"], "deleted_at": None}
    return [Record(ExternalLink, values)]


def _toy(vendor: ToyVendor, policy: ReconcilePolicy | None = None) -> Connector:
    def query(ctx: StartContext) -> dict[str, Any] | None:
        vendor.queries.append(ctx)
        return {}

    spec = StreamSpec(
        name="companies",
        path="/companies",
        query=query,
        records_key="items",
        paginator=CursorAfterPaginator,
        mapper=_company,
        reconcile=Reconcile(ExternalLink, {"kind": "company"}),
    )
    return Connector(SOURCE, (spec,), open=lambda: vendor, reconcile=policy or ReconcilePolicy())


def _sync(engine: Engine, connector: Connector, at: datetime) -> StreamResult:
    [result] = sync_connector(engine, connector, options=SyncOptions(clock=lambda: at))
    return result


def _deleted(engine: Engine, source: str = SOURCE) -> dict[str, datetime | None]:
    """external_id -> deleted_at of the source's company links."""
    with Session(engine) as session:
        rows = session.execute(select(ExternalLink).where(ExternalLink.source == source))
        return {r.external_id: r.deleted_at for r in rows.scalars()}


def _last_reconcile(engine: Engine) -> str | None:
    with Session(engine) as session:
        state = session.get(SyncState, (SOURCE, reconcile_state_key("companies")))
    return None if state is None else state.cursor


def _vendor(count: int = 4) -> ToyVendor:
    return ToyVendor({f"c{n}": f"Company {n}" for n in range(1, count + 1)})


def _seed(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with session_scope(engine) as session:
        bulk_upsert(session, ExternalLink, rows)


# A complete listing -------------------------------------------------------------------------


def test_a_complete_listing_soft_deletes_what_it_no_longer_shows_and_only_that(
    engine: Engine,
) -> None:
    vendor = _vendor()
    toy = _toy(vendor)
    base = {"kind": "company", "deleted_at": None}
    _seed(
        engine,
        [
            {"source": "other", "external_id": "c2", **base},  # another source
            {"source": SOURCE, "external_id": "cus_1", **base, "kind": "customer"},  # unscoped
            {"source": SOURCE, "external_id": "gone", **base, "deleted_at": LONG_AGO},
        ],
    )
    first = _sync(engine, toy, T0)
    assert (first.status, first.records, first.reconciled) == ("ok", 4, 0)
    assert _last_reconcile(engine) == T0.isoformat()

    del vendor.companies["c2"], vendor.companies["c4"]
    later = T0 + timedelta(hours=25)
    second = _sync(engine, toy, later)
    assert (second.status, second.records, second.reconciled) == ("ok", 2, 2)
    assert _deleted(engine) == {
        "c1": None,
        "c2": later,
        "c3": None,
        "c4": later,
        "cus_1": None,
        "gone": LONG_AGO,
    }
    assert _deleted(engine, "other") == {"c2": None}
    assert _last_reconcile(engine) == later.isoformat()
    summary = SyncSummary(streams=[first, second])
    assert summary.ok
    assert summary.reconciled_by_stream() == {(SOURCE, "companies"): 2}


def test_a_second_reconcile_changes_nothing(engine: Engine) -> None:
    vendor = _vendor()
    toy = _toy(vendor)
    _sync(engine, toy, T0)
    del vendor.companies["c3"]
    deleted_at = T0 + timedelta(days=1)
    assert _sync(engine, toy, deleted_at).reconciled == 1
    again = _sync(engine, toy, T0 + timedelta(days=2))
    assert (again.status, again.reconciled) == ("ok", 0)
    assert _deleted(engine)["c3"] == deleted_at, "the first delete time stays"


def test_a_record_that_comes_back_is_live_again(engine: Engine) -> None:
    vendor = _vendor()
    toy = _toy(vendor)
    _sync(engine, toy, T0)
    name = vendor.companies.pop("c1")
    _sync(engine, toy, T0 + timedelta(days=1))
    assert _deleted(engine)["c1"] is not None
    vendor.companies["c1"] = name  # restored at the vendor
    back = _sync(engine, toy, T0 + timedelta(days=1, hours=1))  # no reconcile due: the upsert
    assert back.reconciled == 0
    assert _deleted(engine)["c1"] is None


def test_a_listed_record_that_cannot_be_mapped_is_not_deleted(engine: Engine) -> None:
    vendor = _vendor()
    toy = _toy(vendor)
    _sync(engine, toy, T0)
    vendor.companies["c2"] = None  # still at the vendor, in a shape the mapper refuses
    del vendor.companies["c3"]
    result = _sync(engine, toy, T0 + timedelta(days=1))
    assert (result.quarantined, result.reconciled) == (1, 1)
    assert {k for k, at in _deleted(engine).items() if at is not None} == {"c3"}


def test_declarations_stay_hashable_values() -> None:
    assert hash(Reconcile(ExternalLink, {"kind": "company"})) == hash(
        Reconcile(ExternalLink, {"kind": "company"})
    )
    assert hash(_toy(_vendor()).streams[0])


def test_ids_past_the_sqlite_variable_limit_are_deleted_in_a_few_statements(
    engine: Engine,
) -> None:
    vendor = ToyVendor({f"c{n:05d}": "x" for n in range(2_500)}, page_size=500)
    toy = _toy(vendor)
    _sync(engine, toy, T0)
    vendor.companies = {k: v for k, v in vendor.companies.items() if int(k[1:]) % 5 != 0}
    updates: list[str] = []

    def spy(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE EXTERNAL_LINKS"):
            updates.append(statement)

    event.listen(engine, "before_cursor_execute", spy)
    try:
        result = _sync(engine, toy, T0 + timedelta(days=1))
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert result.reconciled == 500
    assert len(updates) == 1, "one statement per 500 ids, never one per row"
    gone = [k for k, at in _deleted(engine).items() if at is not None]
    assert len(gone) == 500
    assert all(int(k[1:]) % 5 == 0 for k in gone)


# A listing that does not finish -----------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [RetriableError("the vendor stayed down"), RuntimeError("a bug"), Killed()],
    ids=["vendor-error", "bug", "killed"],
)
def test_a_listing_that_stops_part_way_deletes_nothing(
    engine: Engine, failure: BaseException
) -> None:
    vendor = _vendor(6)
    toy = _toy(vendor)
    _sync(engine, toy, T0)
    del vendor.companies["c6"]
    vendor.fail_on_page, vendor.failure = 2, failure
    later = T0 + timedelta(days=1)
    try:
        result = _sync(engine, toy, later)
        assert result.status == "failed"
        assert result.reconciled == 0
    except (RuntimeError, Killed):
        pass  # a bug is re-raised; a kill ends everything
    assert all(at is None for at in _deleted(engine).values())
    assert _last_reconcile(engine) == T0.isoformat(), "the reconcile is still due"

    vendor.fail_on_page = None  # the next complete listing does it
    done = _sync(engine, toy, later + timedelta(minutes=5))
    assert (done.status, done.reconciled) == ("ok", 1)
    assert _deleted(engine)["c6"] is not None


def test_a_stream_with_nothing_to_list_does_not_reconcile(engine: Engine) -> None:
    vendor = _vendor()
    toy = _toy(vendor)
    _sync(engine, toy, T0)
    vendor.companies.clear()
    [spec] = toy.streams
    idle = replace(toy, streams=(replace(spec, query=lambda _ctx: None),))
    result = _sync(engine, idle, T0 + timedelta(days=2))
    assert (result.status, result.pages, result.reconciled) == ("ok", 0, 0)
    assert all(at is None for at in _deleted(engine).values())
    assert _last_reconcile(engine) == T0.isoformat()


# The guard ---------------------------------------------------------------------------------


def test_a_listing_that_shows_too_little_is_refused_loudly(engine: Engine) -> None:
    vendor = _vendor()
    toy = _toy(vendor)
    _sync(engine, toy, T0)
    vendor.companies.clear()  # a token that lost its scope: an empty, successful answer
    result = _sync(engine, toy, T0 + timedelta(days=1))
    assert result.status == REFUSED
    assert result.reconciled == 0
    assert result.error is not None
    assert "showed 0 of 4 live rows (0%)" in result.error
    assert "reconcile_min_share" in result.error
    assert SyncSummary(streams=[result]).failures == [result]
    assert all(at is None for at in _deleted(engine).values())
    assert _last_reconcile(engine) == T0.isoformat(), "refused: still due"
    retry = _sync(engine, toy, T0 + timedelta(days=1, hours=1))
    assert retry.status == REFUSED, "and refused again on the next sync, until fixed"


def test_the_guard_share_is_configurable(engine: Engine) -> None:
    vendor = _vendor()
    _sync(engine, _toy(vendor), T0)
    del vendor.companies["c1"], vendor.companies["c2"], vendor.companies["c3"]
    strict = _sync(engine, _toy(vendor, ReconcilePolicy(min_share=0.3)), T0 + timedelta(days=1))
    assert strict.status == REFUSED  # 1 of 4 is 25%
    lenient = ReconcilePolicy(min_share=0.25)
    result = _sync(engine, _toy(vendor, lenient), T0 + timedelta(days=1))
    assert (result.status, result.reconciled) == ("ok", 3)


def test_exactly_the_guard_share_is_enough(engine: Engine) -> None:
    vendor = _vendor()
    _sync(engine, _toy(vendor), T0)
    del vendor.companies["c1"], vendor.companies["c2"]
    result = _sync(engine, _toy(vendor), T0 + timedelta(days=1))
    assert (result.status, result.reconciled) == ("ok", 2)


# The cadence -------------------------------------------------------------------------------


def test_reconciles_follow_the_cadence(engine: Engine) -> None:
    vendor = _vendor()
    toy = _toy(vendor, ReconcilePolicy(every=timedelta(hours=6)))
    _sync(engine, toy, T0)
    del vendor.companies["c4"]
    early = _sync(engine, toy, T0 + timedelta(hours=5))
    assert (early.status, early.reconciled) == ("ok", 0)
    assert _deleted(engine)["c4"] is None
    due = _sync(engine, toy, T0 + timedelta(hours=6))
    assert due.reconciled == 1
    assert [ctx.reconcile for ctx in vendor.queries] == [True, False, True]


def test_every_zero_hours_reconciles_on_every_sync(engine: Engine) -> None:
    vendor = _vendor()
    toy = _toy(vendor, ReconcilePolicy(every=timedelta(0)))
    _sync(engine, toy, T0)
    del vendor.companies["c1"]
    assert _sync(engine, toy, T0).reconciled == 1


def test_an_unreadable_reconcile_time_makes_a_reconcile_due(engine: Engine) -> None:
    vendor = _vendor()
    toy = _toy(vendor)
    _sync(engine, toy, T0)
    with session_scope(engine) as session:
        state = {"source": SOURCE, "stream": reconcile_state_key("companies")}
        row = {**state, "cursor": "not a time", "updated_at": T0}
        bulk_upsert(session, SyncState, [row], keys=("source", "stream"))
    del vendor.companies["c1"]
    assert _sync(engine, toy, T0 + timedelta(minutes=1)).reconciled == 1
    assert _last_reconcile(engine) == (T0 + timedelta(minutes=1)).isoformat()


# Declarations and settings -----------------------------------------------------------------


def test_only_tables_with_soft_deletes_can_be_reconciled() -> None:
    with pytest.raises(ValueError, match="survey_responses cannot be reconciled: no deleted_at"):
        Reconcile(SurveyResponse)
    with pytest.raises(ValueError, match="no colour"):
        Reconcile(ExternalLink, {"colour": "red"})


@pytest.mark.parametrize(
    ("extra", "every", "share"),
    [
        ({}, timedelta(hours=24), 0.5),
        ({"reconcile_every_hours": 6}, timedelta(hours=6), 0.5),
        ({"reconcile_every_hours": 0.5, "reconcile_min_share": 0.8}, timedelta(minutes=30), 0.8),
        ({"reconcile_every_hours": 0, "reconcile_min_share": 0}, timedelta(0), 0.0),
    ],
)
def test_the_policy_comes_from_the_sources_file(
    extra: dict[str, Any], every: timedelta, share: float
) -> None:
    policy = ReconcilePolicy.from_config("toy", SourceConfig.model_validate(extra))
    assert (policy.every, policy.min_share) == (every, share)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"reconcile_every_hours": -1}, r"\[toy\] reconcile_every_hours must be a number 0 or"),
        ({"reconcile_every_hours": "daily"}, "not 'daily'"),
        ({"reconcile_every_hours": float("inf")}, "not inf"),
        ({"reconcile_min_share": 1.5}, "reconcile_min_share must be a number between 0 and 1"),
        ({"reconcile_min_share": True}, "not True"),
    ],
)
def test_a_bad_policy_value_names_the_key(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ReconcilePolicy.from_config("toy", SourceConfig.model_validate(extra))


def test_the_example_sources_file_sets_valid_reconcile_options() -> None:
    example = Path(__file__).parents[2] / "sources.example.toml"
    sources = load_sources_file(example)
    stripe = ReconcilePolicy.from_config("stripe", sources["stripe"])
    assert (stripe.every, stripe.min_share) == (timedelta(hours=24), 0.5)
    intercom = ReconcilePolicy.from_config("intercom", sources["intercom"])
    assert intercom.every == timedelta(days=7)
