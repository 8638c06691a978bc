"""Stripe: MRR arithmetic, both API shapes, the events cursor, re-listing, auth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlmodel import Session

from connectors.errors import AuthError, MappingError
from connectors.identity import resolve_identities
from connectors.stripe import (
    map_customer,
    map_event,
    map_invoice,
    map_subscription,
    monthly_recurring_minor,
)
from scoring.measures import subscription_state
from store.models import Account, ExternalLink, Invoice, Subscription
from tests.connectors.fakes import load
from tests.connectors.worlds import stripe_world


def _rows(engine: Engine, model: type) -> dict[str, Any]:
    with Session(engine) as session:
        return {r.external_id: r for r in session.execute(select(model)).scalars()}


def _price(amount: int, interval: str = "month", count: int = 1, usage: str = "licensed") -> Any:
    recurring = {"interval": interval, "interval_count": count, "usage_type": usage}
    return {"id": "price_x", "unit_amount": amount, "currency": "usd", "recurring": recurring}


def _sub(*items: dict[str, Any], status: str = "active", **extra: Any) -> dict[str, Any]:
    return {"id": "sub_x", "status": status, "items": {"data": list(items)}, **extra}


def _coupon(duration: str = "forever", **off: Any) -> dict[str, Any]:
    return {"id": "co_x", "object": "coupon", "duration": duration, **off}


# MRR ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "count", "amount", "expected"),
    [
        ("month", 1, 5000, 5000),
        ("month", 3, 30000, 10000),
        ("year", 1, 120000, 10000),
        ("year", 2, 240000, 10000),
        ("week", 1, 1000, 4333),  # 1000 * 52 / 12 = 4333.33
        ("week", 2, 1200, 2600),
        ("day", 1, 100, 3042),  # 100 * 365 / 12 = 3041.67
    ],
)
def test_mrr_normalises_intervals(interval: str, count: int, amount: int, expected: int) -> None:
    item = {"price": _price(amount, interval, count), "quantity": 1}
    assert monthly_recurring_minor(_sub(item)) == expected


def test_mrr_sums_items_times_quantity_and_leaves_metered_out() -> None:
    sub = _sub(
        {"price": _price(5000), "quantity": 10},
        {"price": _price(120000, "year"), "quantity": 2},
        {"price": _price(2, usage="metered"), "quantity": None},
    )
    assert monthly_recurring_minor(sub) == 50000 + 20000


@pytest.mark.parametrize("status", ["trialing", "incomplete", "incomplete_expired"])
def test_mrr_is_zero_for_subscriptions_that_do_not_bill(status: str) -> None:
    assert monthly_recurring_minor(_sub({"price": _price(5000), "quantity": 1}, status=status)) == 0


def test_a_canceled_subscription_keeps_the_mrr_it_billed() -> None:
    sub = _sub({"price": _price(5000), "quantity": 2}, status="canceled")
    assert monthly_recurring_minor(sub) == 10000  # history before its end still counts it


@pytest.mark.parametrize("status", ["active", "past_due", "unpaid"])
def test_mrr_counts_billing_subscriptions(status: str) -> None:
    assert (
        monthly_recurring_minor(_sub({"price": _price(5000), "quantity": 1}, status=status)) == 5000
    )


def test_mrr_reads_the_older_plan_shape_and_decimal_amounts() -> None:
    plan = {"id": "plan_x", "amount": None, "interval": "month", "interval_count": 1}
    item = {"plan": {**plan, "unit_amount_decimal": "1250.5"}, "quantity": 2}
    assert monthly_recurring_minor(_sub(item)) == 2501


def test_mrr_applies_permanent_discounts_in_both_shapes() -> None:
    item = {"price": _price(10000), "quantity": 1}
    legacy = _sub(item, discount={"id": "di_1", "coupon": _coupon(percent_off=25)})
    assert monthly_recurring_minor(legacy) == 7500
    current = _sub(
        item,
        discounts=[
            {"id": "di_2", "source": {"coupon": _coupon(amount_off=1500), "type": "coupon"}},
            "di_unexpanded",
        ],
    )
    assert monthly_recurring_minor(current) == 8500
    both = _sub(item, discount={"id": "di_3", "coupon": _coupon(percent_off=10)})
    both["discounts"] = [both["discount"]]
    assert monthly_recurring_minor(both) == 9000  # the same discount is applied once


def test_mrr_ignores_temporary_discounts_and_never_goes_negative() -> None:
    item = {"price": _price(10000), "quantity": 1}
    temporary = _sub(item, discount={"id": "d", "coupon": _coupon("repeating", percent_off=50)})
    assert monthly_recurring_minor(temporary) == 10000
    once = _sub(item, discount={"id": "d", "coupon": _coupon("once", amount_off=10000)})
    assert monthly_recurring_minor(once) == 10000
    huge = _sub(item, discount={"id": "d", "coupon": _coupon(amount_off=999999)})
    assert monthly_recurring_minor(huge) == 0


def test_amount_off_is_per_invoice_so_it_is_normalised_too() -> None:
    annual = _sub(
        {"price": _price(120000, "year"), "quantity": 1},
        discount={"id": "d", "coupon": _coupon(amount_off=12000)},
    )
    assert monthly_recurring_minor(annual) == 9000


def test_unknown_interval_and_tiered_prices_are_mapping_errors() -> None:
    with pytest.raises(MappingError, match="interval"):
        monthly_recurring_minor(_sub({"price": _price(100, "fortnight"), "quantity": 1}))
    tiered = {
        "id": "price_t",
        "unit_amount": None,
        "billing_scheme": "tiered",
        "recurring": {"interval": "month"},
    }
    with pytest.raises(MappingError, match="tiered"):
        monthly_recurring_minor(_sub({"price": tiered, "quantity": 1}))


AMOUNTS = st.integers(min_value=0, max_value=10_000_000)
QUANTITIES = st.integers(min_value=0, max_value=1000)
INTERVALS = st.sampled_from(["day", "week", "month", "year"])


@given(amount=AMOUNTS, quantity=QUANTITIES, interval=INTERVALS, count=st.integers(1, 12))
def test_mrr_matches_the_exact_monthly_value(
    amount: int, quantity: int, interval: str, count: int
) -> None:
    months = {"day": 12 / 365, "week": 12 / 52, "month": 1, "year": 12}[interval] * count
    sub = _sub({"price": _price(amount, interval, count), "quantity": quantity})
    assert abs(monthly_recurring_minor(sub) - amount * quantity / months) <= 0.5 + 1e-6


@given(
    amounts=st.lists(st.tuples(AMOUNTS, QUANTITIES, INTERVALS), min_size=1, max_size=5),
    percent=st.floats(min_value=0, max_value=100, allow_nan=False),
    amount_off=st.integers(min_value=0, max_value=10_000_000),
)
def test_mrr_is_never_negative_and_discounts_never_raise_it(
    amounts: list[tuple[int, int, str]], percent: float, amount_off: int
) -> None:
    items = [{"price": _price(a, i), "quantity": q} for a, q, i in amounts]
    gross = monthly_recurring_minor(_sub(*items))
    for coupon in (_coupon(percent_off=percent), _coupon(amount_off=amount_off)):
        net = monthly_recurring_minor(_sub(*items, discount={"id": "d", "coupon": coupon}))
        assert 0 <= net <= gross


# Mappers -----------------------------------------------------------------------------------


def test_subscription_shapes_both_give_the_period_end_and_mrr() -> None:
    basil, legacy, trial = load("stripe", "subscriptions.json")[:3]
    [current] = map_subscription(basil)
    assert current.values["account_ref"] == "cus_QAcme0000000001"
    assert current.values["mrr_minor"] == 50000  # metered item out; unexpanded discount unknown
    assert current.values["current_period_end"] == datetime(2025, 7, 1, tzinfo=UTC)
    assert current.values["currency"] == "USD"
    [older] = map_subscription(legacy)
    assert older.values["mrr_minor"] == 80000  # 12,000.00 a year, 20 % off forever
    assert older.values["current_period_end"] == datetime(2026, 2, 20, 10, tzinfo=UTC)
    [trialing] = map_subscription(trial)
    assert trialing.values["mrr_minor"] == 0


def test_invoice_shapes_both_give_the_subscription() -> None:
    basil, legacy, failing, _ = load("stripe", "invoices.json")
    [a] = map_invoice(basil)
    [b] = map_invoice(legacy)
    assert a.values["subscription_ref"] == "sub_1Acme000000001"
    assert b.values["subscription_ref"] == "sub_1Globex00000002"
    assert a.values["paid_at"] == datetime(2025, 5, 1, 1, tzinfo=UTC)
    [open_] = map_invoice(failing)
    assert (open_.values["status"], open_.values["attempt_count"]) == ("open", 2)
    assert open_.values["amount_remaining_minor"] == 1000
    assert open_.values["due_at"] == datetime(2025, 6, 9, tzinfo=UTC)


def test_customer_maps_domain_and_crm_hint() -> None:
    customers = load("stripe", "customers.json")
    [acme] = map_customer(customers[0], "crm_account_id")
    assert acme.values["domain"] == "acme.com"
    assert acme.values["crm_hint"] == "5001"
    [globex] = map_customer(customers[1], "crm_account_id")
    assert (globex.values["domain"], globex.values["crm_hint"]) == ("globex.io", None)
    [initech] = map_customer(customers[3], "crm_account_id")
    assert initech.values["crm_hint"] == "5003"
    with pytest.raises(MappingError, match="no event"):
        map_customer({"id": "cus_gone", "object": "customer", "deleted": True}, "crm_account_id")


def test_events_dispatch_on_the_object_they_carry() -> None:
    new = {e["type"]: e for e in load("stripe", "new_events.json")}
    [gone] = map_event(new["customer.deleted"], "crm_account_id")
    assert gone.values == {
        "external_id": "cus_QFreelance00003",
        "kind": "customer",
        "deleted_at": datetime(2025, 6, 11, 8, 30, tzinfo=UTC),
    }
    assert map_event(new["charge.succeeded"], "crm_account_id") == []
    [sub] = map_event(new["customer.subscription.updated"], "crm_account_id")
    assert sub.model is Subscription
    assert sub.values["mrr_minor"] == 60000


# The events cursor -------------------------------------------------------------------------


def test_first_sync_probes_events_then_lists_everything(engine: Engine) -> None:
    world = stripe_world()
    results = world.sync(engine)
    assert all(r.status == "ok" for r in results.values())
    probe = world.vendor.requests[0]
    assert (probe.url.path, dict(probe.url.params)) == ("/v1/events", {"limit": "1"})
    assert world.vendor.versions == {"2025-03-31.basil"}
    subs = _rows(engine, Subscription)
    assert len(subs) == 5  # canceled ones too: the list asks for status=all
    assert subs["sub_1Freelance00005"].mrr_minor == 4333
    assert subs["sub_1Acme000000001"].mrr_minor == 45000  # listed with expanded discounts
    assert len(_rows(engine, Invoice)) == 4
    assert _rows(engine, ExternalLink)["cus_QAcme0000000001"].crm_hint == "5001"


def test_later_syncs_walk_events_forward_and_do_not_relist(engine: Engine) -> None:
    world = stripe_world()
    world.sync(engine)
    world.vendor.requests.clear()
    quiet = world.sync(engine)
    assert [r.url.path for r in world.vendor.requests] == ["/v1/events"]
    assert world.vendor.requests[0].url.params["ending_before"] == "evt_1Old0000000003"
    assert sum(r.records for r in quiet.values()) == 0

    world.vendor.publish(load("stripe", "new_events.json"))
    world.vendor.requests.clear()
    world.now += timedelta(hours=1)  # within the reconcile cadence: no listing is due
    events = world.sync(engine)["events"]
    assert (events.records, events.skipped, events.pages) == (6, 1, 4)
    # the one subscription event that names its discount by id is read once, expanded
    assert {r.url.path for r in world.vendor.requests} == {
        "/v1/events",
        "/v1/subscriptions/sub_1Acme000000001",
    }
    links = _rows(engine, ExternalLink)
    assert links["cus_QGlobex00000002"].crm_hint == "5002"
    assert links["cus_QFreelance00003"].deleted_at == datetime(2025, 6, 11, 8, 30, tzinfo=UTC)
    assert links["cus_QFreelance00003"].name == "Sam Freelance"  # a tombstone keeps the rest
    subs = _rows(engine, Subscription)
    assert subs["sub_1Acme000000001"].mrr_minor == 54000  # 12 x 50.00, 10 % off forever
    assert (subs["sub_1Freelance00005"].status, subs["sub_1Freelance00005"].mrr_minor) == (
        "canceled",
        4333,  # what it billed until it ended
    )
    invoices = _rows(engine, Invoice)
    assert invoices["in_1Freelance00003"].attempt_count == 3
    assert invoices["in_1Acme0000000004"].status == "paid"


def test_a_cursor_older_than_the_event_retention_relists(engine: Engine) -> None:
    world = stripe_world()
    world.sync(engine)
    world.vendor.requests.clear()
    world.now += timedelta(days=40)
    results = world.sync(engine)
    paths = [r.url.path for r in world.vendor.requests]
    assert paths[0] == "/v1/events"
    assert dict(world.vendor.requests[0].url.params) == {"limit": "1"}
    assert {"/v1/customers", "/v1/subscriptions", "/v1/invoices"} <= set(paths)
    assert results["customers"].records == 4


# Deletes no event tells of: reconciles --------------------------------------------------


def _vanish(world: Any, customer: str, subscription: str) -> None:
    """Objects gone from Stripe's lists, and no event left to say so (events live 30 days)."""
    vendor = world.vendor
    vendor.customers = [c for c in vendor.customers if c["id"] != customer]
    vendor.subscriptions = [s for s in vendor.subscriptions if s["id"] != subscription]


def test_deletes_missed_while_down_past_the_event_retention_are_reconciled(
    engine: Engine,
) -> None:
    world = stripe_world()
    first = world.sync(engine)
    assert {r.reconciled for r in first.values()} == {0}
    _vanish(world, "cus_QGlobex00000002", "sub_1Globex00000002")
    world.now += timedelta(days=40)
    results = world.sync(engine)
    assert {name: (r.status, r.reconciled) for name, r in results.items()} == {
        "events": ("ok", 0),
        "customers": ("ok", 1),
        "subscriptions": ("ok", 1),
        "invoices": ("ok", 0),
    }
    links = {k: link.deleted_at for k, link in _rows(engine, ExternalLink).items()}
    assert {k for k, at in links.items() if at is not None} == {"cus_QGlobex00000002"}
    assert links["cus_QGlobex00000002"] == world.now
    subs = {k: sub.deleted_at for k, sub in _rows(engine, Subscription).items()}
    assert {k for k, at in subs.items() if at is not None} == {"sub_1Globex00000002"}
    assert "sub_1AcmeOld0000004" in subs, "canceled subscriptions are listed with status=all"


def test_a_due_reconcile_lists_customers_and_subscriptions_again(engine: Engine) -> None:
    world = stripe_world()
    world.sync(engine)
    _vanish(world, "cus_QInitech0000004", "sub_1Initech0000003")
    world.vendor.requests.clear()
    world.now += timedelta(hours=23)
    assert sum(r.reconciled for r in world.sync(engine).values()) == 0
    assert [r.url.path for r in world.vendor.requests] == ["/v1/events"]
    world.vendor.requests.clear()
    world.now += timedelta(hours=1)
    results = world.sync(engine)
    assert {r.url.path for r in world.vendor.requests} == {
        "/v1/events",
        "/v1/customers",
        "/v1/subscriptions",
    }, "invoices are not reconciled, so not listed again"
    assert all(
        p.url.params["status"] == "all"
        for p in world.vendor.requests
        if p.url.path == "/v1/subscriptions"
    )
    assert (results["customers"].reconciled, results["subscriptions"].reconciled) == (1, 1)
    world.vendor.requests.clear()
    world.now += timedelta(hours=1)
    world.sync(engine)
    assert [r.url.path for r in world.vendor.requests] == ["/v1/events"]


def test_scores_and_matching_leave_reconciled_deletes_out(engine: Engine) -> None:
    world = stripe_world()
    with Session(engine) as session:
        session.add(Account(source="hubspot", external_id="5003", name="Initech"))
        session.commit()
    world.sync(engine)
    with Session(engine) as session:
        assert resolve_identities(session) == {"matched": 2, "unmatched": 3}
        session.commit()
        initech = session.scalars(select(Account)).one().id
        assert initech in subscription_state(session, world.now.date())
    _vanish(world, "cus_QInitech0000004", "sub_1Initech0000003")
    world.now += timedelta(days=1)
    world.sync(engine)
    with Session(engine) as session:
        assert resolve_identities(session) == {"matched": 1, "unmatched": 3}
        session.commit()
        assert initech not in subscription_state(session, world.now.date())


def test_wrong_key_is_an_auth_error_without_any_key(engine: Engine) -> None:
    secret = "sk_test_RECOGNISABLE_SECRET_0042"
    results = stripe_world(api_key=secret).sync(engine)
    error = results["events"].exception
    assert isinstance(error, AuthError)
    assert str(error) == "stripe rejected the API key (HTTP 401): check STRIPE__API_KEY in .env"
    assert secret not in str(error)
    assert "sk_test" not in str(error)
