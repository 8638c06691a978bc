"""A fake Freshdesk v2 API: companies and tickets as bare JSON arrays, paged with `page` and
`per_page` and a `Link: <...>; rel="next"` header, at most `max_pages` pages per query.

Tickets honour `updated_since` (without it only the last 30 days come back), `order_by`
and `order_type`, `filter=deleted` (deleted tickets only; the plain list leaves them out)
and `include=stats` (without it the `stats` object is left out, as Freshdesk does).
"""

from __future__ import annotations

import base64
from copy import deepcopy
from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.connectors.fakes import FakeVendor, load

API_KEY = "fd-fake-api-key"
DOMAIN = "northwind"
ORDER_FIELDS = ("created_at", "due_by", "updated_at", "status")


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _invalid(field: str, message: str) -> httpx.Response:
    error = {"field": field, "message": message, "code": "invalid_value"}
    return httpx.Response(400, json={"description": "Validation failed", "errors": [error]})


class FakeFreshdesk(FakeVendor):
    def __init__(self, api_key: str = API_KEY, *, now: datetime, max_pages: int = 300) -> None:
        pair = base64.b64encode(f"{api_key}:X".encode()).decode()
        super().__init__(f"Basic {pair}")
        self.now = now
        self.max_pages = max_pages
        self.rate_total = 700
        self.companies: list[dict[str, Any]] = load("freshdesk", "companies.json")
        self.tickets: list[dict[str, Any]] = load("freshdesk", "tickets.json")
        self.requests: list[tuple[str, dict[str, str]]] = []
        """Every answered request: its route and query parameters."""

    def params(self, route: str) -> list[dict[str, str]]:
        return [params for name, params in self.requests if name == route]

    def route(self, request: httpx.Request) -> str:
        path = request.url.path
        if path == "/api/v2/tickets":
            deleted = request.url.params.get("filter") == "deleted"
            return "deleted_tickets" if deleted else "tickets"
        return {"/api/v2/companies": "companies"}.get(path, "unknown")

    def unauthorized(self) -> httpx.Response:
        return httpx.Response(
            401,
            json={
                "code": "invalid_credentials",
                "message": "You have to be logged in to perform this action.",
            },
        )

    def rate_limited(self, retry_after: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": retry_after})

    def serve(self, route: str, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        self.requests.append((route, dict(params)))
        if route == "unknown":
            return httpx.Response(404)
        if route == "companies":
            return self._page(request, route, sorted(self.companies, key=lambda c: c["id"]))
        if route in self.stuck:  # ignores every way of paging on, windows included
            first = next(p for r, p in self.requests if r == route)
            params = httpx.QueryParams({**dict(params), **first})
        items = self._tickets(params, deleted=route == "deleted_tickets")
        if isinstance(items, httpx.Response):
            return items
        return self._page(request, route, items)

    def _tickets(
        self, params: httpx.QueryParams, *, deleted: bool
    ) -> list[dict[str, Any]] | httpx.Response:
        since = self.now - timedelta(days=30)
        if "updated_since" in params:
            try:
                since = _at(params["updated_since"])
            except ValueError:
                return _invalid("updated_since", "It should be in the 'valid date' format")
        order_by = params.get("order_by", "created_at")
        if order_by not in ORDER_FIELDS:
            return _invalid("order_by", f"It should be one of these values: {ORDER_FIELDS}")
        descending = params.get("order_type", "desc") == "desc"
        chosen = [
            t
            for t in self.tickets
            if bool(t.get("deleted")) is deleted
            and not t.get("spam")
            and _at(t["updated_at"]) >= since
        ]
        chosen.sort(key=lambda t: (t[order_by], t["id"]), reverse=descending)
        if params.get("include") != "stats":
            chosen = [{k: v for k, v in t.items() if k != "stats"} for t in chosen]
        return chosen

    def _page(
        self, request: httpx.Request, route: str, items: list[dict[str, Any]]
    ) -> httpx.Response:
        params = request.url.params
        per_page = int(params.get("per_page", "30"))
        if not 1 <= per_page <= 100:
            return _invalid("per_page", "It should be a/an Positive Integer less than 100")
        page = 1 if route in self.stuck else int(params.get("page", "1"))
        if not 1 <= page <= self.max_pages:
            return _invalid("page", f"It should be a/an Positive Integer up to {self.max_pages}")
        start = (page - 1) * per_page
        body = deepcopy(items[start : start + per_page])
        answered = len(self.requests)
        headers = {
            "X-RateLimit-Total": str(self.rate_total),
            "X-RateLimit-Remaining": str(max(self.rate_total - answered, 0)),
            "X-RateLimit-Used-CurrentRequest": "2" if params.get("include") else "1",
        }
        if start + per_page < len(items):
            following = request.url.copy_set_param("page", str(page + 1))
            headers["Link"] = f'<{following}>; rel="next"'
        return httpx.Response(200, json=body, headers=headers)
