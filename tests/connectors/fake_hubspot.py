"""A fake HubSpot CRM v3: owners, object search with its 10,000-result cap, company lists
(live or archived) with `propertiesWithHistory` (at most 50 a page, as HubSpot), deal-to-company
association batch reads, and task creation (`POST /crm/v3/objects/tasks`, each request body
recorded), in the shapes of HubSpot's public spec."""

from __future__ import annotations

import json
from collections.abc import Callable
from copy import deepcopy
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.connectors.fakes import FakeVendor, load

TOKEN = "pat-na1-fake-token"
HISTORY_PAGE_LIMIT = 50
"""HubSpot answers at most 50 objects a page when property history is asked for."""


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class FakeHubSpot(FakeVendor):
    def __init__(self, token: str = TOKEN, result_cap: int = 10_000) -> None:
        super().__init__(f"Bearer {token}")
        self.result_cap = result_cap
        self.owners: list[dict[str, Any]] = load("hubspot", "owners.json")
        self.companies: list[dict[str, Any]] = load("hubspot", "companies.json")
        self.archived_companies: list[dict[str, Any]] = load("hubspot", "archived_companies.json")
        self.deals: list[dict[str, Any]] = load("hubspot", "deals.json")
        self.archived_deals: list[dict[str, Any]] = load("hubspot", "archived_deals.json")
        self.deal_companies: dict[str, list[dict[str, str]]] = load(
            "hubspot", "deal_companies.json"
        )
        self.search_bodies: list[dict[str, Any]] = []
        self.history: dict[str, dict[str, list[tuple[str, str]]]] = {}
        """Company id -> property -> its (value, ISO time set), oldest first; a property
        without one has its current value, set when the company was created."""
        self.list_params: list[dict[str, str]] = []
        """The query of every company list request."""
        self._first_search: dict[str, dict[str, Any]] = {}
        self.tasks: list[dict[str, Any]] = []
        """Tasks created, as HubSpot would return them."""
        self.task_requests: list[dict[str, Any]] = []
        """Every task create request body, valid or not."""
        self.after_task_create: list[str] = []
        """What the next task creates meet once the task exists: "timeout" or a 5xx status
        (the task is created, the answer is lost)."""
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def route(self, request: httpx.Request) -> str:
        path = request.url.path
        archived = request.url.params.get("archived") == "true"
        return {
            "/crm/v3/owners": "owners",
            "/crm/v3/objects/companies/search": "companies",
            "/crm/v3/objects/deals/search": "deals",
            "/crm/v3/objects/companies": "archived_companies" if archived else "companies_list",
            "/crm/v3/objects/deals": "archived_deals" if archived else "deals_list",
            "/crm/v3/associations/deals/companies/batch/read": "associations",
            "/crm/v3/objects/tasks": "tasks_create" if request.method == "POST" else "unknown",
        }.get(path, "unknown")

    def unauthorized(self) -> httpx.Response:
        return httpx.Response(
            401,
            json={
                "status": "error",
                "message": "Authentication credentials not found.",
                "correlationId": "0b7d2b1e-3c4f-4a9e-9a53-2f0c5b0e6a11",
                "category": "INVALID_AUTHENTICATION",
            },
        )

    def rate_limited(self, retry_after: str) -> httpx.Response:
        return httpx.Response(
            429,
            headers={"Retry-After": retry_after},
            json={
                "status": "error",
                "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": "c033cdaa-2c40-4a64-ae48-b4cec88dad24",
                "policyName": "SECONDLY",
            },
        )

    def serve(self, route: str, request: httpx.Request) -> httpx.Response:
        if route == "owners":
            return self._list(self.owners, request, route)
        if route in ("companies_list", "archived_companies"):
            items = self.companies if route == "companies_list" else self.archived_companies
            return self._companies(items, request, route)
        if route == "archived_deals":
            return self._list(self.archived_deals, request, route)
        if route in ("companies", "deals"):
            return self._search(getattr(self, route), request, route)
        if route == "associations":
            return self._associations(request)
        if route == "tasks_create":
            return self._create_task(request)
        return httpx.Response(404, json={"status": "error", "message": "not found"})

    def _page(self, items: list[Any], after: int, limit: int, link: str) -> dict[str, Any]:
        body: dict[str, Any] = {"results": deepcopy(items[after : after + limit])}
        if after + limit < len(items):
            nxt = str(after + limit)
            body["paging"] = {"next": {"after": nxt, "link": f"{link}?after={nxt}"}}
        return body

    def _list(self, items: list[Any], request: httpx.Request, route: str) -> httpx.Response:
        params = request.url.params
        after = 0 if route in self.stuck else int(params.get("after", "0"))
        limit = int(params.get("limit", "100"))
        return httpx.Response(200, json=self._page(items, after, limit, request.url.path))

    def _companies(self, items: list[Any], request: httpx.Request, route: str) -> httpx.Response:
        """A company list; with `propertiesWithHistory`, each named property's values newest
        first with the time each was set, and at most 50 companies a page."""
        params = request.url.params
        self.list_params.append(dict(params))
        past = [p for p in params.get("propertiesWithHistory", "").split(",") if p]
        after = 0 if route in self.stuck else int(params.get("after", "0"))
        limit = int(params.get("limit", "100"))
        if past:
            limit = min(limit, HISTORY_PAGE_LIMIT)
        body = self._page(items, after, limit, request.url.path)
        wanted = [p for p in params.get("properties", "").split(",") if p]
        for result in body["results"]:
            props = result["properties"]
            if past:
                result["propertiesWithHistory"] = {
                    name: self._history_of(result, name) for name in past
                }
            if wanted:
                result["properties"] = {
                    k: v for k, v in props.items() if k in wanted or k == "hs_object_id"
                }
        return httpx.Response(200, json=body)

    def _history_of(self, company: dict[str, Any], name: str) -> list[dict[str, Any]]:
        props = company["properties"]
        entries = self.history.get(company["id"], {}).get(name)
        if entries is None:
            current = props.get(name)
            entries = [] if current is None else [(current, props["createdate"])]
        return [
            {"value": value, "timestamp": at, "sourceType": "CRM_UI"}
            for value, at in reversed(entries)
        ]

    def _search(self, items: list[Any], request: httpx.Request, route: str) -> httpx.Response:
        body = json.loads(request.content)
        self.search_bodies.append(body)
        first = self._first_search.setdefault(route, body)
        if route in self.stuck:  # ignores every way of paging on, later windows included
            body = first
        since = int(body["filterGroups"][0]["filters"][0]["value"])
        limit = int(body.get("limit", 10))
        after = 0 if route in self.stuck else int(body.get("after", "0"))
        if after >= self.result_cap:
            return httpx.Response(
                400,
                json={
                    "status": "error",
                    "message": f"Search results are limited to {self.result_cap}",
                    "category": "VALIDATION_ERROR",
                },
            )
        matching = sorted(
            (o for o in items if _ms(o["properties"]["hs_lastmodifieddate"]) >= since),
            key=lambda o: (_ms(o["properties"]["hs_lastmodifieddate"]), o["id"]),
        )
        page = self._page(matching, after, limit, request.url.path)
        wanted = body.get("properties") or []
        for result in page["results"]:
            result["properties"] = {
                k: v for k, v in result["properties"].items() if k in wanted or k == "hs_object_id"
            }
        return httpx.Response(200, json={"total": len(matching), **page})

    def _associations(self, request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        results = [
            {"from": {"id": i["id"]}, "to": self.deal_companies[i["id"]]}
            for i in inputs
            if i["id"] in self.deal_companies
        ]
        return httpx.Response(
            200,
            json={
                "status": "COMPLETE",
                "results": results,
                "startedAt": "2025-06-10T00:00:00.000Z",
                "completedAt": "2025-06-10T00:00:00.050Z",
            },
        )

    def _create_task(self, request: httpx.Request) -> httpx.Response:
        """`SimplePublicObjectInputForCreate` in, 201 `SimplePublicObject` out."""
        body = json.loads(request.content)
        self.task_requests.append(body)
        problem = _task_problem(body)
        if problem:
            return httpx.Response(
                400, json={"status": "error", "message": problem, "category": "VALIDATION_ERROR"}
            )
        stamp = self.clock().astimezone(UTC).isoformat(timespec="milliseconds")
        stamp = stamp.replace("+00:00", "Z")
        task_id = str(90_000_000_000 + len(self.tasks) + 1)
        task = {
            "id": task_id,
            "properties": {
                **body["properties"],
                "hs_object_id": task_id,
                "hs_createdate": stamp,
                "hs_lastmodifieddate": stamp,
            },
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }
        self.tasks.append({**task, "associations": deepcopy(body["associations"])})
        if self.after_task_create:
            after = self.after_task_create.pop(0)
            if after == "timeout":
                raise httpx.ReadTimeout("the vendor did not answer in time", request=request)
            return httpx.Response(int(after), json={"message": "internal error"})
        return httpx.Response(201, json=task)


def _task_problem(body: Any) -> str | None:
    """Why HubSpot would refuse this task create, per its spec; None when it would not."""
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        return "properties is required"
    properties = body["properties"]
    if not all(isinstance(v, str) for v in properties.values()):
        return "property values must be strings"
    if not properties.get("hs_timestamp"):
        return "hs_timestamp is required"
    associations = body.get("associations")
    if not isinstance(associations, list):
        return "associations is required"
    for association in associations:
        target = association.get("to") if isinstance(association, dict) else None
        types = association.get("types") if isinstance(association, dict) else None
        if not isinstance(target, dict) or not isinstance(target.get("id"), str):
            return "associations[].to.id is required"
        if not isinstance(types, list) or not types:
            return "associations[].types is required"
        for spec in types:
            if spec.get("associationCategory") not in (
                "HUBSPOT_DEFINED",
                "INTEGRATOR_DEFINED",
                "USER_DEFINED",
                "WORK",
            ) or not isinstance(spec.get("associationTypeId"), int):
                return "associations[].types[] needs associationCategory and associationTypeId"
    return None
