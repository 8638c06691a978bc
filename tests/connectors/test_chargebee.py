"""Chargebee: mappers on documented shapes, offset paging, the updated_at cursor, auth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlmodel import Session

from connectors import chargebee
from connectors.base import Request
from connectors.chargebee import (
    ChargebeeOptions,
    NextOffsetPaginator,
    map_customer,
    map_invoice,
    map_subscription,
)
from connectors.errors import AuthError, FatalError, MappingError, PagingError
from connectors.http import ApiKeyAuth, ClientOptions
from connectors.sync import SyncOptions, sync_connector
from settings import ChargebeeSettings, ConfigError, Settings
from store.models import ExternalLink, Invoice, QuarantinedRecord, Subscription, SyncState
from tests.connectors.fake_chargebee import API_KEY, SITE, FakeChargebee
from tests.connectors.fakes import load
from tests.connectors.worlds import chargebee_world

CRM_FIELD = "cf_crm_account_id"


def _fixture(route: str, kind: str) -> dict[str, dict[str, Any]]:
    return {e[kind]["id"]: e[kind] for e in load("chargebee", f"{route}.json")["list"]}


CUSTOMERS = _fixture("customers", "customer")
SUBSCRIPTIONS = _fixture("subscriptions", "subscription")
INVOICES = _fixture("invoices", "invoice")


def _at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def _rows(engine: Engine, model: type) -> dict[str, Any]:
    with Session(engine) as session:
        return {r.external_id: r for r in session.execute(select(model)).scalars()}


def _cursors(engine: Engine) -> dict[str, str | None]:
    with Session(engine) as session:
        return {s.stream: s.cursor for s in session.execute(select(SyncState)).scalars()}


def _only(records: list[Any]) -> dict[str, Any]:
    [record] = records
    return dict(record.values)


# Mappers -----------------------------------------------------------------------------------


def test_customer_maps_name_domain_and_crm_hint() -> None:
    umbrella = _only(map_customer(CUSTOMERS["169yHeUkmJ4Pp2Nd"], CRM_FIELD))
    assert umbrella == {
        "external_id": "169yHeUkmJ4Pp2Nd",
        "kind": "customer",
        "name": "Umbrella Health",
        "domain": "umbrella.example",
        "crm_hint": "5004",
        "deleted_at": None,
    }
    stark = _only(map_customer(CUSTOMERS["AzqBtUUkmJ8kZ1fP"], CRM_FIELD))
    assert (stark["domain"], stark["crm_hint"]) == ("stark-logistics.example", None)
    person = _only(map_customer(CUSTOMERS["16BjsGUkmK1dQ3Xa"], CRM_FIELD))
    assert (person["name"], person["domain"]) == ("Sam Rivera", "gmail.com")
    assert _only(map_customer(CUSTOMERS["Azz5kLUkmKf0R4Yb"], CRM_FIELD))["crm_hint"] == "5003"
    assert _only(map_customer(CUSTOMERS["Azz5kLUkmKf0R4Yb"], "cf_other"))["crm_hint"] is None
    gone = _only(map_customer(CUSTOMERS["16CHx9UkmLx1T5Zc"], CRM_FIELD))
    assert gone["deleted_at"] == _at(2025, 6, 5, 13)


@pytest.mark.parametrize(
    ("sub_id", "status", "mrr"),
    [
        ("169yHeUkmJ6Xq9Aa", "active", 250000),
        ("AzqBtUUkmJAp7Bb0", "past_due", 120000),  # active with a due invoice
        ("16BjsGUkmK3eC1Cc", "trialing", 0),
        ("Azz5kLUkmKh2D2Dd", "active", 80000),  # non_renewing bills until the term ends
        ("Azz5kLUkmKj3E3Ee", "canceled", 40000),  # what it billed; Chargebee says 0
        ("169yHeUkmJ9Yr0Gg", "incomplete", 0),  # future
        ("AzqBtUUkmJCq8Hh1", "paused", 0),  # Chargebee still says 30000
    ],
)
def test_subscription_status_and_mrr(sub_id: str, status: str, mrr: int) -> None:
    values = _only(map_subscription(SUBSCRIPTIONS[sub_id]))
    assert (values["status"], values["mrr_minor"], values["currency"]) == (status, mrr, "USD")
    assert values["account_ref"] == SUBSCRIPTIONS[sub_id]["customer_id"]


def test_subscription_dates() -> None:
    active = _only(map_subscription(SUBSCRIPTIONS["169yHeUkmJ6Xq9Aa"]))
    assert active["started_at"] == _at(2024, 4, 10, 8, 5)
    assert active["current_period_end"] == _at(2025, 7, 1)
    assert active["cancel_at"] is active["canceled_at"] is active["ended_at"] is None
    leaving = _only(map_subscription(SUBSCRIPTIONS["Azz5kLUkmKh2D2Dd"]))
    assert leaving["cancel_at"] == leaving["current_period_end"] == _at(2026, 2, 20, 10)
    assert leaving["canceled_at"] == _at(2025, 6, 4, 12, 25)  # when the cancellation was asked
    assert leaving["ended_at"] is None
    ended = _only(map_subscription(SUBSCRIPTIONS["Azz5kLUkmKj3E3Ee"]))
    assert ended["canceled_at"] == ended["ended_at"] == _at(2025, 5, 15)
    future = _only(map_subscription(SUBSCRIPTIONS["169yHeUkmJ9Yr0Gg"]))
    assert future["started_at"] == _at(2025, 7, 1)  # not started yet: scoring leaves it out
    deleted = _only(map_subscription(SUBSCRIPTIONS["16CHx9UkmLz4F4Ff"]))
    assert deleted["deleted_at"] == _at(2025, 6, 5, 13, 30)
    assert map_subscription(SUBSCRIPTIONS["169yHeUkmJ6Xq9Aa"])[0].model is Subscription


def _sub(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "sub_x",
        "object": "subscription",
        "customer_id": "cus_x",
        "currency_code": "eur",
        "status": status,
        "mrr": 5000,
        "updated_at": 1749000000,
        **extra,
    }


@pytest.mark.parametrize(
    ("word", "status", "mrr"),
    [
        ("future", "incomplete", 0),
        ("in_trial", "trialing", 0),
        ("active", "active", 5000),
        ("non_renewing", "active", 5000),
        ("paused", "paused", 0),
        ("cancelled", "canceled", 0),
        ("transferred", "canceled", 0),
    ],
)
def test_every_chargebee_status_has_a_store_word(word: str, status: str, mrr: int) -> None:
    values = _only(map_subscription(_sub(word)))
    assert (values["status"], values["mrr_minor"], values["currency"]) == (status, mrr, "EUR")


@pytest.mark.parametrize(
    ("word", "dues", "status"),
    [
        ("active", {"due_invoices_count": 2}, "past_due"),
        ("active", {"total_dues": 100}, "past_due"),
        ("non_renewing", {"due_invoices_count": 1, "total_dues": 100}, "past_due"),
        ("active", {"due_invoices_count": 0, "total_dues": 0}, "active"),
        ("in_trial", {"due_invoices_count": 1}, "trialing"),
        ("cancelled", {"due_invoices_count": 1, "total_dues": 100}, "canceled"),
    ],
)
def test_dues_make_only_a_billing_subscription_past_due(
    word: str, dues: dict[str, int], status: str
) -> None:
    assert _only(map_subscription(_sub(word, **dues)))["status"] == status


def test_a_transferred_subscription_ends_when_it_was_moved() -> None:
    values = _only(map_subscription(_sub("transferred")))
    assert values["ended_at"] == values["canceled_at"] == datetime.fromtimestamp(1749000000, UTC)


@pytest.mark.parametrize(
    ("invoice_id", "status", "attempts", "remaining"),
    [
        ("10041", "paid", 0, 0),
        ("10042", "open", 3, 120000),  # payment_due: first failure plus two retries
        ("10043", "open", 4, 40000),  # not_paid: dunning exhausted
        ("10044", "open", 0, 4900),  # posted: within its net terms, never attempted
        ("10045", "void", 0, 0),
        ("10046", "paid", 3, 0),  # paid after dunning: failed until paid_at
    ],
)
def test_invoice_status_and_attempts(
    invoice_id: str, status: str, attempts: int, remaining: int
) -> None:
    values = _only(map_invoice(INVOICES[invoice_id]))
    assert (values["status"], values["attempt_count"]) == (status, attempts)
    assert values["amount_remaining_minor"] == remaining
    assert values["amount_due_minor"] == INVOICES[invoice_id]["total"]


def test_invoice_fields() -> None:
    paid = _only(map_invoice(INVOICES["10041"]))
    assert paid["account_ref"] == "169yHeUkmJ4Pp2Nd"
    assert paid["subscription_ref"] == "169yHeUkmJ6Xq9Aa"
    assert (paid["created_at"], paid["paid_at"]) == (_at(2025, 6, 1), _at(2025, 6, 1, 0, 5))
    assert paid["currency"] == "USD"
    one_off = _only(map_invoice(INVOICES["10044"]))
    assert (one_off["subscription_ref"], one_off["due_at"]) == (None, _at(2025, 7, 5, 10))
    assert _only(map_invoice(INVOICES["10047"]))["deleted_at"] == _at(2025, 6, 5, 13, 40)
    pending = {**INVOICES["10044"], "status": "pending"}
    assert _only(map_invoice(pending))["status"] == "draft"


@pytest.mark.parametrize(
    ("mapper", "raw", "reason"),
    [
        (map_subscription, _sub("dunning"), "unknown status 'dunning'"),
        (map_subscription, _sub("active", mrr="50.00"), "not a whole number"),
        (map_subscription, _sub("active", mrr=True), "not a whole number"),
        (map_subscription, _sub("active", customer_id=None), "customer_id is missing"),
        (map_subscription, _sub("active", currency_code=None), "currency_code is missing"),
        (map_subscription, _sub("active", started_at="2025-01-01"), "not a Unix time"),
        (map_subscription, _sub("active", deleted=True, updated_at=None), "no updated_at"),
        (map_invoice, {**INVOICES["10041"], "date": None}, "has no date"),
        (map_invoice, {**INVOICES["10042"], "dunning_attempts": {}}, "not a list"),
        (map_invoice, {**INVOICES["10041"], "status": None}, "unknown status None"),
        (map_invoice, {**INVOICES["10041"], "total": "2500.00"}, "not a whole number"),
        (lambda raw: map_customer(raw, CRM_FIELD), {"email": "a@b.c"}, "id is missing"),
    ],
)
def test_bad_shapes_are_mapping_errors(mapper: Any, raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        mapper(raw)


def test_a_list_entry_without_its_wrapped_record_is_a_mapping_error() -> None:
    spec = chargebee_world().connector.stream("customers")
    with pytest.raises(MappingError, match="no customer object"):
        spec.mapper({"subscription": {"id": "x"}})
    assert spec.record_key({"customer": {"id": "169yHeUkmJ4Pp2Nd"}}) == "169yHeUkmJ4Pp2Nd"


# Paging ------------------------------------------------------------------------------------


def test_next_offset_is_sent_back_as_offset_and_a_repeat_stops_paging() -> None:
    paginator = NextOffsetPaginator()
    first = Request("GET", "/customers", {"limit": 2, "include_deleted": "true"})
    token = '["1748768400000","169yHeUkmJ4Pp2Nd"]'
    paginator.update({"list": [], "next_offset": token})
    assert paginator.has_more
    assert paginator.next_request(first).params == {**first.params, "offset": token}
    with pytest.raises(PagingError, match="repeated"):
        paginator.update({"list": [], "next_offset": token})
    paginator.update({"list": []})
    assert not paginator.has_more


def test_a_repeated_offset_fails_the_stream_with_paging_error(engine: Engine) -> None:
    world = chargebee_world()
    world.vendor.stuck.add("invoices")
    results = world.sync(engine)
    assert isinstance(results["invoices"].exception, PagingError)
    assert results["customers"].status == results["subscriptions"].status == "ok"


def test_page_size_is_capped_at_the_vendor_limit(engine: Engine) -> None:
    world = chargebee_world(page_size=500)
    assert all(r.status == "ok" for r in world.sync(engine).values())
    assert {r.url.params["limit"] for r in world.vendor.requests} == {"100"}


def test_a_vendor_error_body_is_reported_in_one_line(engine: Engine) -> None:
    world = chargebee_world(page_size=500, options=ChargebeeOptions(max_page_size=500))
    error = world.sync(engine)["customers"].exception
    assert isinstance(error, FatalError)
    assert str(error) == ("chargebee: HTTP 400 on GET /customers: limit : invalid value 500")


# Syncing -----------------------------------------------------------------------------------


def test_first_sync_stores_every_stream_over_several_pages(engine: Engine) -> None:
    world = chargebee_world()
    results = world.sync(engine)
    assert {name: (r.status, r.pages, r.records) for name, r in results.items()} == {
        "customers": ("ok", 3, 5),
        "subscriptions": ("ok", 4, 8),
        "invoices": ("ok", 4, 7),
    }
    links = _rows(engine, ExternalLink)
    assert links["169yHeUkmJ4Pp2Nd"].crm_hint == "5004"
    assert links["16CHx9UkmLx1T5Zc"].deleted_at == _at(2025, 6, 5, 13)
    subs = _rows(engine, Subscription)
    assert (subs["AzqBtUUkmJAp7Bb0"].status, subs["AzqBtUUkmJAp7Bb0"].mrr_minor) == (
        "past_due",
        120000,
    )
    assert subs["16CHx9UkmLz4F4Ff"].deleted_at == _at(2025, 6, 5, 13, 30)
    invoices = _rows(engine, Invoice)
    assert (invoices["10042"].status, invoices["10042"].attempt_count) == ("open", 3)
    assert invoices["10047"].deleted_at == _at(2025, 6, 5, 13, 40)
    assert _cursors(engine) == {
        "customers": "2025-06-05T13:00:00+00:00",
        "subscriptions": "2025-06-06T09:00:00+00:00",
        "invoices": "2025-06-05T13:40:00+00:00",
    }
    with Session(engine) as session:
        assert list(session.execute(select(QuarantinedRecord)).scalars()) == []
    first = world.vendor.requests[0]
    assert (first.url.host, first.url.path) == (f"{SITE}.chargebee.com", "/api/v2/customers")
    assert "updated_at[after]" not in first.url.params


def test_every_request_asks_for_deleted_records_sorted_by_update(engine: Engine) -> None:
    world = chargebee_world()
    world.sync(engine)
    world.sync(engine)
    requests = world.vendor.requests
    assert len(requests) > 11
    for request in requests:
        assert request.url.params["include_deleted"] == "true"
        assert request.url.params["sort_by[asc]"] == "updated_at"
        assert request.url.params["limit"] == "2"
    assert sum("offset" in r.url.params for r in requests) == 8  # 2 + 3 + 3 follow-up pages


def test_second_sync_fetches_nothing_new(engine: Engine) -> None:
    world = chargebee_world()
    world.sync(engine)
    before = {m: _rows(engine, m) for m in (ExternalLink, Subscription, Invoice)}
    snapshot = {m: {k: r.model_dump() for k, r in rows.items()} for m, rows in before.items()}
    cursors = _cursors(engine)
    world.vendor.requests.clear()
    again = world.sync(engine)
    assert all(r.status == "ok" for r in again.values())
    assert {name: r.records for name, r in again.items()} == {
        "customers": 1,  # only the lookback window comes back
        "subscriptions": 1,
        "invoices": 1,
    }
    after = {m: {k: r.model_dump() for k, r in _rows(engine, m).items()} for m in snapshot}
    assert after == snapshot
    assert _cursors(engine) == cursors
    since = datetime.fromisoformat(cursors["customers"] or "") - timedelta(minutes=10)
    [customers] = [r for r in world.vendor.requests if r.url.path.endswith("/customers")]
    assert customers.url.params["updated_at[after]"] == str(int(since.timestamp()) - 1)


def test_later_changes_and_deletes_arrive_through_the_cursor(engine: Engine) -> None:
    world = chargebee_world()
    world.sync(engine)
    paid_at = int(_at(2025, 6, 11, 9).timestamp())
    invoice = world.vendor.record("invoices", "10042")
    invoice.update(status="paid", amount_paid=120000, amount_due=0, paid_at=paid_at)
    invoice.update(dunning_status="success", updated_at=paid_at)
    world.vendor.put("invoices", invoice)
    subscription = world.vendor.record("subscriptions", "AzqBtUUkmJAp7Bb0")
    subscription.update(due_invoices_count=0, total_dues=0, updated_at=paid_at)
    subscription.pop("due_since")
    world.vendor.put("subscriptions", subscription)
    customer = world.vendor.record("customers", "16BjsGUkmK1dQ3Xa")
    customer.update(deleted=True, updated_at=paid_at + 60)
    world.vendor.put("customers", customer)
    world.now += timedelta(days=1)
    results = world.sync(engine)
    # each stream: the changed record, and the last one again from the lookback window
    assert {name: r.records for name, r in results.items()} == {
        "customers": 2,
        "subscriptions": 2,
        "invoices": 2,
    }
    paid = _rows(engine, Invoice)["10042"]
    assert (paid.status, paid.amount_remaining_minor, paid.attempt_count) == ("paid", 0, 3)
    assert _rows(engine, Subscription)["AzqBtUUkmJAp7Bb0"].status == "active"
    assert _rows(engine, ExternalLink)["16BjsGUkmK1dQ3Xa"].deleted_at == _at(2025, 6, 11, 9, 1)
    assert _cursors(engine)["invoices"] == "2025-06-11T09:00:00+00:00"


def test_a_backfill_reads_again_from_its_date(engine: Engine) -> None:
    world = chargebee_world()
    world.sync(engine)
    cursors = _cursors(engine)
    world.vendor.requests.clear()
    since = _at(2025, 6, 4)
    options = SyncOptions(backfill_since=since, clock=lambda: world.now)
    results = sync_connector(engine, world.connector, options=options)
    assert {r.stream: r.records for r in results} == {
        "customers": 2,
        "subscriptions": 5,
        "invoices": 2,
    }
    firsts = [r for r in world.vendor.requests if "offset" not in r.url.params]
    assert {r.url.params["updated_at[after]"] for r in firsts} == {str(int(since.timestamp()) - 1)}
    assert _cursors(engine) == cursors


def test_rate_limit_is_waited_out_for_retry_after(engine: Engine) -> None:
    world = chargebee_world()
    world.vendor.throttle["subscriptions"] = "3"
    results = world.sync(engine)
    assert all(r.status == "ok" for r in results.values())
    assert world.sleeps == [3.0]
    assert world.vendor.calls("subscriptions") == 5  # four pages and the refused request
    assert len(_rows(engine, Subscription)) == 8


def test_wrong_key_is_an_auth_error_naming_the_setting_without_the_key(engine: Engine) -> None:
    secret = "test_cbRECOGNISABLE_SECRET_0042"
    results = chargebee_world(api_key=secret).sync(engine)
    assert list(results) == ["customers"]  # the source stops at the first refusal
    error = results["customers"].exception
    assert isinstance(error, AuthError)
    message = str(error)
    assert message == (
        "chargebee rejected the API key (HTTP 401): check CHARGEBEE__API_KEY in .env"
    )
    assert "\n" not in message
    assert secret not in message
    assert secret not in (results["customers"].error or "")
    assert secret not in repr(ApiKeyAuth(SecretStr(secret)))


def test_build_needs_a_site_and_a_key() -> None:
    with pytest.raises(ConfigError, match="CHARGEBEE__SITE and CHARGEBEE__API_KEY"):
        chargebee.build(Settings(_env_file=None, chargebee=ChargebeeSettings(site=SITE)))
    cfg = ChargebeeSettings(
        base_url="http://127.0.0.1:9/api/v2/", api_key=SecretStr(API_KEY), page_size=2
    )
    vendor = FakeChargebee()
    client = ClientOptions(transport=vendor.transport())
    connector = chargebee.build(Settings(_env_file=None, chargebee=cfg), client)
    fetcher = connector.open()
    try:
        body = fetcher.fetch(Request("GET", "/customers", {"limit": 1}))
    finally:
        fetcher.close()
    assert len(body["list"]) == 1
    assert vendor.requests[0].url.path == "/api/v2/customers"
