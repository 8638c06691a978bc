"""The Zendesk emulator's exports and lists page, resume and limit like Zendesk."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from sandbox.book import Book
from sandbox.emulator import SandboxClock
from sandbox.ratelimit import Budget, Limits
from sandbox.zendesk import zendesk_app
from tests.sandbox.conftest import ZENDESK_AUTH, asgi_client

TICKETS = "/api/v2/incremental/tickets/cursor.json"
ORGS = "/api/v2/incremental/organizations.json"
RATINGS = "/api/v2/satisfaction_ratings.json"


def _client(book: Book, clock: Callable[[], float], limits: Limits | None = None) -> httpx.Client:
    app = zendesk_app(book, limits=limits or Limits.unlimited(), clock=clock)
    return asgi_client(app, ZENDESK_AUTH)


def _export(client: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], str, int]:
    """Every ticket from `params`, the final cursor, and the number of pages."""
    rows: list[dict[str, Any]] = []
    pages = 0
    while True:
        body = client.get(TICKETS, params=params).json()
        pages += 1
        rows += body["tickets"]
        params = {"cursor": body["after_cursor"], "per_page": params.get("per_page", 1000)}
        if body["end_of_stream"]:
            return rows, body["after_cursor"], pages


def test_ticket_export_pages_to_the_end_and_resumes(book: Book, clock: SandboxClock) -> None:
    client = _client(book, clock)
    rows, cursor, pages = _export(client, start_time=0, per_page=1000)
    assert len(rows) == len(book.tickets)
    assert pages == len(book.tickets) // 1000 + 1
    assert len({t["id"] for t in rows}) == len(rows)
    keys = [(t["generated_timestamp"], t["id"]) for t in rows]
    assert keys == sorted(keys)
    assert {t["status"] for t in rows} >= {"deleted", "closed", "open"}
    again = client.get(TICKETS, params={"cursor": cursor}).json()
    assert again["tickets"] == []
    assert again["end_of_stream"] is True
    assert again["after_cursor"] == cursor
    later = _client(book, SandboxClock(book.now + timedelta(days=1), frozen=True))
    assert later.get(TICKETS, params={"cursor": cursor}).json()["tickets"] == []


def test_ticket_export_starts_at_start_time_and_holds_the_last_minute(book: Book) -> None:
    newest = max(book.tickets, key=lambda t: (t.updated_at, t.id))
    start = int(newest.updated_at.timestamp())
    early = _client(book, lambda: start + 30)
    body = early.get(TICKETS, params={"start_time": start}).json()
    assert body["tickets"] == []
    assert body["end_of_stream"] is True
    ripe = _client(book, lambda: start + 61)
    body = ripe.get(TICKETS, params={"cursor": body["after_cursor"]}).json()
    assert newest.id in [t["id"] for t in body["tickets"]]
    assert all(t["generated_timestamp"] >= start for t in body["tickets"])


def test_ticket_export_small_pages_and_bad_cursor(book: Book, clock: SandboxClock) -> None:
    client = _client(book, clock)
    start = int((book.now - timedelta(days=3)).timestamp())
    rows, _, pages = _export(client, start_time=start, per_page=7)
    expected = [t for t in book.tickets if t.updated_at.timestamp() >= start]
    assert sorted(t["id"] for t in rows) == sorted(t.id for t in expected)
    assert pages == len(expected) // 7 + 1
    assert client.get(TICKETS, params={"cursor": "%%%"}).status_code == 400
    assert client.get(TICKETS).status_code == 400
    deleted = client.get(TICKETS, params={"start_time": 0, "exclude_deleted": "true"}).json()
    assert all(t["status"] != "deleted" for t in deleted["tickets"])


def test_organizations_time_based_export(book: Book, clock: SandboxClock) -> None:
    client = _client(book, clock)
    seen: dict[int, dict[str, Any]] = {}
    start, pages = 0, 0
    while True:
        body = client.get(ORGS, params={"start_time": start, "per_page": 100}).json()
        pages += 1
        assert body["count"] == len(body["organizations"])
        assert body["next_page"]
        seen.update({o["id"]: o for o in body["organizations"]})
        if body["end_of_stream"]:
            break
        assert body["end_time"] >= start
        start = body["end_time"]
    assert len(seen) == len(book.organizations)
    assert pages >= 4
    by_id = {o.id: o for o in book.organizations}
    sample = seen[book.organizations[0].id]
    assert sample["external_id"] == by_id[sample["id"]].external_id
    assert sample["domain_names"] == list(by_id[sample["id"]].domain_names)
    assert sum(o["external_id"] is None for o in seen.values()) > 20
    too_recent = client.get(ORGS, params={"start_time": int(clock()) - 10})
    assert too_recent.status_code == 400


def test_satisfaction_ratings_cursor_pages(book: Book, clock: SandboxClock) -> None:
    client = _client(book, clock)
    start = int((book.now - timedelta(days=90)).timestamp())
    params: dict[str, Any] = {"start_time": start, "page[size]": 100}
    seen: list[dict[str, Any]] = []
    while True:
        body = client.get(RATINGS, params=params).json()
        seen += body["satisfaction_ratings"]
        if not body["meta"]["has_more"]:
            assert body["links"]["next"] is None
            break
        assert "page%5Bafter%5D" in body["links"]["next"] or "page[after]" in body["links"]["next"]
        params = {**params, "page[after]": body["meta"]["after_cursor"]}
    expected = [s for s in book.satisfaction_ratings if s.created_at.timestamp() >= start]
    assert [s["id"] for s in seen] == [s.id for s in expected]
    assert {s["score"] for s in seen} == {"good", "bad"}
    assert client.get(RATINGS, params={"page[size]": 101}).status_code == 400


def test_incremental_budget_answers_429(book: Book, clock: SandboxClock) -> None:
    limits = Limits(budgets={"default": Budget(700, 60), "incremental": Budget(2, 60)})
    client = _client(book, clock, limits)
    for _ in range(2):
        ok = client.get(TICKETS, params={"start_time": 0, "per_page": 1})
        assert ok.status_code == 200
        assert ok.headers["X-Rate-Limit"] == "700"
    refused = client.get(ORGS, params={"start_time": 0})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["error"] == "APIRateLimitExceeded"
    assert client.get(RATINGS).status_code == 200


def test_bad_credentials_and_faults(book: Book, clock: SandboxClock) -> None:
    app = zendesk_app(book, clock=clock)
    response = asgi_client(app, {"Authorization": "Basic bm9wZQ=="}).get(RATINGS)
    assert response.status_code == 401
    assert response.json() == {"error": "Couldn't authenticate you"}
    limits = Limits.unlimited()
    client = _client(book, clock, limits)
    limits.faults.fail(TICKETS, status=503)
    assert client.get(TICKETS, params={"start_time": 0}).status_code == 503
    limits.faults.malform("tickets")
    rows = client.get(TICKETS, params={"start_time": 0}).json()["tickets"]
    assert sum("created_at" not in t for t in rows) == 1
