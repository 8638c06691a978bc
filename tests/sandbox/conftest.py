"""Shared fixtures of the sandbox tests: one book of a fixed day, built once per run."""

from __future__ import annotations

import base64
from datetime import date

import pytest

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
