"""A fake Intercom API (version 2.11): the companies scroll, conversation search by
`updated_at` and contact search by id, in the shapes of Intercom's published description.

Like Intercom it wants `Intercom-Version` on every request, keeps a scroll's position on
the server (one `scroll_param` for the whole scroll), answers 429 with `X-RateLimit-*`
headers and no Retry-After, and matches date filters by calendar day (UTC here), the
coarsest behaviour Intercom documents for its search APIs.
"""

from __future__ import annotations

import base64
import json
import math
from copy import deepcopy
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.connectors.fakes import FakeVendor, load

TOKEN = "dG9rOmZha2UtaW50ZXJjb20tYWNjZXNzLXRva2Vu"
VERSION = "2.11"
NOW = datetime(2025, 6, 10, 12, tzinfo=UTC)
LIMIT = 1666
DAY = 86_400


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {
        "type": "error.list",
        "request_id": "9b0d6fb9-d2d7-4904-a13c-97557a802323",
        "errors": [{"code": code, "message": message}],
    }
    return httpx.Response(status, json=body, headers=headers)


def _token(item: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps([item["created_at"] * 1000, item["id"]]).encode()).decode()


def _position(item: dict[str, Any]) -> tuple[int, str]:
    return item["created_at"], item["id"]


class FakeIntercom(FakeVendor):
    def __init__(self, token: str = TOKEN, page_size: int = 2) -> None:
        super().__init__(f"Bearer {token}")
        self.page_size = page_size
        """How many companies one scroll page holds (Intercom chooses it)."""
        self.now = NOW
        self.companies: list[dict[str, Any]] = load("intercom", "companies.json")
        self.contacts: list[dict[str, Any]] = load("intercom", "contacts.json")
        self.conversations: list[dict[str, Any]] = load("intercom", "conversations.json")
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.scroll_params: list[str | None] = []
        self.versions: set[str | None] = set()
        self._scrolls: dict[str, int] = {}

    def route(self, request: httpx.Request) -> str:
        return {
            ("GET", "/companies/scroll"): "companies",
            ("POST", "/conversations/search"): "conversations",
            ("POST", "/contacts/search"): "contacts",
        }.get((request.method, request.url.path), "unknown")

    def _quota(self, remaining: int, reset_in: int) -> dict[str, str]:
        reset = int(self.now.timestamp()) + reset_in
        return {
            "X-RateLimit-Limit": str(LIMIT),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset),
        }

    def unauthorized(self) -> httpx.Response:
        return _error(401, "unauthorized", "Access Token Invalid")

    def rate_limited(self, retry_after: str) -> httpx.Response:
        headers = self._quota(0, int(retry_after))
        message = f"Exceeded rate limit of {LIMIT} in 10_seconds"
        return _error(429, "rate_limit_exceeded", message, headers)

    def serve(self, route: str, request: httpx.Request) -> httpx.Response:
        version = request.headers.get("Intercom-Version")
        self.versions.add(version)
        if version != VERSION:
            return _error(400, "intercom_version_invalid", f"version {version!r} is not served")
        if route == "companies":
            response = self._scroll(request.url.params.get("scroll_param"), route in self.stuck)
        elif route in ("conversations", "contacts"):
            body = json.loads(request.content)
            self.bodies.append((route, body))
            response = self._search(route, body)
        else:
            response = _error(404, "not_found", "Resource Not Found")
        response.headers.update(self._quota(LIMIT - len(self.routes), 10))
        return response

    def _scroll(self, param: str | None, stuck: bool) -> httpx.Response:
        self.scroll_params.append(param)
        if param is None or (stuck and param in self._scrolls):
            param = param or f"25b649f7-4d33-4ef6-88f5-60e5b82443{len(self.scroll_params):02d}"
            self._scrolls[param] = 0
        if param not in self._scrolls:
            return _error(400, "parameter_invalid", "scroll_param is expired or invalid")
        start = self._scrolls[param]
        page = deepcopy(self.companies[start : start + self.page_size])
        self._scrolls[param] = start + len(page)
        if not page:
            del self._scrolls[param]
        return httpx.Response(
            200, json={"type": "list", "data": page, "total_count": None, "scroll_param": param}
        )

    def _search(self, route: str, body: dict[str, Any]) -> httpx.Response:
        query = body.get("query") or {}
        pagination = body.get("pagination") or {}
        per_page = pagination.get("per_page", 20)
        if not isinstance(per_page, int) or not 1 <= per_page <= 150:
            return _error(400, "parameter_invalid", "per_page must be 1 to 150")
        if route == "conversations":
            if query.get("field") != "updated_at" or query.get("operator") != ">":
                return _error(400, "query_invalid", "expected an updated_at > filter")
            start_of_next_day = (int(query["value"]) // DAY + 1) * DAY
            items = [c for c in self.conversations if c["updated_at"] >= start_of_next_day]
        else:
            if query.get("field") != "id" or query.get("operator") != "IN":
                return _error(400, "query_invalid", "expected an id IN filter")
            items = [c for c in self.contacts if c["id"] in query["value"]]
        matching = sorted(items, key=_position)
        remaining = matching
        after = pagination.get("starting_after")
        if after is not None and route not in self.stuck:
            created_ms, ident = json.loads(base64.b64decode(after))
            remaining = [c for c in matching if _position(c) > (created_ms // 1000, ident)]
        page = deepcopy(remaining[:per_page])
        pages: dict[str, Any] = {
            "type": "pages",
            "page": (len(matching) - len(remaining)) // per_page + 1,
            "per_page": per_page,
            "total_pages": math.ceil(len(matching) / per_page),
        }
        if len(remaining) > per_page:
            pages["next"] = {"per_page": per_page, "starting_after": _token(page[-1])}
        key, kind = (
            ("conversations", "conversation.list") if route == "conversations" else ("data", "list")
        )
        return httpx.Response(
            200, json={"type": kind, "pages": pages, "total_count": len(matching), key: page}
        )
