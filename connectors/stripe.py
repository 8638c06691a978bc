"""Stripe billing: customers, subscriptions with their MRR, invoices, kept fresh by events.

Stripe lists filter on creation time only, so changes come from the Events API. The
`events` stream runs first: with no usable cursor it records the newest event id (a probe
with `limit=1`) and starts a new listing generation; the list streams then list everything
once for that generation (their cursor is the generation they listed). Later syncs walk
`/v1/events` forward with `ending_before` and apply customer, subscription and invoice
objects; the lists are not read again. Stripe keeps events for 30 days, so a cursor older
than `relist_after` starts a new generation and everything is listed again.

A customer deleted while no sync ran for longer than that leaves no event to find, so the
customers and subscriptions (`status=all`) listings declare a `Reconcile`: when one is due
(`reconcile_every_hours` in the sources file) they are listed again, whatever the
generation, and the engine soft-deletes the rows these complete listings no longer show.

Stripe has no MRR field: `monthly_recurring_minor` computes it from the items (normalised
to a month, permanent discounts applied; trials, metered prices and ended ones count 0).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from connectors.base import (
    Connector,
    CursorKind,
    Fetcher,
    Json,
    Mapper,
    Page,
    Reconcile,
    ReconcilePolicy,
    Record,
    Request,
    StartContext,
    StreamSpec,
    email_domain,
    from_unix,
)
from connectors.errors import MappingError
from connectors.http import BearerAuth, ClientOptions, HttpClient, HttpSource
from connectors.paginators import StripeEndingBeforePaginator, StripeStartingAfterPaginator
from settings import ConfigError, Settings
from store.models import ExternalLink, Invoice, Subscription

__all__ = [
    "SOURCE",
    "StripeOptions",
    "build",
    "map_customer",
    "map_event",
    "map_invoice",
    "map_subscription",
    "monthly_recurring_minor",
]

SOURCE = "stripe"
NO_MRR_STATUSES = frozenset({"trialing", "incomplete", "incomplete_expired", "paused"})
"""Statuses that bill nothing. A canceled subscription keeps the MRR it billed while it ran
(its `ended_at` says when that stopped), so MRR history and churned revenue see it."""
MONTHS_PER_INTERVAL = {
    "month": Fraction(1),
    "year": Fraction(1, 12),
    "week": Fraction(52, 12),
    "day": Fraction(365, 12),
}


@dataclass(frozen=True)
class StripeOptions:
    """Knobs of this connector beyond its settings."""

    relist_after: timedelta = timedelta(days=29)
    """Events live 30 days; an events cursor older than this re-lists everything."""


# MRR ---------------------------------------------------------------------------------------


def _recurring(price: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if isinstance(price.get("recurring"), Mapping):
        return price["recurring"]  # type: ignore[no-any-return]
    if price.get("interval"):  # the older `plan` shape keeps these on the plan itself
        return price
    return None


def _per_month(recurring: Mapping[str, Any]) -> Fraction:
    interval = recurring.get("interval")
    if interval not in MONTHS_PER_INTERVAL:
        raise MappingError(f"unknown billing interval {interval!r}")
    count = recurring.get("interval_count") or 1
    return MONTHS_PER_INTERVAL[interval] / int(count)


def _unit_amount(price: Mapping[str, Any]) -> Fraction:
    """The per-unit amount of a price, or of a plan (the older shape calls it `amount`)."""
    for whole, decimal in (("unit_amount", "unit_amount_decimal"), ("amount", "amount_decimal")):
        if price.get(whole) is not None:
            return Fraction(int(price[whole]))
        if price.get(decimal) is not None:
            return Fraction(Decimal(str(price[decimal])))
    if price.get("billing_scheme") == "tiered":
        raise MappingError(f"price {price.get('id')} is tiered; tiered prices are not supported")
    raise MappingError(f"price {price.get('id')} has no unit amount")


def _items(sub: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The subscription's items; a subscription without an item list is not one we can read."""
    items = sub.get("items")
    data = items.get("data") if isinstance(items, Mapping) else None
    if not isinstance(data, list):
        raise MappingError(f"subscription {sub.get('id')} has no list of items")
    return data


def _item_monthly(item: Mapping[str, Any]) -> Fraction:
    price = item.get("price") or item.get("plan") or {}
    recurring = _recurring(price)
    if recurring is None or recurring.get("usage_type") == "metered":
        return Fraction(0)
    quantity = item.get("quantity")
    return _unit_amount(price) * (1 if quantity is None else int(quantity)) * _per_month(recurring)


def _permanent_coupons(sub: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Coupons of `discounts` (expanded objects) and of the older single `discount`."""
    candidates = [*(sub.get("discounts") or []), sub.get("discount")]
    seen: set[str] = set()
    for discount in candidates:
        if not isinstance(discount, Mapping):
            continue  # an unexpanded id: its coupon is not in the payload
        key = str(discount.get("id") or id(discount))
        source = discount.get("source")
        nested = source.get("coupon") if isinstance(source, Mapping) else None
        coupon = discount.get("coupon") or nested  # `source.coupon` since API 2025-03-31
        if key in seen or not isinstance(coupon, Mapping):
            continue
        seen.add(key)
        if coupon.get("duration") == "forever":
            yield coupon


def monthly_recurring_minor(sub: Mapping[str, Any]) -> int:
    """A subscription's MRR in minor units, rounded half up, never negative."""
    if sub.get("status") in NO_MRR_STATUSES:
        return 0
    items = _items(sub)
    gross = sum((_item_monthly(item) for item in items), Fraction(0))
    licensed = [_recurring(i.get("price") or i.get("plan") or {}) for i in items]
    billing = next((r for r in licensed if r is not None), None)
    for coupon in _permanent_coupons(sub):
        if coupon.get("percent_off") is not None:
            gross *= 1 - Fraction(Decimal(str(coupon["percent_off"]))) / 100
        elif coupon.get("amount_off") is not None:
            per_invoice = Fraction(int(coupon["amount_off"]))
            gross -= per_invoice * (_per_month(billing) if billing else 1)
    return max(0, math.floor(gross + Fraction(1, 2)))


# Mappers -----------------------------------------------------------------------------------


def _id(value: object) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    return str(value) if value else None


def _created(raw: Mapping[str, Any]) -> datetime:
    created = from_unix(raw.get("created"), "created")
    if created is None:
        raise MappingError(f"{raw.get('object', 'object')} {raw.get('id')} has no created time")
    return created


def map_customer(
    raw: Mapping[str, Any], metadata_key: str, deleted_at: datetime | None = None
) -> list[Record]:
    """A customer -> an ExternalLink; `crm_hint` is the CRM id kept in its metadata."""
    if raw.get("deleted") is True:
        if deleted_at is None:
            raise MappingError(f"customer {raw.get('id')} is deleted but no event says when")
        tombstone = {"external_id": str(raw["id"]), "kind": "customer", "deleted_at": deleted_at}
        return [Record(ExternalLink, tombstone)]
    hint = (raw.get("metadata") or {}).get(metadata_key)
    values = {
        "external_id": str(raw["id"]),
        "kind": "customer",
        "name": raw.get("name") or raw.get("description") or None,
        "domain": email_domain(raw.get("email")),
        "crm_hint": (str(hint).strip() or None) if hint is not None else None,
        "deleted_at": deleted_at,
    }
    return [Record(ExternalLink, values)]


def map_subscription(raw: Mapping[str, Any]) -> list[Record]:
    """A subscription -> a Subscription row with its computed MRR (both API shapes)."""
    items = _items(raw)  # read first: a shapeless subscription is quarantined, whatever its status
    item_ends = [e for e in (from_unix(i.get("current_period_end")) for i in items) if e]
    price = (items[0].get("price") or items[0].get("plan") or {}) if items else {}
    currency = raw.get("currency") or price.get("currency") or "usd"
    values = {
        "external_id": str(raw["id"]),
        "account_ref": _id(raw.get("customer")),
        "status": raw["status"],
        "mrr_minor": monthly_recurring_minor(raw),
        "currency": str(currency).upper(),
        "started_at": from_unix(raw.get("start_date"), "start_date"),
        "current_period_end": from_unix(raw.get("current_period_end"), "current_period_end")
        or (min(item_ends) if item_ends else None),
        "cancel_at": from_unix(raw.get("cancel_at"), "cancel_at"),
        "canceled_at": from_unix(raw.get("canceled_at"), "canceled_at"),
        "ended_at": from_unix(raw.get("ended_at"), "ended_at"),
        "created_at": _created(raw),
        "deleted_at": None,
    }
    return [Record(Subscription, values)]


def _remaining(invoice: Mapping[str, Any]) -> int:
    """What is still owed; a payload without `amount_remaining` owes due minus paid."""
    if invoice.get("amount_remaining") is not None:
        return int(invoice["amount_remaining"])
    return max(0, int(invoice.get("amount_due") or 0) - int(invoice.get("amount_paid") or 0))


def map_invoice(raw: Mapping[str, Any], deleted_at: datetime | None = None) -> list[Record]:
    """An invoice -> an Invoice row; the subscription is found in either API shape."""
    if not raw.get("status"):
        raise MappingError(f"invoice {raw.get('id')} has no status")
    parent = raw.get("parent") or {}
    details = parent.get("subscription_details") or {}
    transitions = raw.get("status_transitions") or {}
    values = {
        "external_id": str(raw["id"]),
        "account_ref": _id(raw.get("customer")),
        "subscription_ref": _id(raw.get("subscription")) or _id(details.get("subscription")),
        "status": raw["status"],
        "amount_due_minor": int(raw.get("amount_due") or 0),
        "amount_remaining_minor": _remaining(raw),
        "currency": str(raw.get("currency") or "usd").upper(),
        "attempt_count": int(raw.get("attempt_count") or 0),
        "due_at": from_unix(raw.get("due_date"), "due_date"),
        "paid_at": from_unix(transitions.get("paid_at"), "paid_at"),
        "created_at": _created(raw),
        "deleted_at": deleted_at,
    }
    return [Record(Invoice, values)]


def map_event(raw: Mapping[str, Any], metadata_key: str) -> list[Record]:
    """An event -> the row of the customer, subscription or invoice it carries; else skip."""
    obj = raw["data"]["object"]
    kind, event_type = obj.get("object"), str(raw.get("type", ""))
    at = from_unix(raw.get("created"), "created")
    if kind == "customer":
        gone = event_type == "customer.deleted" or obj.get("deleted") is True
        return map_customer({**obj, "deleted": True} if gone else obj, metadata_key, at)
    if kind == "subscription":
        return map_subscription(obj)
    if kind == "invoice":
        return map_invoice(obj, at if event_type == "invoice.deleted" else None)
    return []


# Cursors -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _EventsCursor:
    after: str | None
    at: int
    generation: str

    def dump(self) -> str:
        return json.dumps({"after": self.after, "at": self.at, "generation": self.generation})


def _load(cursor: str | None) -> _EventsCursor | None:
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
        return _EventsCursor(data["after"], int(data["at"]), str(data["generation"]))
    except (ValueError, TypeError, KeyError):
        return None


def _usable(ctx: StartContext, relist_after: timedelta) -> _EventsCursor | None:
    """The committed events cursor if it can still be walked forward from."""
    state = _load(ctx.cursor)
    if state is None or state.after is None:
        return None
    if ctx.now - datetime.fromtimestamp(state.at, ctx.now.tzinfo) > relist_after:
        return None
    return state


DISCOUNTS_AS_IDS_SINCE = "2025-03-31"


def _unexpanded_discounts(event: Mapping[str, Any]) -> str | None:
    """The subscription id of an event whose subscription names its discounts by id only."""
    obj = (event.get("data") or {}).get("object") or {}
    if obj.get("object") != "subscription" or not obj.get("id"):
        return None
    discounts = obj.get("discounts") or []
    return str(obj["id"]) if any(isinstance(d, str) for d in discounts) else None


def expand_event_discounts(fetcher: Fetcher, events: list[Json]) -> list[Json]:
    """Events carry a subscription's discounts as ids; MRR needs their coupons.

    Each such subscription is read once with `expand[]=discounts` and its discount objects
    replace the ids, so an event never computes MRR without a coupon the listing applied.
    """
    wanted = {sid for event in events if (sid := _unexpanded_discounts(event))}
    expanded: dict[str, list[Any]] = {}
    for sid in sorted(wanted):
        body = fetcher.fetch(
            Request("GET", f"/v1/subscriptions/{sid}", params={"expand[]": "discounts"})
        )
        expanded[sid] = list(body.get("discounts") or [])
    result: list[Json] = []
    for event in events:
        sid = _unexpanded_discounts(event)
        if sid is None:
            result.append(event)
            continue
        obj = {**event["data"]["object"], "discounts": expanded[sid]}
        result.append({**event, "data": {**event["data"], "object": obj}})
    return result


def build(
    settings: Settings, client: ClientOptions | None = None, options: StripeOptions | None = None
) -> Connector:
    """The Stripe connector for these settings."""
    cfg = settings.stripe
    opts = options or StripeOptions()
    if cfg.api_key is None:
        raise ConfigError("stripe is not configured: set STRIPE__API_KEY in .env")
    http = HttpSource(
        source=SOURCE,
        base_url=cfg.base_url,
        auth=BearerAuth(cfg.api_key),
        credential="the API key",
        settings_hint="STRIPE__API_KEY",
        secrets=(cfg.api_key,),
        headers={"Stripe-Version": cfg.api_version},
        no_retry_header=("Stripe-Should-Retry", "false"),
    )
    key = cfg.crm_id_metadata_key
    # Since 2025-03-31 the single, always-expanded `discount` is gone and `discounts` holds
    # ids; MRR needs their coupons, so ask for them. Older versions carry `discount` whole.
    ids_only = cfg.api_version >= DISCOUNTS_AS_IDS_SINCE
    discount_expansion = {"expand[]": "data.discounts"} if ids_only else {}

    def events_query(ctx: StartContext) -> dict[str, Any]:
        state = _usable(ctx, opts.relist_after)
        if state is None:
            return {"limit": 1}  # probe for the newest event before listing everything
        return {"ending_before": state.after, "limit": cfg.page_size}

    def events_cursor(page: Page) -> str | None:
        state = _usable(page.start, opts.relist_after)
        generation = state.generation if state else str(int(page.start.now.timestamp()))
        data = page.body.get("data") or []
        if data:
            return _EventsCursor(data[0]["id"], int(data[0]["created"]), generation).dump()
        if state is None and "ending_before" not in page.request.params:
            now = int(page.start.now.timestamp())
            return _EventsCursor(None, now, generation).dump()  # no events at all yet
        return None

    def generation(ctx: StartContext) -> str | None:
        state = _load(ctx.source_cursors.get("events"))
        return state.generation if state else None

    def listing(
        name: str, path: str, mapper: Mapper, reconcile: Reconcile | None = None, **params: Any
    ) -> StreamSpec:
        def query(ctx: StartContext) -> dict[str, Any] | None:
            current = generation(ctx)
            if current is not None and ctx.cursor == current and not ctx.reconcile:
                return None  # listed for this generation: events carry the changes
            return {**params, "limit": cfg.page_size}

        return StreamSpec(
            name=name,
            path=path,
            query=query,
            records_key="data",
            paginator=StripeStartingAfterPaginator,
            mapper=mapper,
            newest_first=True,
            cursor_kind=CursorKind.OPAQUE,
            cursor=lambda page: generation(page.start) if page.is_last else None,
            reconcile=reconcile,
        )

    streams = (
        StreamSpec(
            name="events",
            path="/v1/events",
            query=events_query,
            records_key="data",
            paginator=StripeEndingBeforePaginator,
            mapper=lambda raw: map_event(raw, key),
            enrich=expand_event_discounts if ids_only else None,
            newest_first=True,
            cursor_kind=CursorKind.OPAQUE,
            cursor=events_cursor,
        ),
        listing(
            "customers",
            "/v1/customers",
            lambda raw: map_customer(raw, key),
            reconcile=Reconcile(ExternalLink, {"kind": "customer"}),
        ),
        listing(
            "subscriptions",
            "/v1/subscriptions",
            map_subscription,
            reconcile=Reconcile(Subscription),
            status="all",
            **discount_expansion,
        ),
        listing("invoices", "/v1/invoices", map_invoice),
    )
    return Connector(
        source=SOURCE,
        streams=streams,
        open=lambda: HttpClient(http, client),
        secrets=(cfg.api_key,),
        reconcile=ReconcilePolicy.from_config(SOURCE, settings.source_config(SOURCE)),
    )
