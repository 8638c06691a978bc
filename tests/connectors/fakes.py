"""In-memory vendor APIs served through `httpx.MockTransport`, for the connector tests.

Each fake keeps its records in the vendor's documented shape (loaded from the JSON fixtures)
and answers with real paging: tokens, filters, `has_more`. Tests flip three switches per
route: `stuck` (ignore paging tokens, so the same page comes back), `throttle` (answer the
next request with 429 and a Retry-After), `failures` (answer the next requests with a 5xx
status, or time out), and a wrong credential (401 from the auth check).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).parent.parent / "fixtures" / "connectors"


def load(vendor: str, name: str) -> Any:
    return json.loads((FIXTURES / vendor / name).read_text())


class FakeVendor:
    """The switches and bookkeeping every fake shares; subclasses route and serve."""

    def __init__(self, authorization: str) -> None:
        self.authorization = authorization
        self.routes: list[str] = []
        self.stuck: set[str] = set()
        self.throttle: dict[str, str] = {}
        self.failures: dict[str, list[str]] = {}
        """Per route, what the next requests meet: an HTTP status ("503") or "timeout"."""
        self.response_headers: dict[str, str] = {}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def calls(self, route: str) -> int:
        return self.routes.count(route)

    def handle(self, request: httpx.Request) -> httpx.Response:
        route = self.route(request)
        self.routes.append(route)
        if request.headers.get("Authorization") != self.authorization:
            return self.unauthorized()
        if route in self.throttle:
            return self.rate_limited(self.throttle.pop(route))
        if self.failures.get(route):
            failure = self.failures[route].pop(0)
            if failure == "timeout":
                raise httpx.ReadTimeout("the vendor did not answer in time", request=request)
            return httpx.Response(int(failure), json={"message": "temporarily unavailable"})
        response = self.serve(route, request)
        response.headers.update(self.response_headers)
        return response

    def route(self, request: httpx.Request) -> str:
        raise NotImplementedError

    def serve(self, route: str, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    def unauthorized(self) -> httpx.Response:
        return httpx.Response(401, json={"error": "unauthorized"})

    def rate_limited(self, retry_after: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": retry_after}, json={})
