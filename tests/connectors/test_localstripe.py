"""The Stripe connector against localstripe, an independent Stripe emulator, over real HTTP.

One emulator runs for the module, on loopback, holding a book created through its API as
Stripe takes it (form-encoded): eight customers, one of them deleted again and one without a
subscription; monthly, yearly and per-seat subscriptions that are active, one that went
past due when its card declined a charge, and one canceled; and the invoices the emulator
bills for them, a paid one for each start and an open one for the declined charge. Each test
syncs that book into a fresh store through `sync_all`, two records a page, so every list
is paged (the live customers over four pages), and the store must hold exactly that book.

localstripe is not Stripe. Its lists come oldest first, it has plans but no prices (items
carry only the older `plan` object), it takes no coupon on a subscription, its invoices
carry no `amount_remaining`, and its `/v1/events` knows no `ending_before`. Where such a
difference stops a fair expectation the test says so with `xfail`, naming the difference.
"""

from __future__ import annotations

import json
import math
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlmodel import Session

from connectors.http import ClientOptions, RetryPolicy
from connectors.registry import sync_all
from connectors.sync import StreamResult, SyncSummary
from settings import Settings, StripeSettings
from store.models import ExternalLink, Invoice, QuarantinedRecord, Subscription, SyncState

pytest.importorskip("aiohttp", reason="localstripe needs aiohttp: pip install -e '.[dev]'")
pytest.importorskip("localstripe", reason="localstripe is not installed: pip install -e '.[dev]'")

pytestmark = pytest.mark.slow

API_KEY = "sk_test_localstripe_0042"
PAGE_SIZE = 2

# The emulator binds a free loopback port and prints it. It would also snapshot its whole
# state to one fixed file in the temp directory on every write, which runs side by side
# would share; state stays in memory instead.
SERVER = """
import socket
from aiohttp import web
from localstripe import resources
from localstripe.server import app
resources.Store.dump_to_disk = lambda self: None
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
web.run_app(app, sock=sock, print=None, access_log=None)
"""


LOCALSTRIPE_VERSION = "2024-06-20"


@dataclass(frozen=True)
class Billed:
    """An invoice the emulator made, as the book expects it."""

    customer: str
    subscription: str
    status: str
    amount_due: int
    amount_paid: int
    attempts: int = 1


@dataclass(frozen=True)
class Book:
    """What was created in the emulator, and what the store should say about it."""

    base_url: str
    customers: dict[str, tuple[str, str, str | None]]
    """Live customer id -> (name, email domain, CRM hint), in creation order."""
    deleted_customer: str
    """A customer created between the others and deleted before any sync."""
    subscriptions: dict[str, tuple[str, str, int]]
    """Subscription id -> (customer id, status, MRR in minor units)."""
    invoices: dict[str, Billed]
    """Invoice id -> what it bills, whether it was paid, and how often it was charged."""
    newest_event: str
    """The id of the last event the book produced (the customer's deletion)."""
    coupon_refusal: str | None
    """Why the emulator refused a subscription with a coupon, if it did."""

    def with_status(self, status: str) -> list[str]:
        return [key for key, (_, s, _) in self.subscriptions.items() if s == status]


def _wait_for_port(proc: subprocess.Popen[str], log: Path) -> int:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=15)
    line = proc.stdout.readline() if ready else ""
    if not line.strip().isdigit():
        proc.kill()
        proc.wait()
        pytest.fail(f"localstripe did not start: {log.read_text()[-2000:]}")
    return int(line)


def _wait_until_answering(base_url: str, proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"localstripe exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(f"{base_url}/v1/customers", auth=(API_KEY, ""), timeout=1).raise_for_status()
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        return
    pytest.fail("localstripe did not answer within 15 s")


@pytest.fixture(scope="module")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A localstripe of this module's own on 127.0.0.1, stopped by its pid at the end."""
    log = tmp_path_factory.mktemp("localstripe") / "server.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, stderr=err, text=True
        )
    try:
        base_url = f"http://127.0.0.1:{_wait_for_port(proc, log)}"
        _wait_until_answering(base_url, proc, log)
        httpx.delete(f"{base_url}/_config/data", timeout=5).raise_for_status()
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _post(client: httpx.Client, path: str, data: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, data=data)
    assert response.status_code == 200, f"POST {path}: {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    return body


def _customer(client: httpx.Client, name: str, email: str, crm_id: str | None) -> str:
    data = {
        "name": name,
        "email": email,
        "payment_method": "pm_card_visa",  # the emulator charges the first invoice at once
        "invoice_settings[default_payment_method]": "pm_card_visa",
    }
    if crm_id is not None:
        data["metadata[crm_account_id]"] = crm_id
    return str(_post(client, "/v1/customers", data)["id"])


def _subscribe(
    client: httpx.Client, customer: str, plan: str, quantity: int = 1
) -> tuple[str, str]:
    """A new subscription, active on a paid first invoice: (its id, that invoice's id)."""
    data = {"customer": customer, "items[0][plan]": plan, "items[0][quantity]": str(quantity)}
    sub = _post(client, "/v1/subscriptions", data)
    assert sub["status"] == "active", sub
    return str(sub["id"]), str(sub["latest_invoice"])


def _all(client: httpx.Client, path: str, **params: str) -> list[dict[str, Any]]:
    body = client.get(path, params={**params, "limit": 100}).json()
    assert body["has_more"] is False
    data: list[dict[str, Any]] = body["data"]
    return data


@pytest.fixture(scope="module")
def book(localstripe_url: str) -> Book:
    with httpx.Client(base_url=localstripe_url, auth=(API_KEY, ""), timeout=10) as client:
        product = _post(client, "/v1/products", {"name": "Health Pro"})["id"]
        plan = {"product": product, "currency": "usd"}
        monthly = _post(client, "/v1/plans", {**plan, "amount": "5000", "interval": "month"})
        yearly = _post(client, "/v1/plans", {**plan, "amount": "100000", "interval": "year"})
        quarterly = {**plan, "amount": "18000", "interval": "month", "interval_count": "3"}
        quarterly = _post(client, "/v1/plans", quarterly)
        acme = _customer(client, "Acme", "ops@acme.com", "5001")
        globex = _customer(client, "Globex", "billing@globex.io", "5002")
        initech = _customer(client, "Initech", "it@initech.com", "5003")
        hooli = _customer(client, "Hooli", "ap@hooli.xyz", None)
        stark = _customer(client, "Stark", "finance@stark.example", " 5005 ")
        umbrella = _customer(client, "Umbrella", "legal@umbrella.example", "5006")
        wayne = _customer(client, "Wayne", "billing@wayne.example", "5007")
        soylent = _customer(client, "Soylent", "sales@soylent.example", "5008")
        customers = {
            acme: ("Acme", "acme.com", "5001"),
            globex: ("Globex", "globex.io", "5002"),
            initech: ("Initech", "initech.com", "5003"),
            hooli: ("Hooli", "hooli.xyz", None),
            stark: ("Stark", "stark.example", "5005"),
            wayne: ("Wayne", "wayne.example", "5007"),
            soylent: ("Soylent", "soylent.example", "5008"),
        }
        subs: dict[str, tuple[str, str, int]] = {}
        invoices: dict[str, Billed] = {}

        def start(customer: str, plan: str, quantity: int, mrr: int, amount: int) -> str:
            sub, invoice = _subscribe(client, customer, plan, quantity)
            subs[sub] = (customer, "active", mrr)
            invoices[invoice] = Billed(customer, sub, "paid", amount, amount)
            return sub

        start(acme, monthly["id"], 1, 5000, 5000)
        start(globex, yearly["id"], 1, 8333, 100000)  # 100000 / 12
        start(initech, monthly["id"], 4, 20000, 20000)

        _post(
            client, "/v1/coupons", {"id": "FOREVER25", "percent_off": "25", "duration": "forever"}
        )
        attempt = {"customer": stark, "items[0][plan]": monthly["id"], "coupon": "FOREVER25"}
        response = client.post("/v1/subscriptions", data=attempt)
        refusal = None
        if response.status_code == 200:
            sub = response.json()
            subs[sub["id"]] = (stark, "active", 3750)
            invoices[sub["latest_invoice"]] = Billed(stark, sub["id"], "paid", 3750, 3750)
        else:
            refusal = f"HTTP {response.status_code} {response.json()['error']['message']!r}"

        canceled = start(hooli, monthly["id"], 1, 5000, 5000)
        ended = client.delete(f"/v1/subscriptions/{canceled}")
        assert ended.status_code == 200, ended.text
        assert ended.json()["status"] == "canceled"
        subs[canceled] = (hooli, "canceled", 5000)  # keeps what it billed; it stays paid

        # Past due: the card on file now attaches but declines every charge (localstripe's
        # 4000000000000341), and a move to a quarterly plan bills at once: 18000 for the
        # quarter less 5000 for the unused month. The charge fails, the invoice stays open
        # after one attempt and the subscription, which had started, goes past due.
        late = start(wayne, monthly["id"], 1, 5000, 5000)
        declining = {"invoice_settings[default_payment_method]": "pm_card_chargeCustomerFail"}
        _post(client, f"/v1/customers/{wayne}", declining)
        moved = _post(client, f"/v1/subscriptions/{late}", {"items[0][plan]": quarterly["id"]})
        assert moved["status"] == "past_due", moved
        assert moved["latest_invoice"] not in invoices
        subs[late] = (wayne, "past_due", 6000)  # 18000 a quarter
        invoices[str(moved["latest_invoice"])] = Billed(wayne, late, "open", 13000, 0)

        gone = client.delete(f"/v1/customers/{umbrella}")
        assert gone.status_code == 200, gone.text
        assert gone.json() == {"id": umbrella, "object": "customer", "deleted": True}

        # the emulator holds exactly the book
        assert [c["id"] for c in _all(client, "/v1/customers")] == list(customers)
        listed_subs = _all(client, "/v1/subscriptions", status="all")
        assert {s["id"]: s["status"] for s in listed_subs} == {
            key: status for key, (_, status, _) in subs.items()
        }
        assert {
            i["id"]: (i["status"], i["amount_due"], i["amount_paid"], i["attempt_count"])
            for i in _all(client, "/v1/invoices")
        } == {
            key: (b.status, b.amount_due, b.amount_paid, b.attempts) for key, b in invoices.items()
        }

        [newest] = [
            e["id"]
            for e in _all(client, "/v1/events")
            if e["type"] == "customer.deleted" and e["data"]["object"]["id"] == umbrella
        ]
    return Book(localstripe_url, customers, umbrella, subs, invoices, newest, refusal)


# Running the connector ----------------------------------------------------------------------


class _RecordingTransport(httpx.HTTPTransport):
    """The ordinary HTTP transport, keeping every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return super().handle_request(request)


def _sync(engine: Engine, book: Book) -> tuple[SyncSummary, list[httpx.Request]]:
    stripe = StripeSettings(  # localstripe serves the shapes of the versions before 2025-03-31
        api_key=SecretStr(API_KEY),
        base_url=book.base_url,
        page_size=PAGE_SIZE,
        api_version=LOCALSTRIPE_VERSION,
    )
    transport = _RecordingTransport()
    waits: list[float] = []
    client = ClientOptions(
        transport=transport, sleep=waits.append, retry=RetryPolicy(attempts=2), timeout=10
    )
    summary = sync_all(engine, Settings(_env_file=None, stripe=stripe), ["stripe"], client=client)
    return summary, transport.requests


def _result(summary: SyncSummary, stream: str) -> StreamResult:
    [result] = [r for r in summary.streams if r.stream == stream]
    return result


def _assert_lists_ok(summary: SyncSummary) -> None:
    """The three list streams succeeded (the events stream is judged on its own)."""
    failed = [(r.stream, r.error) for r in summary.failures if r.stream != "events"]
    assert failed == []
    assert {r.stream for r in summary.streams} == {
        "events",
        "customers",
        "subscriptions",
        "invoices",
    }


def _requests(requests: list[httpx.Request], path: str) -> list[httpx.Request]:
    return [r for r in requests if r.url.path == path]


def _rows(engine: Engine, model: type) -> dict[str, Any]:
    with Session(engine) as session:
        rows = list(session.execute(select(model)).scalars())
    by_id = {r.external_id: r for r in rows}
    assert len(by_id) == len(rows), f"duplicate {model.__name__} rows"
    return by_id


def _quarantined(engine: Engine, stream: str) -> dict[str, str]:
    with Session(engine) as session:
        rows = session.execute(
            select(QuarantinedRecord).where(
                QuarantinedRecord.stream == stream,  # type: ignore[arg-type]
                QuarantinedRecord.resolved_at.is_(None),  # type: ignore[union-attr]
            )
        ).scalars()
        return {r.record_key: r.reason for r in rows}


def _snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """The synced rows by what they say, leaving out bookkeeping columns."""
    columns = {
        ExternalLink: ("kind", "name", "domain", "crm_hint", "status", "account_id", "deleted_at"),
        Subscription: ("account_ref", "status", "mrr_minor", "currency", "ended_at"),
        Invoice: ("account_ref", "subscription_ref", "status", "amount_due_minor", "paid_at"),
    }
    snapshot = {}
    for model, names in columns.items():
        rows = _rows(engine, model)
        snapshot[model.__name__] = sorted(
            (key, *(getattr(row, n) for n in names)) for key, row in rows.items()
        )
    snapshot["quarantine"] = sorted(_quarantined(engine, "subscriptions").items())
    return snapshot


# Customers ----------------------------------------------------------------------------------


def test_customers_land_as_links_with_their_crm_hint(book: Book, engine: Engine) -> None:
    summary, _ = _sync(engine, book)
    _assert_lists_ok(summary)
    got = {
        key: (link.source, link.kind, link.name, link.domain, link.crm_hint, link.deleted_at)
        for key, link in _rows(engine, ExternalLink).items()
    }
    want = {
        key: ("stripe", "customer", name, domain, hint, None)
        for key, (name, domain, hint) in book.customers.items()
    }
    assert got == want


def test_a_customer_deleted_before_the_sync_is_not_stored(book: Book, engine: Engine) -> None:
    # Deleted before the first listing, the customer is never listed, so not even a
    # tombstone is written (tombstones come from `customer.deleted` events read after it).
    gone = httpx.get(
        f"{book.base_url}/v1/customers/{book.deleted_customer}", auth=(API_KEY, ""), timeout=10
    )
    assert gone.status_code == 404
    summary, _ = _sync(engine, book)
    assert _result(summary, "customers").records == len(book.customers)
    links = _rows(engine, ExternalLink)
    live = {key for key, link in links.items() if link.deleted_at is None}
    assert live == set(links) == set(book.customers)
    assert book.deleted_customer not in links
    assert _quarantined(engine, "customers") == {}


def test_lists_are_paged_to_the_end_in_the_emulators_oldest_first_order(
    book: Book, engine: Engine
) -> None:
    summary, requests = _sync(engine, book)
    customers = _requests(requests, "/v1/customers")
    assert all(r.url.params["limit"] == str(PAGE_SIZE) for r in customers)
    # two live customers a page: each next page starts after the last id of the one before,
    # in localstripe's oldest-first order, the deleted customer being gone from it
    order = list(book.customers)
    pages = math.ceil(len(order) / PAGE_SIZE)
    assert pages >= 3
    after = [None, *(order[page * PAGE_SIZE - 1] for page in range(1, pages))]
    assert [r.url.params.get("starting_after") for r in customers] == after
    assert (_result(summary, "customers").pages, _result(summary, "customers").records) == (
        pages,
        len(order),
    )
    for stream, path, count in (
        ("subscriptions", "/v1/subscriptions", len(book.subscriptions)),
        ("invoices", "/v1/invoices", len(book.invoices)),
    ):
        result = _result(summary, stream)
        expected = math.ceil(count / PAGE_SIZE)
        assert (result.pages, len(_requests(requests, path)), result.records) == (
            expected,
            expected,
            count,
        ), stream


# Subscriptions ------------------------------------------------------------------------------


def test_every_subscription_is_fetched_canceled_included(book: Book, engine: Engine) -> None:
    summary, requests = _sync(engine, book)
    listed = _requests(requests, "/v1/subscriptions")
    assert {r.url.params["status"] for r in listed} == {"all"}
    result = _result(summary, "subscriptions")
    assert result.status == "ok"
    assert result.records + result.quarantined == len(book.subscriptions)
    subs = _rows(engine, Subscription)
    assert set(subs) | set(_quarantined(engine, "subscriptions")) == set(book.subscriptions)
    # a canceled subscription keeps the MRR it billed: its end date says it stopped
    [canceled] = book.with_status("canceled")
    row = subs[canceled]
    assert (row.source, row.account_ref, row.status, row.mrr_minor, row.currency) == (
        "stripe",
        book.subscriptions[canceled][0],
        "canceled",
        5000,
        "USD",
    )
    assert row.ended_at is not None
    assert row.started_at is not None
    assert row.current_period_end is not None


def test_subscriptions_land_with_status_and_mrr(book: Book, engine: Engine) -> None:
    assert {status for _, status, _ in book.subscriptions.values()} == {
        "active",
        "past_due",
        "canceled",
    }
    _sync(engine, book)
    assert _quarantined(engine, "subscriptions") == {}
    subs = _rows(engine, Subscription)
    got = {
        key: (s.source, s.account_ref, s.status, s.mrr_minor, s.currency, s.ended_at is None)
        for key, s in subs.items()
    }
    want = {
        key: ("stripe", customer, status, mrr, "USD", status != "canceled")
        for key, (customer, status, mrr) in book.subscriptions.items()
    }
    assert got == want


def test_a_past_due_subscription_keeps_its_mrr_and_owes_its_invoice(
    book: Book, engine: Engine
) -> None:
    _sync(engine, book)
    [late] = book.with_status("past_due")
    row = _rows(engine, Subscription)[late]
    assert (row.status, row.mrr_minor, row.canceled_at, row.ended_at) == (
        "past_due",
        6000,
        None,
        None,
    )
    # its first month was paid; the declined charge for the quarter is open after one attempt
    billed = {
        key: (i.status, i.amount_due_minor, i.attempt_count, i.paid_at is not None)
        for key, i in _rows(engine, Invoice).items()
        if i.subscription_ref == late
    }
    seeded = {key: b.status for key, b in book.invoices.items() if b.subscription == late}
    assert sorted(seeded.values()) == ["open", "paid"]
    expected = {"paid": ("paid", 5000, 1, True), "open": ("open", 13000, 1, False)}
    assert billed == {key: expected[status] for key, status in seeded.items()}


def test_a_forever_coupon_lowers_mrr(book: Book, engine: Engine) -> None:
    if book.coupon_refusal is not None:
        pytest.xfail(
            "localstripe takes no coupon on a subscription "
            f"(POST /v1/subscriptions with coupon=FOREVER25: {book.coupon_refusal})"
        )
    _sync(engine, book)
    discounted = [key for key, (_, _, mrr) in book.subscriptions.items() if mrr == 3750]
    assert [_rows(engine, Subscription)[key].mrr_minor for key in discounted] == [3750]


# Invoices -----------------------------------------------------------------------------------


def test_invoices_land_with_their_subscription_status_and_amount(
    book: Book, engine: Engine
) -> None:
    summary, _ = _sync(engine, book)
    assert _result(summary, "invoices").status == "ok"
    assert _quarantined(engine, "invoices") == {}
    got = {
        key: (
            i.source,
            i.account_ref,
            i.subscription_ref,
            i.status,
            i.amount_due_minor,
            i.currency,
            i.attempt_count,
            i.paid_at is not None,
        )
        for key, i in _rows(engine, Invoice).items()
    }
    want = {
        key: (
            "stripe",
            b.customer,
            b.subscription,
            b.status,
            b.amount_due,
            "USD",
            b.attempts,
            b.status == "paid",
        )
        for key, b in book.invoices.items()
    }
    assert got == want


def test_invoices_keep_what_is_still_owed(book: Book, engine: Engine) -> None:
    _sync(engine, book)
    got = {key: i.amount_remaining_minor for key, i in _rows(engine, Invoice).items()}
    want = {key: b.amount_due - b.amount_paid for key, b in book.invoices.items()}
    paid = {key for key, b in book.invoices.items() if b.status == "paid"}
    assert {key: got[key] for key in paid} == {key: 0 for key in paid}
    if got != want:
        wrong = sorted(key for key in want if got.get(key) != want[key])
        payloads = [
            httpx.get(f"{book.base_url}/v1/invoices/{key}", auth=(API_KEY, ""), timeout=10).json()
            for key in wrong
        ]
        if all("amount_remaining" not in p and got[p["id"]] == 0 for p in payloads):
            pytest.xfail(
                "localstripe's invoices carry no amount_remaining (only amount_due and "
                "amount_paid), and the connector reads a missing amount_remaining as 0, so "
                f"the open invoice(s) {wrong} are stored as owing nothing"
            )
    assert got == want


# A second sync ------------------------------------------------------------------------------


def test_a_second_sync_lists_nothing_again_and_changes_nothing(book: Book, engine: Engine) -> None:
    first, _ = _sync(engine, book)
    _assert_lists_ok(first)
    before = _snapshot(engine)
    assert len(before["ExternalLink"]) == len(book.customers)
    assert len(before["Invoice"]) == len(book.invoices)

    second, requests = _sync(engine, book)
    assert {r.url.path for r in requests} == {"/v1/events"}
    for stream in ("customers", "subscriptions", "invoices"):
        result = _result(second, stream)
        assert (result.status, result.pages, result.records) == ("ok", 0, 0), stream
    assert _snapshot(engine) == before


def _events_cursor(engine: Engine) -> dict[str, Any]:
    with Session(engine) as session:
        state = session.get(SyncState, ("stripe", "events"))
        assert state is not None
        assert state.cursor is not None
        cursor: dict[str, Any] = json.loads(state.cursor)
        return cursor


def test_the_first_sync_keeps_the_newest_event_as_its_cursor(book: Book, engine: Engine) -> None:
    _, requests = _sync(engine, book)
    probe = _requests(requests, "/v1/events")[0]
    assert dict(probe.url.params) == {"limit": "1"}
    cursor = _events_cursor(engine)
    oldest = httpx.get(
        f"{book.base_url}/v1/events", params={"limit": 1}, auth=(API_KEY, ""), timeout=10
    ).json()["data"][0]["id"]
    if cursor["after"] == oldest != book.newest_event:
        pytest.xfail(
            "localstripe lists events oldest first, so the limit=1 probe returns the oldest "
            "event and the events cursor starts there instead of at the newest"
        )
    assert cursor["after"] == book.newest_event


def test_events_are_walked_forward_from_the_cursor(book: Book, engine: Engine) -> None:
    first, requests = _sync(engine, book)
    probe, *walks = _requests(requests, "/v1/events")
    assert dict(probe.url.params) == {"limit": "1"}
    # the probe's page says has_more, so the stream asks for anything newer than its event
    assert [w.url.params.get("ending_before") for w in walks] == [_events_cursor(engine)["after"]]
    events = _result(first, "events")
    error = events.error or ""
    if events.status == "failed" and "HTTP 400" in error and "ending_before" in error:
        pytest.xfail(
            "localstripe's /v1/events knows no ending_before and answers 400 "
            f"({error}); Stripe walks events forward with it"
        )
    assert events.status == "ok"
    again, requests = _sync(engine, book)
    assert {r.url.path for r in requests} == {"/v1/events"}
    assert (_result(again, "events").status, _result(again, "events").records) == ("ok", 0)
