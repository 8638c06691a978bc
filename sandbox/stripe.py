"""An emulator of the Stripe API's list endpoints over the book, as a Starlette app.

Serves `/v1/customers`, `/v1/subscriptions`, `/v1/invoices` and `/v1/events`, newest first
like Stripe, in the `{object: "list", url, has_more, data}` envelope, with `limit` (1-100,
default 10), `starting_after`, `ending_before`, `created[gt|gte|lt|lte]`, `expand[]`
(`data.customer`, `data.discounts`) and per-list filters (`email`; `customer`, `status`,
`price`; `customer`, `status`, `subscription`; `type`, `types[]`). Subscriptions leave out
canceled ones unless `status=all` (or `canceled`/`ended`); events go back 30 days only.

`ending_before=<id>` returns the `limit` objects immediately newer than `<id>`, still newest
first within the page; `has_more` then says whether even newer ones exist. Objects render
in the `Stripe-Version` of the request (default `DEFAULT_VERSION`), see `stripe_render`.
Auth: Bearer `STRIPE_API_KEY` (or Basic with the key as user name).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Final

from starlette.applications import Starlette
from starlette.datastructures import Headers, QueryParams
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.emulator import Gate, SandboxClock, json_response, unix
from sandbox.ratelimit import Decision, Fault, Limits, RateLimiter, retry_after_header
from sandbox.records import Book
from sandbox.stripe_render import DEFAULT_VERSION, StripeRenderer

__all__ = ["DEFAULT_VERSION", "EVENT_RETENTION_DAYS", "STRIPE_API_KEY", "stripe_app"]

STRIPE_API_KEY: Final = "sk_test_sandbox_51HealthAgentSandboxKey"  # published sandbox key
EVENT_RETENTION_DAYS: Final = 30
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
_EXPANDABLE = {"data.customer": "customer", "data.discounts": "discounts"}
_HIDDEN_BY_DEFAULT = {"canceled", "incomplete_expired"}


def _error(
    status: int, message: str, kind: str = "invalid_request_error", **extra: Any
) -> Response:
    return json_response({"error": {"message": message, "type": kind, **extra}}, status)


def mask_key(key: str) -> str:
    """A key as Stripe prints it in errors: the prefix, asterisks, the last four characters."""
    prefix = next(
        (p for p in ("sk_test_", "sk_live_", "rk_test_", "rk_live_") if key.startswith(p)), ""
    )
    hidden = max(0, len(key) - len(prefix) - 4)
    return prefix + "*" * hidden + key[len(prefix) + hidden :]


class _Policy:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def authenticate(self, headers: Headers) -> Response | None:
        auth = headers.get("authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        if auth.startswith("Basic "):
            try:
                key = base64.b64decode(auth[6:]).decode().partition(":")[0]
            except ValueError:
                key = ""
        if key == self.api_key:
            return None
        if not key:
            message = (
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details."
            )
        else:
            message = f"Invalid API Key provided: {mask_key(key)}"
        response = _error(401, message)
        response.headers["WWW-Authenticate"] = 'Bearer realm="Stripe"'
        return response

    def budgets(self, method: str, path: str) -> tuple[str, ...]:
        return ("default",)

    def rate_headers(self, decision: Decision) -> dict[str, str]:
        return {}

    def too_many(self, decision: Decision) -> Response:
        response = _error(
            429,
            "Request rate limit exceeded. You can learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
            doc_url="https://stripe.com/docs/error-codes/rate-limit",
        )
        response.headers["Retry-After"] = retry_after_header(decision.retry_after_s)
        response.headers["Stripe-Should-Retry"] = "true"
        return response

    def failure(self, fault: Fault) -> Response:
        if fault.status == 429:
            return self.too_many(Decision(False, "default", retry_after_s=fault.retry_after_s))
        response = _error(fault.status, "An unknown error occurred", "api_error")
        response.headers["Stripe-Should-Retry"] = "true"
        return response

    def extra_headers(self) -> dict[str, str]:
        return {"Request-Id": f"req_{secrets.token_hex(7)}"}


_BREAK: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "customers": lambda b: {**b, "metadata": list(b["metadata"].items())},
    "subscriptions": lambda b: {**b, "items": None},
    "invoices": lambda b: {k: v for k, v in b.items() if k != "created"},
    "events": lambda b: {k: v for k, v in b.items() if k != "data"},
}  # fmt: skip


class _Stripe:
    def __init__(self, book: Book, limits: Limits, clock: Callable[[], float]) -> None:
        self.render = StripeRenderer(book)
        self.faults, self.clock = limits.faults, clock
        # Newest first, as Stripe lists; the book keeps each list oldest first.
        self.rows: dict[str, Sequence[Any]] = {
            "customers": book.customers[::-1],
            "subscriptions": book.subscriptions[::-1],
            "invoices": book.invoices[::-1],
            "events": book.events[::-1],
        }
        self.rank = {
            name: {r.id: n for n, r in enumerate(rows)} for name, rows in self.rows.items()
        }

    def _filtered(self, name: str, params: QueryParams) -> list[Any]:
        rows = list(self.rows[name])
        if name == "customers" and (email := params.get("email")):
            rows = [c for c in rows if c.email == email]
        if name in ("subscriptions", "invoices") and (customer := params.get("customer")):
            rows = [r for r in rows if r.customer_id == customer]
        if name == "subscriptions":
            status, price = params.get("status"), params.get("price")
            rows = [s for s in rows if _status_matches(status, s.status)
                    and price in (None, s.price_id)]  # fmt: skip
        if name == "invoices":
            status, subscription = params.get("status"), params.get("subscription")
            rows = [i for i in rows if status in (None, i.status)
                    and subscription in (None, i.subscription_id)]  # fmt: skip
        if name == "events":
            oldest = self.clock() - EVENT_RETENTION_DAYS * 86_400
            types = params.getlist("types[]") or ([params["type"]] if params.get("type") else [])
            rows = [e for e in rows if unix(e.created) >= oldest
                    and (not types or any(_type_matches(t, e.type) for t in types))]  # fmt: skip
        bounds = {op: int(params[f"created[{op}]"]) for op in ("gt", "gte", "lt", "lte")
                  if params.get(f"created[{op}]")}  # fmt: skip
        if params.get("created"):
            bounds["gte"] = bounds["lte"] = int(params["created"])
        checks: dict[str, Callable[[int, int], bool]] = {
            "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
        }  # fmt: skip
        if not bounds:
            return rows
        return [
            r for r in rows if all(checks[op](unix(_created(r)), v) for op, v in bounds.items())
        ]

    async def list_objects(self, request: Request) -> Response:
        name = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        params = request.query_params
        version = request.headers.get("stripe-version") or DEFAULT_VERSION
        if not _VERSION.match(version):
            return _error(400, f"Invalid Stripe API version: {version}")
        try:
            limit = int(params.get("limit") or 10)
            rows = self._filtered(name, params)
        except ValueError as exc:
            return _error(400, f"Invalid integer: {exc}", code="parameter_invalid_integer")
        if not 1 <= limit <= 100:
            return _error(400, f"This value must be between 1 and 100 (it currently is '{limit}').",
                          param="limit")  # fmt: skip
        expand = set()
        for path in params.getlist("expand[]"):
            if path not in _EXPANDABLE or (name == "customers" or name == "events"):
                return _error(400, f"This property cannot be expanded ({path}).", param="expand")
            expand.add(_EXPANDABLE[path])
        after, before = params.get("starting_after"), params.get("ending_before")
        if after and before:
            return _error(
                400, "You may only specify one of these parameters: ending_before, starting_after."
            )
        anchor = after or before
        if anchor is not None and anchor not in self.rank[name]:
            param = "starting_after" if after else "ending_before"
            return _error(
                400, f"No such {name[:-1]}: '{anchor}'", code="resource_missing", param=param
            )
        rank = self.rank[name]
        if after:
            pivot = rank[after]
            newer_first = [r for r in rows if rank[r.id] > pivot]
            page, more = newer_first[:limit], len(newer_first) > limit
        elif before:
            pivot = rank[before]
            newer = [r for r in rows if rank[r.id] < pivot]
            page, more = newer[-limit:], len(newer) > limit
        else:
            page, more = rows[:limit], len(rows) > limit
        data = [self._render(name, r, version, expand) for r in page]
        if page:
            target = self.faults.malformed(name, self.rows[name][-1].id)
            data = [_BREAK[name](d) if d["id"] == target else d for d in data]
        response = json_response(
            {"object": "list", "url": f"/v1/{name}", "has_more": more, "data": data}
        )
        response.headers["Stripe-Version"] = version
        return response

    async def get_subscription(self, request: Request) -> Response:
        """`GET /v1/subscriptions/{id}`, with `expand[]=discounts` as Stripe takes it."""
        version = request.headers.get("stripe-version") or DEFAULT_VERSION
        wanted = request.path_params["id"]
        expand = set()
        for path in request.query_params.getlist("expand[]"):
            if path != "discounts":
                return _error(400, f"This property cannot be expanded ({path}).", param="expand")
            expand.add(path)
        for row in self.rows["subscriptions"]:
            if row.id == wanted:
                return json_response(self.render.subscription(row, version, expand))
        return _error(404, f"No such subscription: '{wanted}'", code="resource_missing", param="id")

    def _render(self, name: str, row: Any, version: str, expand: set[str]) -> dict[str, Any]:
        if name == "customers":
            return self.render.customer(row, version)
        if name == "subscriptions":
            return self.render.subscription(row, version, expand)
        if name == "invoices":
            return self.render.invoice(row, version, expand)
        return self.render.event(row, version)


def _created(row: Any) -> Any:
    return row.created


def _status_matches(wanted: str | None, status: str) -> bool:
    if wanted is None:
        return status not in _HIDDEN_BY_DEFAULT
    if wanted == "ended":
        return status in _HIDDEN_BY_DEFAULT
    return wanted in ("all", status)


def _type_matches(pattern: str, kind: str) -> bool:
    return kind.startswith(pattern[:-1]) if pattern.endswith("*") else kind == pattern


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, f"Unrecognized request URL ({request.method}: {request.url.path}).")


def stripe_app(
    book: Book,
    *,
    api_key: str = STRIPE_API_KEY,
    limits: Limits | None = None,
    clock: Callable[[], float] | None = None,
) -> Starlette:
    """The Stripe emulator for `book`; `limits` defaults to Stripe's test-mode budget.

    `clock` (Unix seconds) decides which events are within the 30 days Stripe keeps; it
    defaults to `SandboxClock.for_book(book)`.
    """
    limits = limits or Limits.vendor("stripe")
    state = _Stripe(book, limits, clock or SandboxClock.for_book(book))
    routes = [Route(f"/v1/{name}", state.list_objects, methods=["GET"]) for name in state.rows]
    routes.append(Route("/v1/subscriptions/{id:str}", state.get_subscription, methods=["GET"]))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                Gate, policy=_Policy(api_key), limiter=RateLimiter(limits), faults=limits.faults
            )
        ],
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.state.limits = limits
    return app
