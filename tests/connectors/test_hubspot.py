"""HubSpot: mappers on documented shapes, search requests, the 10,000 cap, rollups, auth."""

from __future__ import annotations

from datetime import UTC, date, datetime

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from connectors.errors import AuthError, MappingError, PagingError
from connectors.hubspot import map_company, map_deal, map_owner
from store.models import Account, Csm, Opportunity, QuarantinedRecord, SyncRun, Team
from tests.connectors.fakes import load
from tests.connectors.worlds import hubspot_world


def _rows(engine: Engine, model: type) -> list:  # type: ignore[type-arg]
    with Session(engine) as session:
        return list(session.execute(select(model)).scalars())


def test_owner_maps_to_csm_and_teams() -> None:
    csm, *teams = map_owner(load("hubspot", "owners.json")[1])
    assert csm.model is Csm
    assert csm.values["email"] == "ben.okafor@northwind-saas.example"
    assert csm.values["name"] == "Ben Okafor"
    assert csm.values["team_external_id"] == "7"
    assert csm.values["deleted_at"] is None
    assert [(t.model, t.values["external_id"], t.values["name"]) for t in teams] == [
        (Team, "8", "Mid-Market CS"),
        (Team, "7", "Enterprise CS"),
    ]


def test_owner_without_email_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="no email"):
        map_owner({"id": "900", "type": "QUEUE", "teams": []})


def test_company_maps_to_account() -> None:
    [account] = map_company(load("hubspot", "companies.json")[0])
    assert account.model is Account
    assert account.values == {
        "external_id": "5001",
        "name": "Acme Corp",
        "domain": "acme.com",
        "owner_external_id": "101",
        "lifecycle_stage": "customer",
        "created_at": datetime(2024, 1, 15, 8, tzinfo=UTC),
        "updated_at": datetime(2025, 6, 1, 10, tzinfo=UTC),
        "deleted_at": None,
    }
    [initech] = map_company(load("hubspot", "companies.json")[2])
    assert initech.values["domain"] == "initech.com"


def test_archived_company_is_soft_deleted_and_segment_is_configurable() -> None:
    raw = load("hubspot", "archived_companies.json")[0]
    raw["properties"]["tier"] = "enterprise"
    [account] = map_company(raw, segment_property="tier")
    assert account.values["deleted_at"] == datetime(2025, 3, 1, 8, tzinfo=UTC)
    assert account.values["segment"] == "enterprise"


def test_deal_maps_to_opportunity_with_its_company() -> None:
    raw = load("hubspot", "deals.json")[1]
    raw["associations"] = {
        "companies": {"results": load("hubspot", "deal_companies.json")[raw["id"]]}
    }
    [opp] = map_deal(raw)
    assert opp.model is Opportunity
    assert opp.values["account_ref"] == "5001"
    assert opp.values["kind"] == "renewal"
    assert opp.values["amount_minor"] == 13_200_050
    assert opp.values["arr_minor"] == 13_200_050
    assert opp.values["close_date"] == date(2026, 7, 1)
    assert (opp.values["is_closed"], opp.values["is_won"]) == (False, False)


def test_search_requests_properties_sorted_ascending_from_the_cursor(engine: Engine) -> None:
    world = hubspot_world()
    world.sync(engine, ["companies"])
    first = world.vendor.search_bodies[0]
    assert first["filterGroups"] == [
        {"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}
    ]
    assert first["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert {"name", "domain", "hubspot_owner_id", "createdate"} <= set(first["properties"])
    assert first["limit"] == 2
    world.vendor.search_bodies.clear()
    world.sync(engine, ["companies"])
    since = world.vendor.search_bodies[0]["filterGroups"][0]["filters"][0]["value"]
    lookback = datetime(2025, 6, 5, 6, 50, tzinfo=UTC)  # last change minus ten minutes
    assert since == str(int(lookback.timestamp() * 1000))


def test_each_search_page_opens_a_window_at_the_last_timestamp(engine: Engine) -> None:
    world = hubspot_world()
    result = world.sync(engine, ["companies"])["companies"]
    assert result.status == "ok", result.error
    assert len(_rows(engine, Account)) == 5
    bodies = world.vendor.search_bodies
    assert all("after" not in b for b in bodies)  # no offsets to shift under a changing list
    windows = [int(b["filterGroups"][0]["filters"][0]["value"]) for b in bodies]
    assert windows == sorted(windows)
    assert len(set(windows)) == len(windows)


def test_a_company_changing_mid_sync_shifts_no_other_out_of_reach(engine: Engine) -> None:
    world = hubspot_world()
    vendor = world.vendor
    serve = vendor.serve
    first = min(vendor.companies, key=lambda c: c["properties"]["hs_lastmodifieddate"])

    def changing(route: str, request: httpx.Request) -> httpx.Response:
        response = serve(route, request)
        if route == "companies" and len(vendor.search_bodies) == 1:
            first["properties"]["hs_lastmodifieddate"] = "2025-06-10T11:00:00.000Z"
        return response

    vendor.serve = changing
    result = world.sync(engine, ["companies"])["companies"]
    assert result.status == "ok", result.error
    assert {a.external_id for a in _rows(engine, Account)} == {c["id"] for c in vendor.companies}


def test_search_cap_on_one_timestamp_is_a_paging_error(engine: Engine) -> None:
    world = hubspot_world(result_cap=2)
    for company in world.vendor.companies:
        company["properties"]["hs_lastmodifieddate"] = "2025-06-01T10:00:00.000Z"
    result = world.sync(engine, ["companies"])["companies"]
    assert isinstance(result.exception, PagingError)


def test_full_sync_soft_deletes_archives_and_rolls_up_deals(engine: Engine) -> None:
    results = hubspot_world().sync(engine)
    assert all(r.status == "ok" for r in results.values())
    reads = {r.stream: r.records for r in results.values()}
    assert (reads["owners"], reads["archived_companies"], reads["archived_deals"]) == (3, 3, 3)
    # each search page opens a window at the last timestamp read, which it reads again
    assert reads["companies"] >= 5
    assert reads["deals"] >= 5
    assert (len(_rows(engine, Account)), len(_rows(engine, Opportunity))) == (8, 8)
    accounts = {a.external_id: a for a in _rows(engine, Account)}
    assert sorted(a for a, row in accounts.items() if row.deleted_at) == ["4001", "4002", "4003"]
    assert accounts["5001"].arr_minor == 12_000_000
    assert accounts["5001"].renewal_date == date(2026, 3, 15)
    assert accounts["5002"].arr_minor == 2_400_000
    assert (accounts["5001"].currency, accounts["5002"].currency) == ("USD", "EUR")  # the deal's
    assert accounts["5002"].renewal_date is None
    assert accounts["5005"].owner_external_id is None
    opps = {o.external_id: o for o in _rows(engine, Opportunity)}
    assert opps["9003"].currency == "EUR"
    assert opps["9005"].account_ref is None
    assert opps["8001"].deleted_at == datetime(2025, 3, 1, 8, tzinfo=UTC)
    assert {t.external_id for t in _rows(engine, Team)} == {"7", "8"}


def test_a_bad_record_is_quarantined_and_the_sync_goes_on(engine: Engine) -> None:
    world = hubspot_world()
    world.vendor.owners.insert(1, {"id": "104", "type": "QUEUE", "archived": False, "teams": []})
    world.vendor.companies[2]["properties"]["createdate"] = "last tuesday"
    results = world.sync(engine, ["owners", "companies"])
    assert results["owners"].status == results["companies"].status == "ok"
    assert (results["owners"].records, results["owners"].quarantined) == (3, 1)
    assert results["companies"].quarantined >= 1
    assert len(_rows(engine, Account)) == 4
    quarantined = {q.record_key: q for q in _rows(engine, QuarantinedRecord)}
    assert quarantined["104"].reason == "owner 104 has no email"
    assert quarantined["104"].payload["type"] == "QUEUE"
    assert "last tuesday" in quarantined["5003"].reason
    assert len(_rows(engine, Csm)) == 3

    world.vendor.companies[2]["properties"]["createdate"] = "2024-03-01T08:00:00.000Z"
    world.vendor.companies[2]["properties"]["hs_lastmodifieddate"] = "2025-06-09T00:00:00.000Z"
    world.sync(engine, ["companies"])
    fixed = {q.record_key: q for q in _rows(engine, QuarantinedRecord)}["5003"]
    assert fixed.resolved_at is not None


def test_wrong_token_is_an_auth_error_naming_the_variable_without_the_secret(
    engine: Engine,
) -> None:
    secret = "pat-na1-RECOGNISABLE-SECRET-0042"
    results = hubspot_world(token=secret).sync(engine)
    assert list(results) == ["owners"]  # the source stops at the first refusal
    error = results["owners"].exception
    assert isinstance(error, AuthError)
    message = str(error)
    assert message == "hubspot rejected the token (HTTP 401): check HUBSPOT__TOKEN in .env"
    assert "\n" not in message
    assert secret not in message
    [run] = _rows(engine, SyncRun)
    assert run.status == "failed"
    assert run.error == message
