"""Stripe side of the book: prices, coupons, customers, subscriptions, invoices and events."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sandbox.gen_accounts import Profile, Timeline, add_months, rng
from sandbox.records import Coupon, Customer, Invoice, Price, Subscription

__all__ = ["EUR_EVERY", "Billing", "arr_dollars", "billing_currency", "make_billing"]

# (product, monthly cents per seat); the yearly price is ten months' worth.
_PLANS = {
    "Enterprise": ("Enterprise", 6000),
    "Mid-Market": ("Growth", 3500),
    "Scale": ("Starter", 1500),
}
_COUPONS = (
    ("LOYALTY10", "Loyalty 10%", 10.0),
    ("PARTNER15", "Partner 15%", 15.0),
    ("MULTIYEAR20", "Multi-year 20%", 20.0),
)
_UNMATCHED = (
    ("Globex Reseller", "globex-reseller.test"),
    ("Initech Partners", "initech-partners.test"),
)
_ALPHABET = string.ascii_letters + string.digits
EUR_EVERY = 5
"""One company in this many (by id) is billed in EUR (same figures as in USD), the rest USD."""


def billing_currency(company_id: str) -> str:
    """The currency an account is billed in and its deals are written in: `EUR` or `USD`,
    from the company id alone, so Stripe and the CRM agree without sharing state."""
    return "EUR" if int(company_id) % EUR_EVERY == 0 else "USD"


def _unit(segment: str, interval: str) -> int:
    monthly = _PLANS[segment][1]
    return monthly * 10 if interval == "year" else monthly


def arr_dollars(p: Profile) -> int:
    """Annual recurring revenue of the account's contract, in whole dollars, after discount."""
    per_year = _unit(p.segment, p.interval) * (1 if p.interval == "year" else 12)
    pct = _COUPONS[p.coupon][2] if p.coupon is not None else 0.0
    return round(p.seats * per_year * (1 - pct / 100) / 100)


@dataclass
class Billing:
    """Everything the Stripe emulator serves, each tuple sorted oldest first."""

    prices: tuple[Price, ...] = ()
    coupons: tuple[Coupon, ...] = ()
    customers: list[Customer] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)
    events: list[tuple[datetime, str, str, str, tuple[tuple[str, str], ...]]] = field(
        default_factory=list
    )


class _Ids:
    def __init__(self, r: random.Random) -> None:
        self.r, self.seen = r, set[str]()

    def __call__(self, prefix: str, n: int = 14) -> str:
        while True:
            value = prefix + "".join(self.r.choice(_ALPHABET) for _ in range(n))
            if value not in self.seen:
                self.seen.add(value)
                return value


def make_billing(seed: int, tl: Timeline, profiles: list[Profile]) -> Billing:
    """Render the Stripe objects of every account and the event history that made them."""
    ids = _Ids(rng(seed, "stripe-ids"))
    b = Billing()
    epoch = tl.now - timedelta(days=4 * 365)
    prices: dict[tuple[str, str], Price] = {}
    for seg, (product, _) in _PLANS.items():
        prod = ids("prod_")
        for interval in ("month", "year"):
            prices[seg, interval] = Price(
                ids("price_", 24), prod, product, _unit(seg, interval), "usd", interval, epoch
            )
    eur_ids = _Ids(rng(seed, "stripe-eur-ids"))  # apart, so the USD ids stay as they were
    eur = {key: replace(p, id=eur_ids("price_", 24), currency="eur") for key, p in prices.items()}
    b.prices = tuple(prices.values()) + tuple(eur.values())
    b.coupons = tuple(Coupon(cid, name, pct, epoch) for cid, name, pct in _COUPONS)
    for p in profiles:
        priced = eur if billing_currency(p.company_id) == "EUR" else prices
        _account(b, ids, rng(seed, "billing", p.index), tl, p, priced[p.segment, p.interval])
    for name, domain in _UNMATCHED:
        created = tl.now - timedelta(days=ids.r.randint(30, 400), hours=ids.r.randint(0, 23))
        b.customers.append(
            Customer(ids("cus_"), name, f"billing@{domain}", None, None, False, created)
        )
        b.events.append((created, ids("evt_", 24), "customer.created", b.customers[-1].id, ()))
    b.customers.sort(key=lambda c: c.created)
    b.subscriptions.sort(key=lambda s: s.created)
    b.invoices.sort(key=lambda i: i.created)
    b.events.sort(key=lambda e: e[0])
    return b


def _late_in_patch(r: random.Random, tl: Timeline, p: Profile, cycle: datetime) -> bool:
    """Whether a recovered account paid this invoice late, during its rough patch."""
    if p.rough_patch is None:
        return False
    start, end = p.rough_patch
    return start <= tl.week_of(cycle) <= end and r.random() < 0.5


def _account(
    b: Billing, ids: _Ids, r: random.Random, tl: Timeline, p: Profile, price: Price
) -> None:
    latest_ok = tl.now - timedelta(minutes=10)
    start = p.contract_start
    cust = Customer(
        id=ids("cus_"),
        name=p.name,
        email=f"billing@{p.domain}",
        crm_account_id=None if p.stripe_email_only else p.company_id,
        company_id=p.company_id,
        delinquent=p.failing_payment,
        created=start - timedelta(hours=r.randint(1, 48), minutes=r.randint(0, 59)),
    )
    sub_id, item_id = ids("sub_"), ids("si_")
    b.customers.append(cust)
    b.events.append((cust.created, ids("evt_", 24), "customer.created", cust.id, ()))
    b.events.append((start, ids("evt_", 24), "customer.subscription.created", sub_id, ()))
    pct = _COUPONS[p.coupon][2] if p.coupon is not None else 0.0
    discount_id = ids("di_") if p.coupon is not None else None
    step = 12 if p.interval == "year" else 1
    if p.is_trial:
        trial_end = start + timedelta(days=30)
        b.subscriptions.append(
            Subscription(
                sub_id,
                cust.id,
                item_id,
                price.id,
                p.seats,
                "trialing",
                start,
                start,
                trial_end,
                start,
                trial_end,
                start,
                trial_end,
                None,
                None,
                None,
                None,
                None,
            )
        )
        return
    end = p.churned_at or latest_ok
    cycles = [add_months(start, n * step) for n in range(0, 80)]
    cycles = [c for c in cycles if c <= end]
    if p.churned_at is not None and cycles[-1] == p.churned_at:
        cycles.pop()
    invoices: list[Invoice] = []
    prefix = "".join(r.choice(string.ascii_uppercase) for _ in range(8))
    for n, c in enumerate(cycles):
        if c < tl.now - timedelta(days=365) or c > tl.now - timedelta(hours=2):
            continue
        subtotal = price.unit_amount * p.seats
        discount = round(subtotal * pct / 100)
        total = subtotal - discount
        finalized = c + timedelta(hours=1)
        inv_id = ids("in_", 24)
        is_last = c == cycles[-1]
        failing = is_last and p.failing_payment
        retried = not failing and p.story is None and r.random() < 0.03
        tries, gap = (2 if retried else 1), 2
        if failing:
            tries = 2 if p.story == "payment_failed" else r.randint(1, 3)
        elif _late_in_patch(r, tl, p, c):
            tries, gap = 4, 5  # paid at the fourth attempt, about 15 days late
        attempts = [finalized + timedelta(days=gap * k) for k in range(tries)]
        attempts = [a for a in attempts if a <= latest_ok] or [finalized]
        paid_at = None if failing else attempts[-1] + timedelta(minutes=r.randint(1, 30))
        if paid_at is not None and paid_at > latest_ok:
            paid_at, attempts = finalized, [finalized]
        invoices.append(
            Invoice(
                id=inv_id,
                number=f"{prefix}-{n + 1:04d}",
                customer_id=cust.id,
                subscription_id=sub_id,
                subscription_item_id=item_id,
                price_id=price.id,
                quantity=p.seats,
                status="open" if failing else "paid",
                billing_reason="subscription_create" if n == 0 else "subscription_cycle",
                subtotal=subtotal,
                discount_amount=discount,
                total=total,
                amount_paid=0 if failing else total,
                amount_remaining=total if failing else 0,
                attempt_count=len(attempts),
                created=c,
                period_start=c,
                period_end=add_months(start, (n + 1) * step),
                finalized_at=finalized,
                paid_at=paid_at,
                next_payment_attempt=attempts[-1] + timedelta(days=2) if failing else None,
            )
        )
        for k, a in enumerate(attempts):
            if failing or k < len(attempts) - 1:
                b.events.append((a, ids("evt_", 24), "invoice.payment_failed", inv_id, ()))
        if failing:
            b.events.append(
                (
                    attempts[0] + timedelta(minutes=1),
                    ids("evt_", 24),
                    "customer.subscription.updated",
                    sub_id,
                    (("status", "active"),),
                )
            )
        if paid_at is not None:
            b.events.append((paid_at, ids("evt_", 24), "invoice.paid", inv_id, ()))
    last_cycle, period_end = cycles[-1], add_months(start, len(cycles) * step)
    status = "canceled" if p.churned_at else "past_due" if p.failing_payment else "active"
    if p.churned_at is not None:
        b.events.append(
            (p.churned_at, ids("evt_", 24), "customer.subscription.deleted", sub_id, ())
        )
    b.invoices.extend(invoices)
    b.subscriptions.append(
        Subscription(
            id=sub_id,
            customer_id=cust.id,
            item_id=item_id,
            price_id=price.id,
            quantity=p.seats,
            status=status,
            created=start,
            start_date=start,
            billing_cycle_anchor=start,
            current_period_start=last_cycle,
            current_period_end=period_end,
            trial_start=None,
            trial_end=None,
            canceled_at=p.churned_at,
            ended_at=p.churned_at,
            coupon_id=_COUPONS[p.coupon][0] if p.coupon is not None else None,
            discount_id=discount_id,
            latest_invoice_id=invoices[-1].id if invoices else None,
        )
    )
