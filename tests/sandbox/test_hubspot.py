"""The HubSpot emulator pages, searches, caps, limits and fails like HubSpot."""

from __future__ import annotations

from typing import Any

import httpx

from sandbox.book import Book
from sandbox.hubspot import hubspot_app
from sandbox.ratelimit import Budget, Limits
from tests.sandbox.conftest import HUBSPOT_AUTH, asgi_client

SEARCH = "/crm/v3/objects/companies/search"


def _client(book: Book, limits: Limits | None = None, **kwargs: Any) -> httpx.Client:
    return asgi_client(
        hubspot_app(book, limits=limits or Limits.unlimited(), **kwargs), HUBSPOT_AUTH
    )


def _since(ms: int, limit: int = 100, after: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(ms)}
                ]
            }
        ],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["name", "domain", "hubspot_owner_id"],
        "limit": limit,
    }
    if after:
        body["after"] = after
    return body


def test_owners_paging_ends(book: Book) -> None:
    client = _client(book, Limits.vendor("hubspot"))
    seen, after = [], None
    while True:
        page = client.get(
            "/crm/v3/owners", params={"limit": 4, **({"after": after} if after else {})}
        )
        assert page.status_code == 200
        assert page.headers["X-HubSpot-RateLimit-Max"] == "100"
        assert int(page.headers["X-HubSpot-RateLimit-Remaining"]) < 100
        assert page.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        body = page.json()
        seen += body["results"]
        if "paging" not in body:
            break
        after = body["paging"]["next"]["after"]
        assert body["paging"]["next"]["link"].endswith(f"after={after}")
    assert len(seen) == 15
    assert len({o["id"] for o in seen}) == 15
    assert all(o["teams"][0]["primary"] for o in seen)


def test_search_walks_every_company_in_modified_order(book: Book) -> None:
    client = _client(book)
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        page = client.post(SEARCH, json=_since(0, 100, after))
        assert page.status_code == 200
        assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in page.headers)
        body = page.json()
        assert body["total"] == 300
        seen += body["results"]
        if "paging" not in body:
            break
        after = body["paging"]["next"]["after"]
    stamps = [c["properties"]["hs_lastmodifieddate"] for c in seen]
    assert stamps == sorted(stamps)
    assert len({c["id"] for c in seen}) == 300
    first = seen[0]
    assert set(first["properties"]) == {
        "name",
        "domain",
        "hubspot_owner_id",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    }
    assert first["archived"] is False
    assert first["createdAt"].endswith("Z")


def test_search_filters_a_window(book: Book) -> None:
    client = _client(book)
    cut = int(book.now.timestamp() * 1000) - 30 * 86_400_000
    body = _since(cut)
    body["filterGroups"][0]["filters"].append(
        {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": str(cut + 86_400_000)}
    )
    results = client.post(SEARCH, json=body).json()["results"]
    expected = [
        c
        for c in book.active_companies()
        if cut <= c.updated_at.timestamp() * 1000 < cut + 86_400_000
    ]
    assert {r["id"] for r in results} == {c.id for c in expected}
    deals = client.post("/crm/v3/objects/deals/search", json={"limit": 5, "properties": ["hs_arr"]})
    assert deals.json()["total"] == len(book.deals)
    assert "hs_arr" in deals.json()["results"][0]["properties"]


def test_search_cap_forces_a_new_window(book: Book) -> None:
    client = _client(book, search_cap=100)
    first = client.post(SEARCH, json=_since(0, 50))
    second = client.post(SEARCH, json=_since(0, 50, first.json()["paging"]["next"]["after"]))
    assert second.status_code == 200
    assert second.json()["paging"]["next"]["after"] == "100"
    over = client.post(SEARCH, json=_since(0, 50, "100"))
    assert over.status_code == 400
    assert over.json()["category"] == "VALIDATION_ERROR"
    assert over.json()["correlationId"]
    restart = second.json()["results"][-1]["properties"]["hs_lastmodifieddate"]
    again = client.post(
        SEARCH,
        json=_since(0, 50)
        | {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": restart}
                    ]
                }
            ]
        },
    )
    assert again.status_code == 200
    assert again.json()["total"] == 201
    assert client.post(SEARCH, json=_since(0, 201)).status_code == 400


def test_search_budget_answers_429(book: Book) -> None:
    client = _client(book, Limits(budgets={"search": Budget(2, 60, "SECONDLY")}))
    assert [client.post(SEARCH, json=_since(0, 1)).status_code for _ in range(2)] == [200, 200]
    refused = client.post(SEARCH, json=_since(0, 1))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    body = refused.json()
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "SECONDLY"
    assert body["status"] == "error"
    assert body["correlationId"]
    assert client.get("/crm/v3/owners").status_code == 200


def test_ten_secondly_budget_with_a_compressed_clock(book: Book) -> None:
    client = _client(
        book, Limits(budgets={"default": Budget(1, 10, "TEN_SECONDLY_ROLLING")}, time_scale=1000)
    )
    assert client.get("/crm/v3/owners").status_code == 200
    refused = client.get("/crm/v3/owners")
    assert refused.status_code == 429
    assert refused.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert refused.headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_bad_token_is_refused(book: Book) -> None:
    app = hubspot_app(book)
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = asgi_client(app, headers).get("/crm/v3/owners")
        assert response.status_code == 401
        assert response.json()["category"] == "INVALID_AUTHENTICATION"


def test_archived_companies_and_associations(book: Book) -> None:
    client = _client(book)
    archived = client.get("/crm/v3/objects/companies", params={"archived": "true", "limit": 100})
    rows = archived.json()["results"]
    assert len(rows) == 2
    assert all(r["archived"] and r["archivedAt"] for r in rows)
    active = client.get(
        "/crm/v3/objects/companies", params={"limit": 100, "properties": "name,domain"}
    )
    assert "paging" in active.json()
    assert "domain" in active.json()["results"][0]["properties"]
    deal = book.deals[0]
    links = client.post(
        "/crm/v3/associations/deals/companies/batch/read", json={"inputs": [{"id": deal.id}]}
    ).json()
    assert links["status"] == "COMPLETE"
    assert links["results"] == [
        {"from": {"id": deal.id}, "to": [{"id": deal.company_id, "type": "deal_to_company"}]}
    ]


def test_injected_faults(book: Book) -> None:
    limits = Limits.unlimited()
    client = _client(book, limits)
    limits.faults.fail(SEARCH, status=500, times=2)
    assert [client.post(SEARCH, json=_since(0, 1)).status_code for _ in range(3)] == [500, 500, 200]
    limits.faults.fail("/crm/v3/owners", status=429, retry_after_s=3)
    refused = client.get("/crm/v3/owners")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "3"
    limits.faults.malform("companies")
    rows = client.post(SEARCH, json={"limit": 200}).json()["results"]
    broken = [r for r in rows if isinstance(r["properties"], list)]
    assert len(broken) == 1
    assert all(isinstance(r["properties"], dict) for r in rows if r not in broken)
