"""A fake Stripe API: newest-first lists with `starting_after` / `ending_before` paging and
`has_more`, canceled subscriptions only with `status=all`, the Events API, and one
subscription read with `expand[]=discounts` (discounts are ids unless expanded)."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import httpx

from tests.connectors.fakes import FakeVendor, load

API_KEY = "sk_test_fake_51Northwind"
HIDDEN_UNLESS_ALL = {"canceled", "incomplete_expired"}
DISCOUNTS = {
    "di_1AcmeLoyalty0001": {
        "id": "di_1AcmeLoyalty0001",
        "object": "discount",
        "source": {
            "type": "coupon",
            "coupon": {"id": "LOYAL10", "object": "coupon", "percent_off": 10.0,
                       "amount_off": None, "duration": "forever"},
        },
    }
}  # fmt: skip


def _expanded(subscription: dict[str, Any]) -> dict[str, Any]:
    ids = subscription.get("discounts") or []
    return {**subscription, "discounts": [DISCOUNTS.get(d, d) for d in ids]}


class FakeStripe(FakeVendor):
    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__(f"Bearer {api_key}")
        # Every collection is kept oldest first; Stripe serves them newest first.
        self.customers: list[dict[str, Any]] = load("stripe", "customers.json")
        self.subscriptions: list[dict[str, Any]] = load("stripe", "subscriptions.json")
        self.invoices: list[dict[str, Any]] = load("stripe", "invoices.json")
        self.events: list[dict[str, Any]] = load("stripe", "events.json")
        self.versions: set[str | None] = set()
        self.requests: list[httpx.Request] = []

    def publish(self, events: list[dict[str, Any]]) -> None:
        """New events happen, and the objects they carry become the current state."""
        for event in events:
            self.events.append(event)
            obj = event["data"]["object"]
            collection = {
                "customer": self.customers,
                "subscription": self.subscriptions,
                "invoice": self.invoices,
            }.get(obj.get("object"))
            if collection is None:
                continue
            collection[:] = [o for o in collection if o["id"] != obj["id"]]
            if event["type"] != "customer.deleted":
                collection.append(obj)

    def route(self, request: httpx.Request) -> str:
        return request.url.path.removeprefix("/v1/")

    def unauthorized(self) -> httpx.Response:
        return httpx.Response(
            401,
            json={
                "error": {
                    "message": "Invalid API Key provided: sk_test_********************0042",
                    "type": "invalid_request_error",
                }
            },
        )

    def rate_limited(self, retry_after: str) -> httpx.Response:
        return httpx.Response(
            429,
            headers={"Retry-After": retry_after, "Stripe-Should-Retry": "true"},
            json={
                "error": {
                    "code": "rate_limit",
                    "message": "Request rate limit exceeded.",
                    "type": "invalid_request_error",
                }
            },
        )

    def serve(self, route: str, request: httpx.Request) -> httpx.Response:
        self.versions.add(request.headers.get("Stripe-Version"))
        self.requests.append(request)
        collections = {
            "customers": self.customers,
            "subscriptions": self.subscriptions,
            "invoices": self.invoices,
            "events": self.events,
        }
        params = request.url.params
        if route.startswith("subscriptions/"):
            wanted = route.removeprefix("subscriptions/")
            found = [s for s in self.subscriptions if s["id"] == wanted]
            if not found:
                return self._missing("subscription", wanted)
            body = deepcopy(found[0])
            expand = "discounts" in params.get_list("expand[]")
            return httpx.Response(200, json=_expanded(body) if expand else body)
        if route not in collections:
            return self._missing("resource", route)
        items = list(reversed(collections[route]))
        if route == "subscriptions" and params.get("status") != "all":
            items = [s for s in items if s["status"] not in HIDDEN_UNLESS_ALL]
        limit = int(params.get("limit", "10"))
        ids = [i["id"] for i in items]
        after, before = params.get("starting_after"), params.get("ending_before")
        if route in self.stuck:
            after = before = None
        for cursor in (after, before):
            if cursor is not None and cursor not in ids:
                return self._missing(route.rstrip("s"), cursor)
        if after is not None:
            older = items[ids.index(after) + 1 :]
            page, has_more = older[:limit], len(older) > limit
        elif before is not None:
            newer = items[: ids.index(before)]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            page, has_more = items[:limit], len(items) > limit
        return httpx.Response(
            200,
            json={
                "object": "list",
                "url": f"/v1/{route}",
                "has_more": has_more,
                "data": [
                    _expanded(deepcopy(item))
                    if "data.discounts" in params.get_list("expand[]")
                    else deepcopy(item)
                    for item in page
                ],
            },
        )

    @staticmethod
    def _missing(kind: str, ident: str) -> httpx.Response:
        return httpx.Response(
            404,
            json={
                "error": {
                    "code": "resource_missing",
                    "message": f"No such {kind}: '{ident}'",
                    "type": "invalid_request_error",
                }
            },
        )
