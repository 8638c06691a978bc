"""CRM custom fields read into account traits: HubSpot company properties, Salesforce fields."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from connectors import hubspot, salesforce
from connectors.http import ClientOptions
from connectors.sync import SyncOptions, sync_connector
from settings import (
    ConfigError,
    HubSpotSettings,
    SalesforceSettings,
    Settings,
    TraitField,
    load_sources_file,
)
from store.models import Account, AccountTrait
from store.traits import TraitValue, latest_traits
from tests.connectors.fake_hubspot import TOKEN, FakeHubSpot
from tests.connectors.fake_salesforce import CLIENT_ID, CLIENT_SECRET, FakeSalesforce

NOW = datetime(2025, 6, 10, 12, tzinfo=UTC)
LATER = NOW + timedelta(days=365)

HUBSPOT_SOURCES = """
[hubspot.traits]
contract_type = "contract_type"
employees = { property = "numberofemployees", kind = "number" }
"""


def _hubspot(tmp_path: Path, sources: str = HUBSPOT_SOURCES, **cfg: Any) -> Settings:
    path = tmp_path / "sources.toml"
    path.write_text(sources)
    return Settings(
        _env_file=None,
        hubspot=HubSpotSettings(token=SecretStr(TOKEN), **cfg),
        sources_file=path,
    )


def _sync_hubspot(engine: Engine, settings: Settings, vendor: FakeHubSpot) -> None:
    ticks = itertools.count(0.0, 1.0)
    client = ClientOptions(
        transport=vendor.transport(), sleep=lambda _s: None, monotonic=lambda: next(ticks)
    )
    results = sync_connector(
        engine, hubspot.build(settings, client), options=SyncOptions(clock=lambda: NOW)
    )
    assert all(r.status == "ok" for r in results), [r.error for r in results]


def _ids(engine: Engine, source: str) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.execute(select(Account).where(Account.source == source)).scalars()
        return {a.external_id: a.id for a in rows if a.id is not None}


def _count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(AccountTrait)) or 0)


def test_the_traits_setting_reads_both_shapes(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(HUBSPOT_SOURCES + '\n[salesforce.traits]\nplan = "Plan__c"\n')
    sources = load_sources_file(path)
    assert sources["hubspot"].traits == {
        "contract_type": "contract_type",
        "employees": TraitField(property="numberofemployees", kind="number"),
    }
    assert sources["salesforce"].traits == {"plan": "Plan__c"}
    path.write_text('[hubspot.traits]\nx = { property = "p", kind = "money" }\n')
    with pytest.raises(ConfigError, match=r"hubspot\.traits\.x"):
        load_sources_file(path)


def test_hubspot_company_properties_become_traits(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vendor = FakeHubSpot()
    first, second = vendor.companies[0], vendor.companies[1]
    first["properties"].update(contract_type="annual", numberofemployees="120")
    second["properties"].update(contract_type="monthly", numberofemployees="lots")
    settings = _hubspot(tmp_path)
    with caplog.at_level(logging.WARNING):
        _sync_hubspot(engine, settings, vendor)
    assert any(
        "employees" in r.getMessage() and second["id"] in r.getMessage() for r in caplog.records
    )
    assert all(search["properties"] for search in vendor.search_bodies)
    assert "numberofemployees" in vendor.search_bodies[0]["properties"]
    ids = _ids(engine, "hubspot")
    with Session(engine) as session:
        traits = latest_traits(session, ["contract_type", "employees"], LATER)
    assert traits["contract_type"][ids[first["id"]]] == TraitValue("category", None, "annual")
    assert traits["contract_type"][ids[second["id"]]].text == "monthly"
    assert traits["employees"] == {ids[first["id"]]: TraitValue("number", 120.0, None)}

    written = _count(engine)
    _sync_hubspot(engine, settings, vendor)  # nothing changed
    assert _count(engine) == written

    first["properties"].update(
        contract_type="multi-year", hs_lastmodifieddate="2025-06-09T09:00:00.000Z"
    )
    _sync_hubspot(engine, settings, vendor)
    assert _count(engine) == written + 1
    with Session(engine) as session:
        before = latest_traits(session, ["contract_type"], datetime(2025, 6, 9, tzinfo=UTC))
        after = latest_traits(session, ["contract_type"], LATER)
    assert before["contract_type"][ids[first["id"]]].text == "annual"
    assert after["contract_type"][ids[first["id"]]].text == "multi-year"


def test_an_undeclared_kind_follows_the_stored_one(engine: Engine, tmp_path: Path) -> None:
    vendor = FakeHubSpot()
    vendor.companies[0]["properties"].update(tier="3")
    settings = _hubspot(tmp_path, "", traits={"tier": "tier"})  # from the settings object
    _sync_hubspot(engine, settings, vendor)
    ids = _ids(engine, "hubspot")
    with Session(engine) as session:
        tier = latest_traits(session, ["tier"], LATER)["tier"]
    assert tier[ids[vendor.companies[0]["id"]]] == TraitValue("number", 3.0, None)
    vendor.companies[0]["properties"].update(
        tier="gold", hs_lastmodifieddate="2025-06-09T09:00:00.000Z"
    )
    vendor.companies[1]["properties"].update(
        tier="4", hs_lastmodifieddate="2025-06-09T09:00:00.000Z"
    )
    _sync_hubspot(engine, settings, vendor)  # "gold" is not a number: skipped, logged
    with Session(engine) as session:
        tier = latest_traits(session, ["tier"], LATER)["tier"]
    assert tier[ids[vendor.companies[0]["id"]]].number == 3.0
    assert tier[ids[vendor.companies[1]["id"]]].number == 4.0


def test_a_bad_trait_name_is_a_config_error(tmp_path: Path) -> None:
    settings = _hubspot(tmp_path, "", traits={"x" * 500: "p"})
    with pytest.raises(ConfigError, match=r"\[hubspot\.traits\].*at most 100"):
        hubspot.build(settings)


def _salesforce(tmp_path: Path, sources: str) -> Settings:
    path = tmp_path / "sources.toml"
    path.write_text(sources)
    cfg = SalesforceSettings(client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET))
    return Settings(_env_file=None, salesforce=cfg, sources_file=path)


def test_salesforce_account_fields_become_traits(engine: Engine, tmp_path: Path) -> None:
    vendor = FakeSalesforce()
    accounts = vendor.objects["Account"]
    for number, account in enumerate(accounts):
        account["Plan__c"] = "enterprise" if number == 0 else "team"
        account["Seats__c"] = 10 * (number + 1)
        account["Autopay__c"] = number % 2 == 0
    sources = (
        '[salesforce.traits]\nplan = "Plan__c"\nautopay = "Autopay__c"\n'
        'seats = { property = "Seats__c", kind = "number" }\n'
    )
    settings = _salesforce(tmp_path, sources)
    client = ClientOptions(transport=vendor.transport(), sleep=lambda _s: None)
    connector = salesforce.build(settings, client)
    sync_connector(engine, connector, options=SyncOptions(clock=lambda: NOW))
    assert any("Plan__c" in soql for _, soql in vendor.queries)
    ids = _ids(engine, "salesforce")
    live = [a for a in accounts if a.get("IsDeleted") is not True]
    with Session(engine) as session:
        traits = latest_traits(session, ["plan", "seats", "autopay"], LATER)
    first = ids[live[0]["Id"]]
    assert traits["plan"][first].text == ("enterprise" if live[0] is accounts[0] else "team")
    assert traits["seats"][first].number == float(live[0]["Seats__c"])
    assert traits["autopay"][first].kind == "boolean"
    written = _count(engine)
    sync_connector(
        engine, salesforce.build(settings, client), options=SyncOptions(clock=lambda: NOW)
    )
    assert _count(engine) == written


def test_a_salesforce_trait_field_must_be_an_api_name(tmp_path: Path) -> None:
    settings = _salesforce(tmp_path, '[salesforce.traits]\nplan = "Plan__c; DROP"\n')
    with pytest.raises(ConfigError, match=r"not a field API name"):
        salesforce.build(settings)


def test_a_hubspot_company_webhook_writes_its_traits(engine: Engine, tmp_path: Path) -> None:
    import httpx

    from connectors import hubspot_webhook
    from connectors.webhooks import VendorEvent, apply_events

    def company(request: httpx.Request) -> httpx.Response:
        assert "contract_type" in request.url.params["properties"].split(",")
        properties = {
            "name": "Acme",
            "domain": "acme.com",
            "contract_type": "annual",
            "numberofemployees": "42",
            "hs_lastmodifieddate": "2025-06-01T10:00:00Z",
        }
        return httpx.Response(200, json={"id": "77", "properties": properties, "archived": False})

    client = ClientOptions(transport=httpx.MockTransport(company), sleep=lambda _s: None)
    hook = hubspot_webhook.build(_hubspot(tmp_path), client)
    event = VendorEvent("e1", "company.propertyChange", {"objectId": 77, "eventId": 1})
    [applied] = apply_events(engine, hook, [event], NOW)
    assert applied.error is None
    ids = _ids(engine, "hubspot")
    with Session(engine) as session:
        traits = latest_traits(session, ["contract_type", "employees"], LATER)
    assert traits["contract_type"][ids["77"]].text == "annual"
    assert traits["employees"][ids["77"]].number == 42.0
