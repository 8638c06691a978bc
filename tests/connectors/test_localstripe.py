"""The Stripe connector against localstripe, an independent Stripe emulator, over real HTTP.

One emulator runs for the module, on loopback, holding a small book created through its API
as Stripe takes it (form-encoded): five customers, a monthly, a yearly, a per-seat and a
canceled subscription, and the invoices the emulator bills for them. Each test syncs that
book into a fresh store through `sync_all`, two records a page, so every list is paged.

localstripe is not Stripe. Its lists come oldest first, it has plans but no prices (items
carry only the older `plan` object), it takes no coupon on a subscription, and its
`/v1/events` knows no `ending_before`. Where such a difference stops a fair expectation the
test says so with `xfail`, naming the difference.
"""

from __future__ import annotations

import json
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
class Book:
    """What was created in the emulator, and what the store should say about it."""

    base_url: str
    customers: dict[str, tuple[str, str, str | None]]
    """Customer id -> (name, email domain, CRM hint), in creation order."""
    subscriptions: dict[str, tuple[str, str, int]]
    """Subscription id -> (customer id, status, MRR in minor units)."""
    invoice_amounts: dict[str, int]
    """Subscription id -> the amount due on the invoice that started it."""
    newest_event: str
    """The id of the last event the book produced (the cancellation)."""
    coupon_refusal: str | None
    """Why the emulator refused a subscription with a coupon, if it did."""


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


def _subscribe(client: httpx.Client, customer: str, plan: str, quantity: int = 1) -> str:
    data = {"customer": customer, "items[0][plan]": plan, "items[0][quantity]": str(quantity)}
    sub = _post(client, "/v1/subscriptions", data)
    assert sub["status"] == "active", sub
    return str(sub["id"])


@pytest.fixture(scope="module")
def book(localstripe_url: str) -> Book:
    with httpx.Client(base_url=localstripe_url, auth=(API_KEY, ""), timeout=10) as client:
        product = _post(client, "/v1/products", {"name": "Health Pro"})["id"]
        plan = {"product": product, "currency": "usd"}
        monthly = _post(client, "/v1/plans", {**plan, "amount": "5000", "interval": "month"})
        yearly = _post(client, "/v1/plans", {**plan, "amount": "100000", "interval": "year"})
        acme = _customer(client, "Acme", "ops@acme.com", "5001")
        globex = _customer(client, "Globex", "billing@globex.io", "5002")
        initech = _customer(client, "Initech", "it@initech.com", "5003")
        hooli = _customer(client, "Hooli", "ap@hooli.xyz", None)
        stark = _customer(client, "Stark", "finance@stark.example", " 5005 ")
        customers = {
            acme: ("Acme", "acme.com", "5001"),
            globex: ("Globex", "globex.io", "5002"),
            initech: ("Initech", "initech.com", "5003"),
            hooli: ("Hooli", "hooli.xyz", None),
            stark: ("Stark", "stark.example", "5005"),
        }
        subs = {
            _subscribe(client, acme, monthly["id"]): (acme, "active", 5000),
            _subscribe(client, globex, yearly["id"]): (globex, "active", 8333),  # 100000 / 12
            _subscribe(client, initech, monthly["id"], 4): (initech, "active", 20000),
        }
        amounts = dict(zip(subs, (5000, 100000, 20000), strict=True))

        _post(
            client, "/v1/coupons", {"id": "FOREVER25", "percent_off": "25", "duration": "forever"}
        )
        attempt = {"customer": stark, "items[0][plan]": monthly["id"], "coupon": "FOREVER25"}
        response = client.post("/v1/subscriptions", data=attempt)
        refusal = None
        if response.status_code == 200:
            subs[response.json()["id"]] = (stark, "active", 3750)
        else:
            refusal = f"HTTP {response.status_code} {response.json()['error']['message']!r}"

        canceled = _subscribe(client, hooli, monthly["id"])
        amounts[canceled] = 5000
        ended = client.delete(f"/v1/subscriptions/{canceled}")
        assert ended.status_code == 200, ended.text
        assert ended.json()["status"] == "canceled"
        subs[canceled] = (hooli, "canceled", 0)

        events = client.get("/v1/events", params={"limit": 100}).json()
        assert events["has_more"] is False
        [newest] = [
            e["id"]
            for e in events["data"]
            if e["type"] == "customer.subscription.deleted"
            and e["data"]["object"]["id"] == canceled
        ]
    return Book(localstripe_url, customers, subs, amounts, newest, refusal)


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
    links = _rows(engine, ExternalLink)
    assert set(links) == set(book.customers)
    for customer, (name, domain, hint) in book.customers.items():
        link = links[customer]
        assert (link.source, link.kind, link.name, link.domain) == (
            "stripe",
            "customer",
            name,
            domain,
        )
        assert link.crm_hint == hint
        assert link.deleted_at is None


def test_lists_are_paged_to_the_end_in_the_emulators_oldest_first_order(
    book: Book, engine: Engine
) -> None:
    summary, requests = _sync(engine, book)
    customers = _requests(requests, "/v1/customers")
    assert all(r.url.params["limit"] == str(PAGE_SIZE) for r in customers)
    # five customers, two a page: each next page starts after the last id of the one before,
    # which in localstripe's oldest-first order is the second and the fourth created
    order = list(book.customers)
    assert [r.url.params.get("starting_after") for r in customers] == [None, order[1], order[3]]
    assert (_result(summary, "customers").pages, _result(summary, "customers").records) == (3, 5)
    subscriptions = _result(summary, "subscriptions")
    assert subscriptions.pages == len(_requests(requests, "/v1/subscriptions")) == 2
    assert _result(summary, "invoices").pages == len(_requests(requests, "/v1/invoices")) == 2


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
    # a canceled subscription bills nothing, whatever its items say
    [(canceled, (customer, _, _))] = [
        (key, values) for key, values in book.subscriptions.items() if values[1] == "canceled"
    ]
    row = subs[canceled]
    assert (row.source, row.account_ref, row.status, row.mrr_minor, row.currency) == (
        "stripe",
        customer,
        "canceled",
        0,
        "USD",
    )
    assert row.ended_at is not None
    assert row.started_at is not None
    assert row.current_period_end is not None


def test_subscriptions_land_with_status_and_mrr(book: Book, engine: Engine) -> None:
    _sync(engine, book)
    assert _quarantined(engine, "subscriptions") == {}
    subs = _rows(engine, Subscription)
    got = {key: (s.account_ref, s.status, s.mrr_minor, s.currency) for key, s in subs.items()}
    want = {key: (*values, "USD") for key, values in book.subscriptions.items()}
    assert got == want
    canceled = [key for key, (_, status, _) in book.subscriptions.items() if status == "canceled"]
    assert all(subs[key].ended_at is not None for key in canceled)


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


def test_invoices_land_with_their_subscription_and_amount(book: Book, engine: Engine) -> None:
    summary, _ = _sync(engine, book)
    assert _result(summary, "invoices").status == "ok"
    invoices = _rows(engine, Invoice)
    listed = httpx.get(
        f"{book.base_url}/v1/invoices", params={"limit": 100}, auth=(API_KEY, ""), timeout=10
    ).json()
    assert set(invoices) == {i["id"] for i in listed["data"]}
    by_subscription = {i.subscription_ref: i for i in invoices.values()}
    for sub, amount in book.invoice_amounts.items():
        invoice = by_subscription[sub]
        customer = book.subscriptions[sub][0]
        assert (invoice.source, invoice.account_ref, invoice.status) == ("stripe", customer, "paid")
        assert (invoice.amount_due_minor, invoice.amount_remaining_minor) == (amount, 0)
        assert (invoice.currency, invoice.attempt_count) == ("USD", 1)
        assert invoice.paid_at is not None


# A second sync ------------------------------------------------------------------------------


def test_a_second_sync_lists_nothing_again_and_changes_nothing(book: Book, engine: Engine) -> None:
    first, _ = _sync(engine, book)
    _assert_lists_ok(first)
    before = _snapshot(engine)
    assert len(before["ExternalLink"]) == len(book.customers)
    assert len(before["Invoice"]) == len(book.invoice_amounts)

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
