"""A fake Chargebee API v2: wrapped list entries paged with `limit` and an opaque
`next_offset`, `updated_at[after]` and `sort_by[asc]`, deleted records only with
`include_deleted=true`, Basic auth with the API key as the user, and Chargebee's error
bodies (`message`, `type`, `api_error_code`, `http_status_code`)."""

from __future__ import annotations

import base64
import json
from copy import deepcopy
from typing import Any

import httpx

from tests.connectors.fakes import FakeVendor, load

API_KEY = "test_cbFakeNorthwind0042"
SITE = "northwind-test"
KINDS = {"customers": "customer", "subscriptions": "subscription", "invoices": "invoice"}
SORTABLE = {"created_at", "updated_at"}


def _error(
    status: int, message: str, code: str, kind: str | None = None, **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = {
        "message": message,
        "api_error_code": code,
        "http_status_code": status,
        **extra,
    }
    if kind is not None:
        body["type"] = kind
    return httpx.Response(status, json=body)


class FakeChargebee(FakeVendor):
    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__("Basic " + base64.b64encode(f"{api_key}:".encode()).decode())
        self.collections: dict[str, list[dict[str, Any]]] = {
            route: load("chargebee", f"{route}.json")["list"] for route in KINDS
        }
        self.requests: list[httpx.Request] = []

    def put(self, route: str, record: dict[str, Any]) -> None:
        """A record is created or changed: it replaces the entry with its id."""
        kind = KINDS[route]
        entry: dict[str, Any] = {kind: record}
        if kind == "subscription":
            [customer] = [
                e["customer"]
                for e in self.collections["customers"]
                if e["customer"]["id"] == record["customer_id"]
            ]
            entry["customer"] = customer
        entries = self.collections[route]
        entries[:] = [e for e in entries if e[kind]["id"] != record["id"]] + [entry]

    def record(self, route: str, ident: str) -> dict[str, Any]:
        kind = KINDS[route]
        [found] = [e[kind] for e in self.collections[route] if e[kind]["id"] == ident]
        return deepcopy(found)

    def route(self, request: httpx.Request) -> str:
        return request.url.path.removeprefix("/api/v2/")

    def unauthorized(self) -> httpx.Response:
        return _error(
            401,
            "Sorry, authentication failed. Invalid api key",
            "api_authentication_failed",
            error_code="api_authentication_invalid_key",
        )

    def rate_limited(self, retry_after: str) -> httpx.Response:
        response = _error(
            429,
            "Sorry, access has been blocked temporarily due to request count exceeding "
            "acceptable limits. Please try after some time.",
            "api_request_limit_exceeded",
        )
        response.headers["Retry-After"] = retry_after
        return response

    def serve(self, route: str, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if route not in KINDS:
            return _error(404, "Sorry, we couldn't find that resource", "resource_not_found")
        kind, params = KINDS[route], request.url.params
        limit = int(params.get("limit", "10"))
        if not 1 <= limit <= 100:
            return self._invalid("limit", f"limit : invalid value {limit}")
        entries = [deepcopy(e) for e in self.collections[route]]
        if params.get("include_deleted") != "true":
            entries = [e for e in entries if not e[kind].get("deleted")]
        if "updated_at[after]" in params:
            after = int(params["updated_at[after]"])
            entries = [e for e in entries if e[kind]["updated_at"] > after]
        field = params.get("sort_by[asc]")
        if field is not None and field not in SORTABLE:
            return self._invalid("sort_by[asc]", f"sort_by[asc] : invalid value {field}")
        if field is None:  # Chargebee's default order: newest first
            entries.sort(key=lambda e: (e[kind]["created_at"], e[kind]["id"]), reverse=True)
        else:
            entries.sort(key=lambda e: (e[kind][field], e[kind]["id"]))
        start = 0
        offset = None if route in self.stuck else params.get("offset")
        if offset is not None:
            ids = [e[kind]["id"] for e in entries]
            try:
                _, last = json.loads(offset)
                start = ids.index(last) + 1
            except (ValueError, TypeError):
                return self._invalid("offset", "offset : invalid value")
        page = entries[start : start + limit]
        body: dict[str, Any] = {"list": page}
        if start + limit < len(entries):
            last_record = page[-1][kind]
            body["next_offset"] = json.dumps(
                [str(last_record["updated_at"] * 1000), last_record["id"]]
            )
        return httpx.Response(200, json=body)

    @staticmethod
    def _invalid(param: str, message: str) -> httpx.Response:
        return _error(400, message, "invalid_request", "invalid_request", param=param)
