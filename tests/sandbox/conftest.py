"""Shared fixtures of the sandbox tests: one book of a fixed day, built once per run.

`asgi_client` calls an app in-process through `httpx.ASGITransport`, wrapped in a
synchronous transport so the tests read like plain httpx code.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import date

import anyio
import httpx
import pytest
from starlette.types import ASGIApp

from sandbox.book import Book, generate_book
from sandbox.emulator import SandboxClock
from sandbox.hubspot import HUBSPOT_TOKEN
from sandbox.stripe import STRIPE_API_KEY
from sandbox.zendesk import ZENDESK_API_TOKEN, ZENDESK_EMAIL

TODAY = date(2026, 5, 20)
HUBSPOT_AUTH = {"Authorization": f"Bearer {HUBSPOT_TOKEN}"}
STRIPE_AUTH = {"Authorization": f"Bearer {STRIPE_API_KEY}"}
ZENDESK_AUTH = {
    "Authorization": "Basic "
    + base64.b64encode(f"{ZENDESK_EMAIL}/token:{ZENDESK_API_TOKEN}".encode()).decode()
}


@pytest.fixture(scope="session")
def book() -> Book:
    return generate_book(seed=7, accounts=300, today=TODAY)


@pytest.fixture(scope="session")
def clock(book: Book) -> SandboxClock:
    """The emulators' clock stopped at the book's `now`."""
    return SandboxClock.for_book(book, frozen=True)


class _SyncASGITransport(httpx.BaseTransport):
    def __init__(self, app: ASGIApp) -> None:
        self._transport = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> httpx.Response:
            response = await self._transport.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return anyio.run(call)


def asgi_client(app: ASGIApp, headers: Mapping[str, str] | None = None) -> httpx.Client:
    """A synchronous httpx client that calls `app` in-process."""
    return httpx.Client(
        transport=_SyncASGITransport(app), base_url="http://sandbox.test", headers=headers
    )
