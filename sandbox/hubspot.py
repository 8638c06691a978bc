"""An emulator of the HubSpot CRM v3 API over the book, as a Starlette app.

Serves owners, the companies and deals lists (with `archived=true`, and with
`propertiesWithHistory` for companies: `sandbox.hubspot_traits`), the companies and
deals search (`hs_lastmodifieddate` windows, at most 200 per page and 10,000 results per
query: paging past the cap answers 400, as HubSpot does) and the v3 associations batch
read. Bearer auth with `HUBSPOT_TOKEN`. Search has its own budget (5/s) and, like HubSpot,
sends no `X-HubSpot-RateLimit-*` headers; everything else does.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.emulator import Gate, base_url, iso_ms, json_response, parse_int
from sandbox.hubspot_records import (
    COMPANY_DEFAULTS,
    DEAL_DEFAULTS,
    CrmObject,
    FilterError,
    broken,
    company_object,
    deal_object,
    matches,
    owner_object,
    sort_key,
)
from sandbox.hubspot_traits import HISTORY_PAGE_LIMIT, render_history, with_traits
from sandbox.ratelimit import Decision, Fault, Limits, RateLimiter, retry_after_header
from sandbox.records import Book

__all__ = ["HUBSPOT_TOKEN", "SEARCH_RESULT_CAP", "hubspot_app"]

HUBSPOT_TOKEN: Final = "sandbox-hubspot-token"  # noqa: S105  # the sandbox's published token
SEARCH_RESULT_CAP: Final = 10_000
_KIND_IDS = {"0-2": "companies", "0-3": "deals"}  # HubSpot's object type ids
_SINGULAR = {"companies": "company", "deals": "deal"}


def _error(status: int, message: str, category: str, **extra: Any) -> Response:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return json_response(body, status)


class _Policy:
    def __init__(self, token: str) -> None:
        self.token = token

    def authenticate(self, headers: Headers) -> Response | None:
        if headers.get("authorization", "") == f"Bearer {self.token}":
            return None
        return _error(
            401,
            "Authentication credentials not found. This API supports OAuth 2.0 authentication "
            "and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            "INVALID_AUTHENTICATION",
        )

    def budgets(self, method: str, path: str) -> tuple[str, ...]:
        return ("search",) if path.endswith("/search") else ("default",)

    def rate_headers(self, decision: Decision) -> dict[str, str]:
        if decision.budget != "default" or decision.limit is None:
            return {}
        return {
            "X-HubSpot-RateLimit-Max": str(decision.limit),
            "X-HubSpot-RateLimit-Remaining": str(decision.remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(
                round((decision.window_s or 0) * 1000)
            ),
        }

    def too_many(self, decision: Decision) -> Response:
        policy = decision.policy or (
            "SECONDLY" if decision.budget == "search" else "TEN_SECONDLY_ROLLING"
        )
        response = json_response(
            {
                "status": "error",
                "message": f"You have reached your {policy.lower()} limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": policy,
                "groupName": "publicapi:private-app:sandbox",
            },
            429,
            {"Retry-After": retry_after_header(decision.retry_after_s)},
        )
        response.headers.update(
            self.rate_headers(Decision(True, decision.budget, decision.limit, 0, decision.window_s))
        )
        return response

    def failure(self, fault: Fault) -> Response:
        if fault.status == 429:
            return self.too_many(
                Decision(
                    False,
                    "default",
                    retry_after_s=fault.retry_after_s,
                    policy="TEN_SECONDLY_ROLLING",
                )
            )
        return _error(fault.status, "internal error", "INTERNAL_ERROR")

    def extra_headers(self) -> dict[str, str]:
        return {}


class _HubSpot:
    def __init__(self, book: Book, limits: Limits, search_cap: int) -> None:
        self.faults = limits.faults
        self.search_cap = search_cap
        self.owners = sorted(book.owners, key=lambda o: int(o.id))
        companies, self.history = with_traits(
            [company_object(c) for c in sorted(book.companies, key=lambda c: int(c.id))],
            book.traits,
        )
        self.objects: dict[str, list[CrmObject]] = {
            "companies": [c for c in companies if c.archived_at is None],
            "deals": [deal_object(d) for d in sorted(book.deals, key=lambda d: int(d.id))],
        }
        self.archived: dict[str, list[CrmObject]] = {
            "companies": [c for c in companies if c.archived_at is not None],
            "deals": [],
        }
        self.defaults = {"companies": COMPANY_DEFAULTS, "deals": DEAL_DEFAULTS}
        self._orders: dict[tuple[str, str, bool], list[CrmObject]] = {}
        self.links: dict[tuple[str, str], dict[str, list[str]]] = {
            ("deals", "companies"): {},
            ("companies", "deals"): {},
        }
        for d in book.deals:
            self.links["deals", "companies"].setdefault(d.id, []).append(d.company_id)
            self.links["companies", "deals"].setdefault(d.company_id, []).append(d.id)

    def _maybe_break(
        self, stream: str, bodies: list[dict[str, Any]], first: str
    ) -> list[dict[str, Any]]:
        target = self.faults.malformed(stream, first)
        return [broken(b) if b["id"] == target else b for b in bodies]

    async def owners_list(self, request: Request) -> Response:
        try:
            limit = min(parse_int(request.query_params.get("limit"), 100) or 100, 500)
            after = max(0, parse_int(request.query_params.get("after"), 0) or 0)
        except ValueError:
            return _error(400, "limit and after must be integers", "VALIDATION_ERROR")
        rows = self.owners
        if email := request.query_params.get("email"):
            rows = [o for o in rows if o.email == email.lower()]
        if request.query_params.get("archived") == "true":
            rows = []
        page = [owner_object(o) for o in rows[after : after + limit]]
        body: dict[str, Any] = {"results": self._maybe_break("owners", page, self.owners[0].id)}
        if after + limit < len(rows):
            nxt = str(after + limit)
            body["paging"] = {
                "next": {
                    "after": nxt,
                    "link": f"{base_url(request)}/crm/v3/owners/?limit={limit}&after={nxt}",
                }
            }
        return json_response(body)

    async def objects_list(self, request: Request) -> Response:
        kind = _KIND_IDS.get(request.path_params["kind"], request.path_params["kind"])
        if kind not in self.objects:
            return await _not_found(request, HTTPException(404))
        params = request.query_params
        past = [p for v in params.getlist("propertiesWithHistory") for p in v.split(",") if p]
        try:
            limit = min(parse_int(params.get("limit"), 10) or 10, 100)
            after = max(0, parse_int(params.get("after"), 0) or 0)
        except ValueError:
            return _error(400, "limit and after must be integers", "VALIDATION_ERROR")
        if past:
            limit = min(limit, HISTORY_PAGE_LIMIT)
        rows = self.archived[kind] if params.get("archived") == "true" else self.objects[kind]
        wanted = [p for v in params.getlist("properties") for p in v.split(",") if p] or None
        page = [o.render(wanted, self.defaults[kind]) for o in rows[after : after + limit]]
        if past:
            chosen = rows[after : after + limit]
            page = [
                render_history(b, o, past, self.history) for b, o in zip(page, chosen, strict=True)
            ]
        body: dict[str, Any] = {"results": self._maybe_break(kind, page, self.objects[kind][0].id)}
        if after + limit < len(rows):
            nxt = str(after + limit)
            link = f"{base_url(request)}/crm/v3/objects/{kind}?limit={limit}&after={nxt}"
            body["paging"] = {"next": {"after": nxt, "link": link}}
        return json_response(body)

    async def search(self, request: Request) -> Response:
        kind = _KIND_IDS.get(request.path_params["kind"], request.path_params["kind"])
        if kind not in self.objects:
            return await _not_found(request, HTTPException(404))
        try:
            query = json.loads(await request.body() or b"{}")
            if not isinstance(query, dict):
                raise FilterError("the request body must be a JSON object")
            limit, after = int(query.get("limit", 10)), int(query.get("after") or 0)
            if not 0 < limit <= 200 or after < 0:
                raise FilterError("limit must be between 1 and 200 and after not negative")
            groups = query.get("filterGroups") or []
            if len(groups) > 5 or any(len(g.get("filters", [])) > 6 for g in groups):
                raise FilterError("at most 5 filterGroups of at most 6 filters each")
            rows = [
                o
                for o in self.objects[kind]
                if not groups
                or any(all(matches(o, f) for f in g.get("filters", [])) for g in groups)
            ]
            rows = self._sorted(kind, rows, query.get("sorts") or [])
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            return _error(400, f"Invalid search request: {exc}", "VALIDATION_ERROR")
        if after + limit > self.search_cap:
            return _error(
                400,
                f"Search results are capped at {self.search_cap}: after ({after}) + limit "
                f"({limit}) goes past it. Narrow the query and start again.",
                "VALIDATION_ERROR",
            )
        wanted = [p for p in query.get("properties") or [] if isinstance(p, str)] or None
        page = [o.render(wanted, self.defaults[kind]) for o in rows[after : after + limit]]
        body: dict[str, Any] = {
            "total": len(rows),
            "results": self._maybe_break(kind, page, self.objects[kind][0].id),
        }
        if after + limit < len(rows):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return json_response(body)

    def _sorted(self, kind: str, rows: list[CrmObject], sorts: list[Any]) -> list[CrmObject]:
        """`rows` (objects of `kind`) in the order of the first sort.

        Every object of the kind is sorted once per sort and cached; picking `rows` out of
        that order gives what sorting them would, as ties are broken by id.
        """
        for spec in reversed(sorts[:1]):
            if isinstance(spec, str):
                name, descending = spec.lstrip("-"), spec.startswith("-")
            else:
                name, descending = spec["propertyName"], spec.get("direction") == "DESCENDING"
            key = (kind, name, descending)
            if key not in self._orders:
                self._orders[key] = sorted(
                    self.objects[kind],
                    key=lambda o: (sort_key(o, name), int(o.id)),
                    reverse=descending,
                )
            if len(rows) == len(self.objects[kind]):
                rows = self._orders[key]
            else:
                chosen = {id(o) for o in rows}
                rows = [o for o in self._orders[key] if id(o) in chosen]
        return rows

    async def associations(self, request: Request) -> Response:
        pair = (request.path_params["from_type"], request.path_params["to_type"])
        if pair not in self.links:
            return _error(
                400, f"Unsupported association {pair[0]} to {pair[1]}", "VALIDATION_ERROR"
            )
        try:
            inputs = [str(i["id"]) for i in json.loads(await request.body())["inputs"]]
        except (ValueError, KeyError, TypeError):
            return _error(
                400, 'Invalid input: expected {"inputs": [{"id": ...}]}', "VALIDATION_ERROR"
            )
        if len(inputs) > 1000:
            return _error(400, "Too many inputs: at most 1000 per batch", "VALIDATION_ERROR")
        started = datetime.now(UTC)
        one, other = _SINGULAR[pair[0]], _SINGULAR[pair[1]]
        link_type = f"{one}_to_{other}"
        results, errors = [], []
        for oid in dict.fromkeys(inputs):
            targets = self.links[pair].get(oid)
            if targets:
                results.append(
                    {"from": {"id": oid}, "to": [{"id": t, "type": link_type} for t in targets]}
                )
            else:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": f"No {other} is associated with {one} {oid}.",
                        "context": {"fromObjectId": [oid]},
                        "errors": [],
                        "links": {},
                    }
                )
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_ms(started),
            "completedAt": iso_ms(datetime.now(UTC)),
        }
        if errors:
            body.update(numErrors=len(errors), errors=errors)
        return json_response(body, 207 if errors else 200)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    return _error(
        status, f"Unable to route {request.method} {request.url.path}", "OBJECT_NOT_FOUND"
    )


def hubspot_app(
    book: Book,
    *,
    token: str = HUBSPOT_TOKEN,
    limits: Limits | None = None,
    search_cap: int = SEARCH_RESULT_CAP,
) -> Starlette:
    """The HubSpot emulator for `book`; `limits` defaults to HubSpot's real budgets."""
    limits = limits or Limits.vendor("hubspot")
    state = _HubSpot(book, limits, search_cap)
    limiter = RateLimiter(limits)
    kinds = "{kind:str}"
    routes = [
        Route("/crm/v3/owners", state.owners_list, methods=["GET"]),
        Route("/crm/v3/owners/", state.owners_list, methods=["GET"]),
        Route(f"/crm/v3/objects/{kinds}/search", state.search, methods=["POST"]),
        Route(f"/crm/v3/objects/{kinds}", state.objects_list, methods=["GET"]),
        Route(
            "/crm/v3/associations/{from_type:str}/{to_type:str}/batch/read",
            state.associations,
            methods=["POST"],
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Gate, policy=_Policy(token), limiter=limiter, faults=limits.faults)],
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.state.limits = limits
    return app
