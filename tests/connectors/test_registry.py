"""The registry: which connectors are built, and `sync_all` from vendors to matched records."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlmodel import Session

from connectors import build_connectors, sync_all
from connectors.http import ClientOptions
from connectors.sync import ProgressEvent, SyncOptions
from settings import (
    ConfigError,
    HubSpotSettings,
    Settings,
    StripeSettings,
    UsageFileSettings,
    ZendeskSettings,
)
from store.models import Account, ExternalLink, Subscription, SurveyResponse, Ticket
from tests.connectors.fake_hubspot import TOKEN as HUBSPOT_TOKEN
from tests.connectors.fake_hubspot import FakeHubSpot
from tests.connectors.fake_stripe import API_KEY as STRIPE_KEY
from tests.connectors.fake_stripe import FakeStripe
from tests.connectors.fake_zendesk import EMAIL as ZENDESK_EMAIL
from tests.connectors.fake_zendesk import TOKEN as ZENDESK_TOKEN
from tests.connectors.fake_zendesk import FakeZendesk
from tests.connectors.worlds import NOW, USAGE_CSV


def _settings(**sources: Any) -> Settings:
    return Settings(_env_file=None, **sources)


def _everything() -> Settings:
    return _settings(
        hubspot=HubSpotSettings(token=SecretStr(HUBSPOT_TOKEN)),
        zendesk=ZendeskSettings(
            subdomain="northwind", email=ZENDESK_EMAIL, api_token=SecretStr(ZENDESK_TOKEN)
        ),
        stripe=StripeSettings(api_key=SecretStr(STRIPE_KEY)),
        usage_file=UsageFileSettings(path=USAGE_CSV),
    )


def test_only_enabled_sources_are_built_crm_first() -> None:
    settings = _settings(
        stripe=StripeSettings(api_key=SecretStr("sk_test_x")),
        hubspot=HubSpotSettings(token=SecretStr("pat")),
    )
    assert [c.source for c in build_connectors(settings)] == ["hubspot", "stripe"]
    assert [c.source for c in build_connectors(settings, ["stripe"])] == ["stripe"]
    assert build_connectors(_settings()) == []


def test_asking_for_an_unknown_or_unconfigured_source_names_the_problem() -> None:
    settings = _settings(hubspot=HubSpotSettings(token=SecretStr("pat")))
    with pytest.raises(ConfigError, match="unknown source 'pipedrive'"):
        build_connectors(settings, ["pipedrive"])
    with pytest.raises(ConfigError, match="zendesk is not configured"):
        build_connectors(settings, ["zendesk"])


def test_sync_all_pulls_every_source_and_matches_records_to_accounts(engine: Engine) -> None:
    vendors = {
        "api.hubapi.com": FakeHubSpot(),
        "northwind.zendesk.com": FakeZendesk(),
        "api.stripe.com": FakeStripe(),
    }
    transport = httpx.MockTransport(lambda r: vendors[r.url.host].handle(r))
    events: list[ProgressEvent] = []
    summary = sync_all(
        engine,
        _everything(),
        progress=events.append,
        client=ClientOptions(transport=transport, sleep=lambda _: None),
        options=SyncOptions(clock=lambda: NOW),
    )
    assert summary.ok, [r.error for r in summary.failures]
    assert summary.records_by_source() == {
        "hubspot": 19,
        "zendesk": 12,
        "stripe": 14,
        "usage_file": 5,
    }
    assert summary.records_by_stream()[("zendesk", "tickets")] == 5
    assert summary.links == {"matched": 13, "unmatched": 3}
    for source in ("hubspot", "zendesk", "stripe", "usage_file"):  # sources run side by side
        done = [e.stream for e in events if e.done and e.source == source]
        assert done == [r.stream for r in summary.streams if r.source == source]

    with Session(engine) as session:
        account = {a.external_id: a.id for a in session.execute(select(Account)).scalars()}
        links = {
            (link.source, link.external_id): link
            for link in session.execute(select(ExternalLink)).scalars()
        }
        tickets = {t.external_id: t.account_id for t in session.execute(select(Ticket)).scalars()}
        surveys = {
            s.external_id: s.account_id for s in session.execute(select(SurveyResponse)).scalars()
        }
        subs = {
            s.external_id: s.account_id for s in session.execute(select(Subscription)).scalars()
        }
        owner = session.execute(select(Account).where(Account.external_id == "5001")).scalar_one()  # type: ignore[arg-type]

    def link(source: str, external_id: str) -> tuple[str | None, int | None]:
        found = links[(source, external_id)]
        return found.method, found.account_id

    assert link("zendesk", "361898904401") == ("explicit_id", account["5001"])
    assert link("zendesk", "361898904402") == ("domain", account["5002"])
    assert links[("zendesk", "361898904403")].status == "unmatched"  # gmail.com
    assert link("stripe", "cus_QInitech0000004") == ("explicit_id", account["5003"])
    assert link("stripe", "cus_QGlobex00000002") == ("domain", account["5002"])
    assert link("usage_file", "5002") == ("explicit_id", account["5002"])
    assert links[("usage_file", "9999")].status == "unmatched"
    assert tickets == {
        "1001": account["5001"],
        "1002": account["5001"],
        "1003": account["5002"],
        "1004": None,
        "1005": account["5002"],
    }
    assert surveys == {"7001": account["5001"], "7002": account["5002"], "7005": account["5001"]}
    assert subs["sub_1Acme000000001"] == account["5001"]
    assert subs["sub_1Freelance00005"] is None
    assert owner.owner_email == "ana.lima@northwind-saas.example"
