"""Emulator responses match the vendors' published OpenAPI response schemas.

The Stripe spec in vendor-specs predates API version 2025-03-31 (its subscription has
`current_period_end`, its invoice `subscription`), so Stripe bodies are checked in the
older shape, asked for with `Stripe-Version: 2024-06-20`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.book import Book
from sandbox.hubspot import hubspot_app
from sandbox.ratelimit import Limits
from sandbox.stripe import stripe_app
from tests.sandbox.conftest import HUBSPOT_AUTH, STRIPE_AUTH, asgi_client
from tests.sandbox.openapi import assert_valid, response_validator, specs_dir

OLD_VERSION = "2024-06-20"


@pytest.fixture(autouse=True)
def _need_specs() -> None:
    specs_dir()


def test_stripe_spec_carries_the_old_shapes() -> None:
    validator = response_validator("stripe/stripe.com.json", "/v1/subscriptions")
    subscription = validator.schema["components"]["schemas"]["subscription"]
    assert "current_period_end" in subscription["required"]
    invoice = validator.schema["components"]["schemas"]["invoice"]["properties"]
    assert "subscription" in invoice
    assert "parent" not in invoice


def test_hubspot_owners_search_and_associations(book: Book) -> None:
    client = asgi_client(hubspot_app(book, limits=Limits.unlimited()), HUBSPOT_AUTH)
    owners = client.get("/crm/v3/owners", params={"limit": 10})
    assert_valid(response_validator("hubspot/crmOwners.json", "/crm/v3/owners"), owners.json())
    search = response_validator(
        "hubspot/companies.json", "/crm/v3/objects/companies/search", "post"
    )
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}
        ],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["name", "domain", "hubspot_owner_id", "annualrevenue", "lifecyclestage"],
        "limit": 200,
    }
    companies = client.post("/crm/v3/objects/companies/search", json=body)
    assert companies.json()["paging"]["next"]["after"] == "200"
    assert_valid(search, companies.json())
    deals = response_validator("hubspot/deals.json", "/crm/v3/objects/0-3/search", "post")
    body["properties"] = ["dealname", "amount", "dealstage", "hs_arr", "closedate"]
    assert_valid(deals, client.post("/crm/v3/objects/deals/search", json=body).json())
    path = "/crm/v3/associations/{fromObjectType}/{toObjectType}/batch/read"
    links = client.post(
        "/crm/v3/associations/deals/companies/batch/read",
        json={"inputs": [{"id": d.id} for d in book.deals[:50]]},
    )
    assert links.status_code == 200
    assert_valid(response_validator("hubspot/associations.json", path, "post"), links.json())
    partial = client.post(
        "/crm/v3/associations/deals/companies/batch/read",
        json={"inputs": [{"id": book.deals[0].id}, {"id": "1"}]},
    )
    assert partial.status_code == 207
    assert_valid(
        response_validator("hubspot/associations.json", path, "post", "207"), partial.json()
    )


def _pages(client: httpx.Client, path: str, **params: Any) -> Iterator[dict[str, Any]]:
    after: str | None = None
    while True:
        query = {**params, "limit": 100, **({"starting_after": after} if after else {})}
        page = client.get(path, params=query)
        assert page.status_code == 200, page.text
        body: dict[str, Any] = page.json()
        yield body
        if not body["has_more"]:
            return
        after = body["data"][-1]["id"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/customers", {}),
        ("/v1/subscriptions", {"status": "all", "expand[]": "data.customer"}),
        ("/v1/invoices", {"created[gte]": "1775000000"}),
        ("/v1/invoices", {"status": "open"}),
        ("/v1/events", {}),
    ],
)
def test_stripe_lists(book: Book, path: str, params: dict[str, str]) -> None:
    headers = {**STRIPE_AUTH, "Stripe-Version": OLD_VERSION}
    client = asgi_client(stripe_app(book, limits=Limits.unlimited()), headers)
    validator = response_validator("stripe/stripe.com.json", path)
    seen = 0
    for body in _pages(client, path, **params):
        assert_valid(validator, body)
        seen += len(body["data"])
    assert seen > 0
