"""HubSpot traits carry their history: each value seen when it was set in HubSpot."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from connectors import hubspot
from connectors.base import table_of
from connectors.http import ClientOptions
from connectors.sync import StreamResult, SyncOptions, sync_connector
from settings import HubSpotSettings, Settings
from store.models import Account, AccountTrait, SyncState
from store.traits import latest_traits
from tests.connectors.fake_hubspot import TOKEN, FakeHubSpot

NOW = datetime(2025, 6, 10, 12, tzinfo=UTC)
SOURCES = """
[hubspot.traits]
plan = "plan"
employees = { property = "numberofemployees", kind = "number" }
"""
PLAN = [
    ("starter", "2024-01-15T08:00:00.000Z"),
    ("growth", "2024-09-01T10:30:00.000Z"),
    ("enterprise", "2025-03-01T14:00:00.000Z"),
]


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _settings(tmp_path: Path, sources: str = SOURCES) -> Settings:
    path = tmp_path / "sources.toml"
    path.write_text(sources)
    return Settings(
        _env_file=None, hubspot=HubSpotSettings(token=SecretStr(TOKEN)), sources_file=path
    )


def _sync(
    engine: Engine, settings: Settings, vendor: FakeHubSpot, **options: object
) -> dict[str, StreamResult]:
    ticks = itertools.count(0.0, 1.0)
    client = ClientOptions(
        transport=vendor.transport(), sleep=lambda _s: None, monotonic=lambda: next(ticks)
    )
    connector = hubspot.build(settings, client, hubspot.HubSpotOptions(history_limit=2))
    results = sync_connector(
        engine,
        connector,
        options=SyncOptions(clock=lambda: NOW, **options),  # type: ignore[arg-type]
    )
    return {r.stream: r for r in results}


def _vendor() -> FakeHubSpot:
    vendor = FakeHubSpot()
    first, second = vendor.companies[0], vendor.companies[1]
    first["properties"].update(plan="enterprise", numberofemployees="120")
    vendor.history[first["id"]] = {"plan": PLAN}
    second["properties"].update(plan="growth", numberofemployees="45")
    vendor.history[second["id"]] = {
        "numberofemployees": [("lots", "2024-02-01T00:00:00.000Z"), ("45", "2024-06-01T00:00:00Z")]
    }
    archived = vendor.archived_companies[0]
    archived["properties"].update(plan="starter")
    vendor.history[archived["id"]] = {
        "plan": [("growth", "2024-03-01T00:00:00.000Z"), ("starter", "2024-11-01T00:00:00.000Z")]
    }
    return vendor


def _ids(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        accounts = table_of(Account).c
        rows = session.execute(select(accounts.external_id, accounts.id)).all()
    return {external_id: account_id for external_id, account_id in rows}


Row = tuple[str | None, float | None, datetime]


def _rows(engine: Engine, account_id: int, name: str) -> list[Row]:
    traits = table_of(AccountTrait).c
    with Session(engine) as session:
        rows = session.execute(
            select(traits.text, traits.number, traits.seen_at)
            .where(traits.account_id == account_id, traits.name == name)
            .order_by(traits.seen_at)
        ).all()
    return [(text, number, _aware(seen)) for text, number, seen in rows]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(AccountTrait)) or 0)


def test_each_value_is_seen_when_it_was_set(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vendor = _vendor()
    first, second = vendor.companies[0]["id"], vendor.companies[1]["id"]
    with caplog.at_level(logging.WARNING):
        results = _sync(engine, _settings(tmp_path), vendor)
    assert all(r.status == "ok" for r in results.values()), [r.error for r in results.values()]
    ids = _ids(engine)

    assert _rows(engine, ids[first], "plan") == [(v, None, _at(at)) for v, at in PLAN]
    with Session(engine) as session:
        between = latest_traits(session, ["plan"], datetime(2024, 12, 1, tzinfo=UTC))
        today = latest_traits(session, ["plan"], NOW)
    assert between["plan"][ids[first]].text == "growth"
    assert today["plan"][ids[first]].text == "enterprise"
    # no history kept for a property: its current value, set when the company was created
    created = _at(vendor.companies[1]["properties"]["createdate"])
    assert _rows(engine, ids[second], "plan") == [("growth", None, created)]
    # archived companies keep theirs too
    assert [r[0] for r in _rows(engine, ids[vendor.archived_companies[0]["id"]], "plan")] == [
        "growth",
        "starter",
    ]

    # an unparseable past value is skipped and logged; the values around it are kept
    assert _rows(engine, ids[second], "employees") == [
        (None, 45.0, datetime(2024, 6, 1, tzinfo=UTC))
    ]
    assert any(
        "employees" in r.getMessage() and second in r.getMessage() and "lots" in r.getMessage()
        for r in caplog.records
    )

    lists = [p for p in vendor.list_params if "propertiesWithHistory" in p]
    assert lists
    assert all(int(p["limit"]) <= 50 for p in lists)
    assert {p["propertiesWithHistory"] for p in lists} == {"plan,numberofemployees"}
    assert {p.get("archived") for p in lists} == {None, "true"}


def test_a_second_sync_and_a_backfill_write_nothing(engine: Engine, tmp_path: Path) -> None:
    vendor, settings = _vendor(), _settings(tmp_path)
    _sync(engine, settings, vendor)
    written, listed = _count(engine), len(vendor.list_params)

    results = _sync(engine, settings, vendor)
    assert _count(engine) == written
    assert results["company_history"].pages == 0  # listed already: the search keeps up
    assert len([p for p in vendor.list_params[listed:] if "propertiesWithHistory" in p]) == 0

    results = _sync(engine, settings, vendor, backfill_since=datetime(2020, 1, 1, tzinfo=UTC))
    assert results["company_history"].records == len(vendor.companies)
    assert _count(engine) == written


def test_a_change_after_the_listing_comes_from_the_search(engine: Engine, tmp_path: Path) -> None:
    vendor, settings = _vendor(), _settings(tmp_path)
    _sync(engine, settings, vendor)
    company = vendor.companies[0]
    company["properties"].update(plan="scale", hs_lastmodifieddate="2025-06-09T09:00:00.000Z")
    _sync(engine, settings, vendor)
    plans = _rows(engine, _ids(engine)[company["id"]], "plan")
    assert plans[-1] == ("scale", None, datetime(2025, 6, 9, 9, tzinfo=UTC))
    assert len(plans) == len(PLAN) + 1


def test_new_trait_properties_are_listed_again(engine: Engine, tmp_path: Path) -> None:
    vendor = _vendor()
    _sync(engine, _settings(tmp_path, '[hubspot.traits]\nplan = "plan"\n'), vendor)
    assert _rows(engine, _ids(engine)[vendor.companies[1]["id"]], "employees") == []
    results = _sync(engine, _settings(tmp_path), vendor)
    assert results["company_history"].records == len(vendor.companies)
    rows = _rows(engine, _ids(engine)[vendor.companies[1]["id"]], "employees")
    assert rows == [(None, 45.0, datetime(2024, 6, 1, tzinfo=UTC))]


def test_a_listing_stopped_part_way_runs_again(engine: Engine, tmp_path: Path) -> None:
    vendor, settings = _vendor(), _settings(tmp_path)
    serve, served = vendor.serve, itertools.count()

    def failing(route: str, request: httpx.Request) -> httpx.Response:
        if route == "companies_list" and next(served) == 1:
            return httpx.Response(400, json={"status": "error", "message": "bad request"})
        return serve(route, request)

    vendor.serve = failing  # type: ignore[method-assign]
    results = _sync(engine, settings, vendor)
    assert results["company_history"].status == "failed"
    assert results["company_history"].pages == 1
    with Session(engine) as session:
        state = table_of(SyncState).c
        saved = session.scalar(select(state.cursor).where(state.stream == "company_history"))
    assert saved is None  # not listed to the end: the next sync lists again

    results = _sync(engine, settings, vendor)
    assert results["company_history"].status == "ok"
    first = _ids(engine)[vendor.companies[0]["id"]]
    assert _rows(engine, first, "plan") == [(v, None, _at(at)) for v, at in PLAN]
    written = _count(engine)
    _sync(engine, settings, vendor)
    assert _count(engine) == written


def test_without_traits_no_history_is_listed(tmp_path: Path) -> None:
    connector = hubspot.build(_settings(tmp_path, ""))
    assert not {s.name for s in connector.streams} & set(hubspot.HISTORY_STREAMS)


def test_a_company_with_a_broken_history_keeps_its_current_value(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vendor = _vendor()
    company = vendor.companies[0]
    vendor.history[company["id"]] = {"plan": [("growth", "last spring")]}
    with caplog.at_level(logging.WARNING):
        results = _sync(engine, _settings(tmp_path), vendor)
    assert all(r.status == "ok" for r in results.values())
    assert results["company_history"].quarantined == 0  # the search stream maps it
    assert any(company["id"] in r.getMessage() for r in caplog.records)
    modified = _at(company["properties"]["hs_lastmodifieddate"])
    assert _rows(engine, _ids(engine)[company["id"]], "plan") == [("enterprise", None, modified)]
