"""What every vendor emulator shares: the sandbox clock, the request gate, small helpers.

The `Gate` is an ASGI middleware that runs before any endpoint: it checks credentials,
answers injected faults, and counts the request against the vendor's budgets, adding the
vendor's rate-limit headers to whatever the endpoint returns. Each vendor supplies a
`VendorPolicy` that knows its own headers and error shapes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.ratelimit import Decision, Fault, Faults, RateLimiter
from sandbox.records import Book

__all__ = [
    "Clock",
    "Gate",
    "SandboxClock",
    "VendorPolicy",
    "base_url",
    "iso_ms",
    "iso_z",
    "json_response",
    "parse_int",
    "route_path",
    "unix",
]

Clock = Callable[[], float]


class SandboxClock:
    """Unix time as the emulators see it.

    For a book of today it is the real clock. For a book of another day it starts at the
    book's `now` and then runs at real speed, so "the last 30 days" and "the last minute"
    mean the same relative to the book whatever day the tests run. `frozen=True` stops it.
    """

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        self._offset = 0.0 if start is None else start.timestamp() - time.time()
        self._frozen_at = (start or datetime.now(UTC)).timestamp() if frozen else None

    @classmethod
    def for_book(cls, book: Book, *, frozen: bool = False) -> SandboxClock:
        lag = time.time() - book.now.timestamp()
        return cls(None if 0 <= lag < 86_400 and not frozen else book.now, frozen=frozen)

    def __call__(self) -> float:
        if self._frozen_at is not None:
            return self._frozen_at
        return time.time() + self._offset


class VendorPolicy(Protocol):
    """How one vendor authenticates, limits and fails."""

    def authenticate(self, headers: Headers) -> Response | None:
        """None when the credentials are right, else the vendor's 401."""

    def budgets(self, method: str, path: str) -> tuple[str, ...]:
        """The budget names a request counts against; the first one reports headers."""

    def rate_headers(self, decision: Decision) -> dict[str, str]:
        """Headers describing the remaining budget, added to allowed responses."""

    def too_many(self, decision: Decision) -> Response:
        """The vendor's 429."""

    def failure(self, fault: Fault) -> Response:
        """The vendor's answer for an injected fault (429 or 5xx)."""

    def extra_headers(self) -> dict[str, str]:
        """Headers on every response (a request id, for example)."""


def route_path(scope: Scope) -> str:
    """The request path relative to where the app is mounted."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


class Gate:
    """ASGI middleware: credentials, then injected faults, then rate limits."""

    def __init__(
        self, app: ASGIApp, policy: VendorPolicy, limiter: RateLimiter, faults: Faults
    ) -> None:
        self.app = app
        self.policy = policy
        self.limiter = limiter
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        extra = self.policy.extra_headers()
        response = self.policy.authenticate(Headers(scope=scope))
        if response is None and (fault := self.faults.take(path)) is not None:
            response = self.policy.failure(fault)
        if response is None:
            decision = self.limiter.hit(*self.policy.budgets(scope["method"], path))
            if decision.allowed:
                extra.update(self.policy.rate_headers(decision))
            else:
                response = self.policy.too_many(decision)
        if response is not None:
            for key, value in extra.items():
                response.headers.setdefault(key, value)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in extra.items():
                    headers[key] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def base_url(request: Request) -> str:
    """The URL the vendor app is served under, e.g. `http://127.0.0.1:5000/zendesk`."""
    url = request.url
    return f"{url.scheme}://{url.netloc}{request.scope.get('root_path', '')}"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def iso_z(moment: datetime) -> str:
    """`2026-05-01T09:30:00Z`, as Zendesk writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(moment: datetime) -> str:
    """`2026-05-01T09:30:00.123Z`, as HubSpot writes times."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def unix(moment: datetime) -> int:
    """Whole seconds since the epoch, as Stripe and Zendesk cursors count."""
    return int(moment.timestamp())


def parse_int(raw: str | None, default: int | None = None) -> int | None:
    """An integer query parameter; ValueError when present but not an integer."""
    if raw is None or raw == "":
        return default
    return int(raw)
