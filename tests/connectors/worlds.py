"""Ready-made connectors wired to the fake vendors, for the contract suite and others."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine

from connectors import (
    chargebee,
    freshdesk,
    hubspot,
    intercom,
    salesforce,
    stripe,
    usage_file,
    zendesk,
)
from connectors.base import Connector
from connectors.http import ClientOptions
from connectors.sync import Progress, StreamResult, SyncOptions, sync_connector
from settings import (
    ChargebeeSettings,
    FreshdeskSettings,
    HubSpotSettings,
    IntercomSettings,
    SalesforceSettings,
    Settings,
    StripeSettings,
    UsageFileSettings,
    ZendeskSettings,
)
from tests.connectors.fake_chargebee import API_KEY as CHARGEBEE_KEY
from tests.connectors.fake_chargebee import SITE as CHARGEBEE_SITE
from tests.connectors.fake_chargebee import FakeChargebee
from tests.connectors.fake_freshdesk import API_KEY as FRESHDESK_KEY
from tests.connectors.fake_freshdesk import DOMAIN as FRESHDESK_DOMAIN
from tests.connectors.fake_freshdesk import FakeFreshdesk
from tests.connectors.fake_hubspot import TOKEN as HUBSPOT_TOKEN
from tests.connectors.fake_hubspot import FakeHubSpot
from tests.connectors.fake_intercom import TOKEN as INTERCOM_TOKEN
from tests.connectors.fake_intercom import FakeIntercom
from tests.connectors.fake_salesforce import CLIENT_ID as SALESFORCE_CLIENT_ID
from tests.connectors.fake_salesforce import CLIENT_SECRET as SALESFORCE_SECRET
from tests.connectors.fake_salesforce import FakeSalesforce
from tests.connectors.fake_stripe import API_KEY as STRIPE_KEY
from tests.connectors.fake_stripe import FakeStripe
from tests.connectors.fake_zendesk import EMAIL as ZENDESK_EMAIL
from tests.connectors.fake_zendesk import TOKEN as ZENDESK_TOKEN
from tests.connectors.fake_zendesk import FakeZendesk
from tests.connectors.fakes import FIXTURES, FakeVendor

NOW = datetime(2025, 6, 10, 12, tzinfo=UTC)


@dataclass
class World:
    """A connector, the fake vendor it talks to, and every wait it asked for."""

    connector: Connector
    vendor: Any
    sleeps: list[float] = field(default_factory=list)
    now: datetime = NOW
    needs: dict[str, list[str]] = field(default_factory=dict)
    """Streams that must run before a stream (in the connector's order)."""

    def streams_for(self, stream: str) -> list[str]:
        return [*self.needs.get(stream, []), stream]

    def sync(
        self,
        engine: Engine,
        streams: list[str] | None = None,
        progress: Progress | None = None,
    ) -> dict[str, StreamResult]:
        options = SyncOptions(clock=lambda: self.now)
        results = sync_connector(
            engine, self.connector, streams=streams, options=options, progress=progress
        )
        return {r.stream: r for r in results}


def _settings(**sources: Any) -> Settings:
    return Settings(_env_file=None, **sources)


def hubspot_world(
    token: str = HUBSPOT_TOKEN, page_size: int = 2, result_cap: int = 10_000
) -> World:
    vendor = FakeHubSpot(HUBSPOT_TOKEN, result_cap=result_cap)
    sleeps: list[float] = []
    settings = _settings(hubspot=HubSpotSettings(token=SecretStr(token), page_size=page_size))
    ticks = itertools.count(0.0, 1.0)  # a second between requests: search pacing never waits
    client = ClientOptions(
        transport=vendor.transport(), sleep=sleeps.append, monotonic=lambda: next(ticks)
    )
    options = hubspot.HubSpotOptions(search_limit=page_size, result_cap=result_cap)
    return World(hubspot.build(settings, client, options), vendor, sleeps)


def salesforce_world(
    client_secret: str = SALESFORCE_SECRET, page_size: int = 2, **settings: Any
) -> World:
    vendor = FakeSalesforce()
    sleeps: list[float] = []
    cfg = SalesforceSettings(
        client_id=SALESFORCE_CLIENT_ID,
        client_secret=SecretStr(client_secret),
        page_size=page_size,
        **settings,
    )
    client = ClientOptions(transport=vendor.transport(), sleep=sleeps.append)
    return World(salesforce.build(_settings(salesforce=cfg), client), vendor, sleeps)


def zendesk_world(token: str = ZENDESK_TOKEN, page_size: int = 2) -> World:
    vendor = FakeZendesk()
    sleeps: list[float] = []
    cfg = ZendeskSettings(
        subdomain="northwind", email=ZENDESK_EMAIL, api_token=SecretStr(token), page_size=page_size
    )
    client = ClientOptions(transport=vendor.transport(), sleep=sleeps.append)
    options = zendesk.ZendeskOptions(export_page_size=page_size)
    return World(zendesk.build(_settings(zendesk=cfg), client, options), vendor, sleeps)


def stripe_world(api_key: str = STRIPE_KEY, page_size: int = 2) -> World:
    vendor = FakeStripe()
    sleeps: list[float] = []
    cfg = StripeSettings(api_key=SecretStr(api_key), page_size=page_size)
    client = ClientOptions(transport=vendor.transport(), sleep=sleeps.append)
    connector = stripe.build(_settings(stripe=cfg), client)
    lists = ("customers", "subscriptions", "invoices")
    return World(connector, vendor, sleeps, needs={name: ["events"] for name in lists})


def freshdesk_world(
    token: str = FRESHDESK_KEY,
    page_size: int = 2,
    max_pages: int = 300,
    include_stats: bool = False,
) -> World:
    vendor = FakeFreshdesk(now=NOW, max_pages=max_pages)
    sleeps: list[float] = []
    cfg = FreshdeskSettings(domain=FRESHDESK_DOMAIN, api_key=SecretStr(token), page_size=page_size)
    client = ClientOptions(transport=vendor.transport(), sleep=sleeps.append)
    options = freshdesk.FreshdeskOptions(max_pages=max_pages, include_stats=include_stats)
    return World(freshdesk.build(_settings(freshdesk=cfg), client, options), vendor, sleeps)


def chargebee_world(
    api_key: str = CHARGEBEE_KEY,
    page_size: int = 2,
    options: chargebee.ChargebeeOptions | None = None,
) -> World:
    vendor = FakeChargebee()
    sleeps: list[float] = []
    cfg = ChargebeeSettings(site=CHARGEBEE_SITE, api_key=SecretStr(api_key), page_size=page_size)
    client = ClientOptions(transport=vendor.transport(), sleep=sleeps.append)
    return World(chargebee.build(_settings(chargebee=cfg), client, options), vendor, sleeps)


def intercom_world(
    token: str = INTERCOM_TOKEN,
    page_size: int = 2,
    options: intercom.IntercomOptions | None = None,
) -> World:
    vendor = FakeIntercom(page_size=page_size)
    sleeps: list[float] = []
    cfg = IntercomSettings(access_token=SecretStr(token), page_size=page_size)
    client = ClientOptions(
        transport=vendor.transport(), sleep=sleeps.append, clock=lambda: vendor.now.timestamp()
    )
    return World(intercom.build(_settings(intercom=cfg), client, options), vendor, sleeps)


USAGE_CSV = FIXTURES / "usage_file" / "usage.csv"


def usage_world(path: Path = USAGE_CSV) -> World:
    settings = _settings(usage_file=UsageFileSettings(path=path))
    return World(usage_file.build(settings), None)


WORLDS: dict[str, Callable[[], World]] = {
    "hubspot": hubspot_world,
    "salesforce": salesforce_world,
    "zendesk": zendesk_world,
    "stripe": stripe_world,
    "freshdesk": freshdesk_world,
    "intercom": intercom_world,
    "chargebee": chargebee_world,
    "usage_file": usage_world,
}


def vendor_of(world: World) -> FakeVendor | None:
    return world.vendor if isinstance(world.vendor, FakeVendor) else None


def _vanish(collection: str) -> Callable[[Any], str]:
    """Drop the oldest record of a fake vendor's collection, a delete no vendor signal tells."""

    def vanish(vendor: Any) -> str:
        gone = getattr(vendor, collection).pop(0)
        return str(gone["id"])

    return vanish


VANISH: dict[tuple[str, str], Callable[[Any], str]] = {
    ("intercom", "companies"): _vanish("companies"),
    ("intercom", "conversations"): _vanish("conversations"),
    ("freshdesk", "companies"): _vanish("companies"),
    ("stripe", "customers"): _vanish("customers"),
    ("stripe", "subscriptions"): _vanish("subscriptions"),
}
"""Streams whose complete listing reconciles deletes, and how to delete one of their records."""
