"""The Stripe emulator lists newest first, pages both ways, and speaks two API versions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.book import Book
from sandbox.emulator import SandboxClock
from sandbox.ratelimit import Budget, Limits
from sandbox.stripe import STRIPE_API_KEY, mask_key, stripe_app
from tests.sandbox.conftest import STRIPE_AUTH, asgi_client

NEW, OLD = "2025-03-31.basil", "2024-06-20"


def _client(book: Book, clock: SandboxClock, version: str = NEW, **kw: Any) -> httpx.Client:
    limits = kw.pop("limits", None) or Limits.unlimited()
    app = stripe_app(book, limits=limits, clock=clock, **kw)
    return asgi_client(app, {**STRIPE_AUTH, "Stripe-Version": version})


def _all(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        query = {"limit": 100, **params} | ({"starting_after": rows[-1]["id"]} if rows else {})
        body = client.get(path, params=query).json()
        rows += body["data"]
        if not body["has_more"]:
            return rows


def test_lists_page_newest_first_to_the_end(book: Book, clock: SandboxClock) -> None:
    client = _client(book, clock)
    customers = _all(client, "/v1/customers")
    assert len(customers) == len(book.customers)
    created = [c["created"] for c in customers]
    assert created == sorted(created, reverse=True)
    invoices = _all(client, "/v1/invoices")
    assert len({i["id"] for i in invoices}) == len(book.invoices)
    first = client.get("/v1/customers", params={"limit": 3})
    assert first.headers["Stripe-Version"] == NEW
    assert first.headers["Request-Id"].startswith("req_")
    assert first.json()["object"] == "list"
    assert first.json()["url"] == "/v1/customers"
    assert len(first.json()["data"]) == 3


def test_canceled_subscriptions_only_with_status_all(book: Book, clock: SandboxClock) -> None:
    client = _client(book, clock)
    default = _all(client, "/v1/subscriptions")
    everything = _all(client, "/v1/subscriptions", status="all")
    canceled = [s for s in book.subscriptions if s.status == "canceled"]
    assert len(everything) == len(book.subscriptions)
    assert len(default) == len(book.subscriptions) - len(canceled)
    assert {s["status"] for s in default} == {"active", "trialing", "past_due"}
    only = _all(client, "/v1/subscriptions", status="canceled")
    assert {s["id"] for s in only} == {s.id for s in canceled}


def test_ending_before_walks_events_forward(book: Book, clock: SandboxClock) -> None:
    client = _client(book, clock)
    newest_first = _all(client, "/v1/events")
    assert newest_first
    assert all(e["created"] >= int(clock()) - 30 * 86_400 for e in newest_first)
    oldest = newest_first[-1]["id"]
    walked: list[str] = []
    anchor = oldest
    while True:
        body = client.get("/v1/events", params={"limit": 7, "ending_before": anchor}).json()
        page = body["data"]
        if not page:
            break
        stamps = [e["created"] for e in page]
        assert stamps == sorted(stamps, reverse=True)
        walked += [e["id"] for e in reversed(page)]
        anchor = page[0]["id"]
        if not body["has_more"]:
            break
    assert walked == [e["id"] for e in reversed(newest_first)][1:]
    newest = client.get("/v1/events", params={"ending_before": newest_first[0]["id"]}).json()
    assert newest["data"] == []
    assert newest["has_more"] is False


def test_filters(book: Book, clock: SandboxClock) -> None:
    client = _client(book, clock)
    failed = client.get(
        "/v1/events", params={"type": "invoice.payment_failed", "limit": 100}
    ).json()
    assert failed["data"]
    assert all(e["type"] == "invoice.payment_failed" for e in failed["data"])
    both = _all(
        client, "/v1/events", **{"types[]": ["invoice.paid", "customer.subscription.updated"]}
    )
    assert {e["type"] for e in both} == {"invoice.paid", "customer.subscription.updated"}
    assert {e["type"] for e in _all(client, "/v1/events", type="invoice.*")} == {
        "invoice.paid",
        "invoice.payment_failed",
    }
    cut = int(book.now.timestamp()) - 10 * 86_400
    recent = _all(client, "/v1/invoices", **{"created[gte]": cut})
    assert len(recent) == sum(i.created.timestamp() >= cut for i in book.invoices)
    customer = book.customers[-1]
    mine = _all(client, "/v1/invoices", customer=customer.id)
    assert all(i["customer"] == customer.id for i in mine)
    open_ = _all(client, "/v1/invoices", status="open")
    assert open_
    assert all(i["attempt_count"] > 0 for i in open_)
    by_email = client.get("/v1/customers", params={"email": customer.email}).json()["data"]
    assert [c["id"] for c in by_email] == [customer.id]


def test_version_shapes(book: Book, clock: SandboxClock) -> None:
    new, old = _client(book, clock, NEW), _client(book, clock, OLD)
    params: dict[str, str | int] = {"status": "past_due", "limit": 1}
    sub_new = new.get("/v1/subscriptions", params=params).json()["data"][0]
    sub_old = old.get("/v1/subscriptions", params=params).json()["data"][0]
    assert "current_period_end" not in sub_new
    assert sub_new["items"]["data"][0]["current_period_end"] == sub_old["current_period_end"]
    inv_new = new.get("/v1/invoices", params={"status": "open", "limit": 1}).json()["data"][0]
    inv_old = old.get("/v1/invoices", params={"status": "open", "limit": 1}).json()["data"][0]
    assert "subscription" not in inv_new
    assert inv_new["parent"]["subscription_details"]["subscription"] == inv_old["subscription"]
    discounted = next(s for s in book.subscriptions if s.coupon_id and s.status == "active")
    q = {"customer": discounted.customer_id}
    plain = new.get("/v1/subscriptions", params=q).json()["data"][0]
    assert plain["discounts"] == [discounted.discount_id]
    expanded = new.get("/v1/subscriptions", params=q | {"expand[]": "data.discounts"}).json()
    assert expanded["data"][0]["discounts"][0]["coupon"]["duration"] == "forever"
    legacy = old.get("/v1/subscriptions", params=q).json()["data"][0]
    assert legacy["discount"]["coupon"]["percent_off"] > 0
    assert new.get("/v1/customers", headers={"Stripe-Version": "latest"}).status_code == 400


def test_errors(book: Book, clock: SandboxClock) -> None:
    app = stripe_app(book, clock=clock)
    missing = asgi_client(app).get("/v1/customers")
    assert missing.status_code == 401
    assert "did not provide an API key" in missing.text
    wrong = asgi_client(app, {"Authorization": "Bearer sk_test_abcdefghij1234"}).get(
        "/v1/customers"
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == {
        "type": "invalid_request_error",
        "message": "Invalid API Key provided: sk_test_**********1234",
    }
    assert STRIPE_API_KEY not in mask_key(STRIPE_API_KEY)
    client = _client(book, clock)
    assert client.get("/v1/customers", params={"limit": 101}).status_code == 400
    missing_id = client.get("/v1/customers", params={"starting_after": "cus_nope"})
    assert missing_id.status_code == 400
    assert missing_id.json()["error"]["code"] == "resource_missing"
    both = client.get("/v1/events", params={"starting_after": "a", "ending_before": "b"})
    assert both.status_code == 400
    assert client.get("/v1/charges").status_code == 404


@pytest.mark.parametrize("via", ["budget", "fault"])
def test_rate_limit(book: Book, clock: SandboxClock, via: str) -> None:
    limits = Limits(budgets={"default": Budget(3, 1)}) if via == "budget" else Limits.unlimited()
    client = _client(book, clock, limits=limits)
    if via == "fault":
        limits.faults.fail("/v1/events", status=429, times=1, retry_after_s=2)
    else:
        for _ in range(3):
            assert client.get("/v1/events").status_code == 200
    refused = client.get("/v1/events")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["Request-Id"]


def test_malformed_record(book: Book, clock: SandboxClock) -> None:
    limits = Limits.unlimited()
    client = _client(book, clock, limits=limits)
    limits.faults.malform("invoices", book.invoices[-1].id)
    data = client.get("/v1/invoices", params={"limit": 5}).json()["data"]
    assert "created" not in data[0]
    assert all("created" in i for i in data[1:])


def test_one_subscription_reads_with_its_discounts_expanded(
    book: Book, clock: SandboxClock
) -> None:
    client = _client(book, clock)
    discounted = next(s for s in book.subscriptions if s.discount_id is not None)
    plain = client.get(f"/v1/subscriptions/{discounted.id}").json()
    assert plain["id"] == discounted.id
    assert plain["discounts"] == [discounted.discount_id]
    expanded = client.get(
        f"/v1/subscriptions/{discounted.id}", params={"expand[]": "discounts"}
    ).json()
    [discount] = expanded["discounts"]
    assert discount["object"] == "discount"
    assert discount["id"] == discounted.discount_id
    missing = client.get("/v1/subscriptions/sub_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"
