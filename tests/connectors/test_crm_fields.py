"""CRM-kept CSM sentiment and HubSpot merges: mapped, stored as history, followed by links."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlmodel import Session

from connectors import hubspot, salesforce
from connectors.crm_sentiment import normalise_sentiment, record_crm_sentiment
from connectors.errors import MappingError
from connectors.http import ClientOptions
from connectors.identity import resolve_identities
from connectors.sync import SyncOptions, sync_connector
from scoring.measures import csm_sentiment
from settings import ConfigError, HubSpotSettings, Settings
from store.db import session_scope
from store.models import Account, ExternalLink, Opportunity, QuarantinedRecord, SentimentEntry
from store.upsert import bulk_upsert
from tests.connectors.fake_hubspot import TOKEN, FakeHubSpot

NOW = datetime(2025, 6, 10, 12, tzinfo=UTC)
SOURCES = """
[hubspot.fields]
sentiment = "csm_health"
sentiment_note = "csm_health_note"
sentiment_date = "csm_health_date"

[hubspot.sentiment_values]
"At risk" = "red"
Healthy = "green"
"""


def _company(company_id: str, **props: Any) -> dict[str, Any]:
    return {
        "id": company_id,
        "properties": {
            "name": f"Company {company_id}",
            "domain": f"c{company_id}.com",
            "hs_lastmodifieddate": "2025-06-01T10:00:00.000Z",
            **props,
        },
        "archived": False,
    }


def _settings(tmp_path: Path, sources: str = SOURCES) -> Settings:
    path = tmp_path / "sources.toml"
    path.write_text(sources)
    return Settings(
        _env_file=None, hubspot=HubSpotSettings(token=SecretStr(TOKEN)), sources_file=path
    )


def _sync(engine: Engine, settings: Settings, vendor: FakeHubSpot) -> None:
    ticks = itertools.count(0.0, 1.0)
    client = ClientOptions(
        transport=vendor.transport(), sleep=lambda _s: None, monotonic=lambda: next(ticks)
    )
    connector = hubspot.build(settings, client)
    sync_connector(engine, connector, options=SyncOptions(clock=lambda: NOW))
    with session_scope(engine) as session:
        resolve_identities(session, NOW)


def _entries(engine: Engine) -> list[tuple[str, str, str, datetime]]:
    with Session(engine) as session:
        rows = session.execute(
            select(
                Account.external_id,
                SentimentEntry.sentiment,
                SentimentEntry.note,
                SentimentEntry.recorded_at,
            )
            .join(Account, Account.id == SentimentEntry.account_id)
            .order_by(Account.external_id, SentimentEntry.recorded_at)
        ).all()
    return [tuple(r) for r in rows]


# ---- mapping -----------------------------------------------------------------------------


def test_sentiment_values_are_normalised_and_unknown_ones_name_the_fix() -> None:
    synonyms = {"at risk": "red"}
    assert normalise_sentiment(" Green ", synonyms, "csm_health", "hubspot") == "green"
    assert normalise_sentiment("At Risk", synonyms, "csm_health", "hubspot") == "red"
    assert normalise_sentiment("", synonyms, "csm_health", "hubspot") is None
    with pytest.raises(MappingError, match=r"csm_health 'Amber'.*\[hubspot.sentiment_values\]"):
        normalise_sentiment("Amber", synonyms, "csm_health", "hubspot")


def test_a_company_maps_its_sentiment_fields() -> None:
    fields = {"sentiment": "h", "sentiment_note": "n", "sentiment_date": "d"}
    raw = _company("1", h="Healthy", n=" champion promoted ", d="2025-05-30")
    (record,) = hubspot.map_company(raw, None, fields, {"healthy": "green"})
    assert record.values["crm_sentiment"] == "green"
    assert record.values["crm_sentiment_note"] == "champion promoted"
    assert record.values["crm_sentiment_at"] == datetime(2025, 5, 30, tzinfo=UTC)


def test_merged_companies_become_soft_deleted_accounts_naming_their_survivor() -> None:
    raw = _company("7", hs_merged_object_ids="3;5;7")
    survivor, *merged = hubspot.map_company(raw)
    assert survivor.values["external_id"] == "7"
    assert [m.values["external_id"] for m in merged] == ["3", "5"]
    for record in merged:
        assert record.values["merged_into"] == "7"
        assert record.values["deleted_at"] == datetime(2025, 6, 1, 10, tzinfo=UTC)


def test_sentiment_details_without_the_sentiment_field_are_a_config_error(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, '[hubspot.fields]\nsentiment_note = "x"\n')
    with pytest.raises(ConfigError, match=r"need fields\.sentiment"):
        hubspot.build(settings)
    settings = _settings(tmp_path, '[hubspot.sentiment_values]\nAmber = "orange"\n')
    with pytest.raises(ConfigError, match="use green, yellow or red"):
        hubspot.build(settings)


# ---- through a sync ----------------------------------------------------------------------


def test_crm_sentiment_becomes_history_one_entry_per_change(engine: Engine, tmp_path: Path) -> None:
    vendor = FakeHubSpot()
    acme = vendor.companies[0]
    acme["properties"].update(csm_health="Healthy", csm_health_note="renewal signed")
    settings = _settings(tmp_path)
    _sync(engine, settings, vendor)
    first = _entries(engine)
    assert [(e[0], e[1], e[2]) for e in first] == [("5001", "green", "renewal signed")]
    assert first[0][3] == datetime(2025, 6, 1, 10, tzinfo=UTC)  # no date: last modification

    _sync(engine, settings, vendor)  # nothing changed: no new entry
    assert _entries(engine) == first

    acme["properties"].update(
        csm_health="At risk",
        csm_health_note="champion left",
        csm_health_date="2025-06-05",
        hs_lastmodifieddate="2025-06-05T09:00:00.000Z",
    )
    _sync(engine, settings, vendor)
    acme["properties"].update(
        csm_health_date="2025-06-09", hs_lastmodifieddate="2025-06-09T09:00:00.000Z"
    )
    _sync(engine, settings, vendor)  # same call, re-confirmed on a later date
    entries = _entries(engine)
    assert [(e[1], e[2], e[3].date()) for e in entries] == [
        ("green", "renewal signed", date(2025, 6, 1)),
        ("red", "champion left", date(2025, 6, 5)),
        ("red", "champion left", date(2025, 6, 9)),
    ]
    with Session(engine) as session:
        account_id = session.exec(select(Account.id).where(Account.external_id == "5001")).one()[0]
        assert csm_sentiment(session, date(2025, 6, 4))[account_id].value == "green"
        reading = csm_sentiment(session, date(2025, 6, 10))[account_id]
        assert reading.value == "red"
        assert reading.details["days_ago"] == 1


def test_an_unknown_sentiment_quarantines_the_company_with_the_fix(
    engine: Engine, tmp_path: Path
) -> None:
    vendor = FakeHubSpot()
    vendor.companies[1]["properties"]["csm_health"] = "Amber"
    _sync(engine, _settings(tmp_path), vendor)
    with Session(engine) as session:
        (reason,) = session.exec(select(QuarantinedRecord.reason)).all()
    assert "'Amber' is not green, yellow or red" in reason[0]
    assert "[hubspot.sentiment_values]" in reason[0]


def test_deleted_accounts_get_no_sentiment_entries(engine: Engine) -> None:
    with session_scope(engine) as session:
        bulk_upsert(
            session,
            Account,
            [
                {
                    "source": "hubspot",
                    "external_id": external_id,
                    "name": external_id,
                    "crm_sentiment": "red",
                    "updated_at": NOW,
                    "deleted_at": deleted,
                }
                for external_id, deleted in (("live", None), ("gone", NOW))
            ],
        )
        assert record_crm_sentiment(session, "hubspot", NOW) == 1
        assert record_crm_sentiment(session, "hubspot", NOW) == 0


def test_records_and_links_of_a_merged_company_follow_the_survivor(engine: Engine) -> None:
    vendor = FakeHubSpot()
    old = copy.deepcopy(vendor.companies[0])  # 5001 is merged into 5002
    survivor = vendor.companies[1]
    with session_scope(engine) as session:
        bulk_upsert(
            session,
            Account,
            [{"source": "hubspot", "external_id": old["id"], "name": "Acme (old)"}],
        )
        bulk_upsert(
            session,
            Opportunity,
            [{"source": "hubspot", "external_id": "d-old", "account_ref": old["id"]}],
        )
        bulk_upsert(
            session,
            ExternalLink,
            [
                {
                    "source": "stripe",
                    "external_id": "cus_1",
                    "kind": "customer",
                    "crm_hint": old["id"],
                    "status": "unmatched",
                }
            ],
        )
    vendor.companies.remove(vendor.companies[0])
    survivor["properties"]["hs_merged_object_ids"] = f"{old['id']}"
    _sync(engine, Settings(_env_file=None, hubspot=HubSpotSettings(token=SecretStr(TOKEN))), vendor)
    with Session(engine) as session:
        accounts = {a.external_id: a for a in session.exec(select(Account)).scalars()}
        gone, kept = accounts[old["id"]], accounts[survivor["id"]]
        assert gone.deleted_at is not None
        assert gone.merged_into == survivor["id"]
        assert kept.deleted_at is None
        deal = (
            session.exec(select(Opportunity).where(Opportunity.external_id == "d-old"))
            .scalars()
            .one()
        )
        assert deal.account_id == kept.id
        link = (
            session.exec(select(ExternalLink).where(ExternalLink.external_id == "cus_1"))
            .scalars()
            .one()
        )
        assert (link.status, link.method, link.account_id) == ("matched", "explicit_id", kept.id)


# ---- Salesforce --------------------------------------------------------------------------


def _sf_account(**fields: Any) -> dict[str, Any]:
    return {
        "attributes": {"type": "Account", "url": "/services/data/v61.0/sobjects/Account/001A"},
        "Id": "001A",
        "Name": "Acme",
        "Website": "acme.com",
        "IsDeleted": False,
        "SystemModstamp": "2025-06-01T10:00:00.000+0000",
        **fields,
    }


def test_a_salesforce_account_maps_its_sentiment_fields() -> None:
    fields = {
        "sentiment": "Health__c",
        "sentiment_note": "Health_Note__c",
        "sentiment_date": "Health_Date__c",
    }
    raw = _sf_account(Health__c="At risk", Health_Note__c="budget cut", Health_Date__c="2025-05-28")
    (record,) = salesforce.map_account(raw, fields, {"at risk": "red"})
    assert record.values["crm_sentiment"] == "red"
    assert record.values["crm_sentiment_note"] == "budget cut"
    assert record.values["crm_sentiment_at"] == datetime(2025, 5, 28, tzinfo=UTC)
    with pytest.raises(MappingError, match=r"\[salesforce.sentiment_values\]"):
        salesforce.map_account(_sf_account(Health__c="Amber"), fields, {})


def test_a_salesforce_account_deleted_by_a_merge_names_its_survivor() -> None:
    merged = _sf_account(IsDeleted=True, MasterRecordId="001B")
    (record,) = salesforce.map_account(merged)
    assert record.values["deleted_at"] is not None
    assert record.values["merged_into"] == "001B"
    (plain,) = salesforce.map_account(_sf_account(IsDeleted=True))
    assert "merged_into" not in plain.values
