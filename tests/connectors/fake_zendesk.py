"""A fake Zendesk Support API: the time-based organization export, the cursor-based ticket
export and cursor-paginated satisfaction ratings, in the shapes Zendesk documents."""

from __future__ import annotations

import base64
from copy import deepcopy
from datetime import datetime
from typing import Any

import httpx

from tests.connectors.fakes import FakeVendor, load

EMAIL = "agent@northwind-saas.example"
TOKEN = "zd-fake-api-token"
BASE = "https://northwind.zendesk.com"


def _unix(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _encode(position: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(f"{position[0]}:{position[1]}".encode()).decode()


def _decode(cursor: str) -> tuple[int, int]:
    stamp, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
    return int(stamp), int(ident)


class FakeZendesk(FakeVendor):
    def __init__(self, email: str = EMAIL, token: str = TOKEN) -> None:
        pair = base64.b64encode(f"{email}/token:{token}".encode()).decode()
        super().__init__(f"Basic {pair}")
        self.organizations: list[dict[str, Any]] = load("zendesk", "organizations.json")
        self.tickets: list[dict[str, Any]] = load("zendesk", "tickets.json")
        self.ratings: list[dict[str, Any]] = load("zendesk", "satisfaction_ratings.json")

    def route(self, request: httpx.Request) -> str:
        return {
            "/api/v2/incremental/organizations.json": "organizations",
            "/api/v2/incremental/tickets/cursor.json": "tickets",
            "/api/v2/satisfaction_ratings.json": "satisfaction_ratings",
        }.get(request.url.path, "unknown")

    def unauthorized(self) -> httpx.Response:
        return httpx.Response(401, json={"error": "Couldn't authenticate you"})

    def rate_limited(self, retry_after: str) -> httpx.Response:
        return httpx.Response(
            429,
            headers={"Retry-After": retry_after},
            json={
                "error": "APIRateLimitExceeded",
                "description": (
                    "Number of allowed incremental export API requests per minute exceeded"
                ),
            },
        )

    def serve(self, route: str, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if route == "organizations":
            return self._time_export(params, route)
        if route == "tickets":
            return self._cursor_export(params, route)
        if route == "satisfaction_ratings":
            return self._ratings(params, route)
        return httpx.Response(404, json={"error": "InvalidEndpoint", "description": "Not found"})

    @staticmethod
    def _position(item: dict[str, Any], field: str) -> tuple[int, int]:
        return _unix(item[field]), int(item["id"])

    def _time_export(self, params: httpx.QueryParams, route: str) -> httpx.Response:
        start = 0 if route in self.stuck else int(params["start_time"])
        per_page = int(params.get("per_page", "1000"))
        matching = sorted(
            (o for o in self.organizations if _unix(o["updated_at"]) >= start),
            key=lambda o: self._position(o, "updated_at"),
        )
        page = deepcopy(matching[:per_page])
        end_time = _unix(page[-1]["updated_at"]) if page else start
        return httpx.Response(
            200,
            json={
                "organizations": page,
                "next_page": f"{BASE}/api/v2/incremental/organizations.json?start_time={end_time}",
                "count": len(page),
                "end_of_stream": len(matching) <= per_page,
                "end_time": end_time,
            },
        )

    def _cursor_export(self, params: httpx.QueryParams, route: str) -> httpx.Response:
        ordered = sorted(self.tickets, key=lambda t: self._position(t, "updated_at"))
        if "cursor" in params and route not in self.stuck:
            after = _decode(params["cursor"])
            remaining = [t for t in ordered if self._position(t, "updated_at") > after]
        else:
            start = int(params.get("start_time", "0"))
            remaining = [t for t in ordered if _unix(t["updated_at"]) >= start]
            after = (start, 0)
        per_page = int(params.get("per_page", "1000"))
        page = deepcopy(remaining[:per_page])
        last = self._position(page[-1], "updated_at") if page else after
        cursor = _encode(last)
        path = f"{BASE}/api/v2/incremental/tickets/cursor.json"
        return httpx.Response(
            200,
            json={
                "tickets": page,
                "after_url": f"{path}?cursor={cursor}",
                "after_cursor": cursor,
                "before_url": None,
                "before_cursor": None,
                "end_of_stream": len(remaining) <= per_page,
            },
        )

    def _ratings(self, params: httpx.QueryParams, route: str) -> httpx.Response:
        start = int(params.get("start_time", "0"))
        size = int(params.get("page[size]", "100"))
        ordered = sorted(
            (r for r in self.ratings if _unix(r["created_at"]) >= start),
            key=lambda r: self._position(r, "created_at"),
        )
        if "page[after]" in params and route not in self.stuck:
            after = _decode(params["page[after]"])
            ordered = [r for r in ordered if self._position(r, "created_at") > after]
        page = deepcopy(ordered[:size])
        has_more = len(ordered) > size
        after_cursor = _encode(self._position(page[-1], "created_at")) if page else None
        before_cursor = _encode(self._position(page[0], "created_at")) if page else None
        path = f"{BASE}/api/v2/satisfaction_ratings.json"
        return httpx.Response(
            200,
            json={
                "satisfaction_ratings": page,
                "meta": {
                    "has_more": has_more,
                    "after_cursor": after_cursor,
                    "before_cursor": before_cursor,
                },
                "links": {
                    "prev": f"{path}?page[before]={before_cursor}" if before_cursor else None,
                    "next": f"{path}?page[after]={after_cursor}" if has_more else None,
                },
            },
        )
