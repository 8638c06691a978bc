"""Chargebee billing: customers, subscriptions with Chargebee's own MRR, and invoices.

Chargebee API v2 lists page with `limit` (at most 100) and `offset`, an opaque token taken
from the previous response's `next_offset` (none means the end), and wrap each item under
its type: `{"list": [{"customer": {...}}], "next_offset": "..."}`; subscription entries
carry their `customer` too, which is left to the customers stream. Every stream asks for
`updated_at[after]` sorted by `updated_at` ascending; its cursor is the latest `updated_at`
seen (Unix seconds, kept as an ISO timestamp, so the engine's lookback applies). Every
request sends `include_deleted=true`: deleted records come back with `deleted: true` and
become soft deletes, dated by their `updated_at`.

Statuses are stored in the words scoring reads (Stripe's), as the status tables below say.
An active or non-renewing subscription with dues (`due_invoices_count` or `total_dues`
above 0) is stored as `past_due`, which scoring believes only while one of the account's
invoices is failed. `mrr` is Chargebee's own (minor units), 0 unless the subscription bills.
Invoices `payment_due` and `not_paid` are failed or overdue payments: stored `open` with
`attempt_count` = the failed first collection plus each dunning retry (0 for an invoice
that never failed), so one paid after dunning counts as failed until its `paid_at`.
`amount_due_minor` is the invoice `total`, `amount_remaining_minor` Chargebee's `amount_due`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from connectors.base import (
    Connector,
    CursorKind,
    Mapper,
    Record,
    Request,
    StartContext,
    StreamSpec,
    email_domain,
    from_unix,
    max_timestamp,
    record_id,
)
from connectors.errors import MappingError
from connectors.http import ApiKeyAuth, ClientOptions, HttpClient, HttpSource
from connectors.paginators import Paginator
from settings import ConfigError, Settings
from store.models import ExternalLink, Invoice, Subscription

__all__ = [
    "SOURCE",
    "ChargebeeOptions",
    "NextOffsetPaginator",
    "build",
    "map_customer",
    "map_invoice",
    "map_subscription",
]

SOURCE = "chargebee"
API_PATH = "/api/v2"
SUBSCRIPTION_STATUSES = {
    "future": "incomplete",  # not started: `started_at` is its future `start_date`
    "in_trial": "trialing",
    "active": "active",
    "non_renewing": "active",  # `cancel_at` is `cancelled_at`, else `current_term_end`
    "paused": "paused",
    "cancelled": "canceled",  # ended at `cancelled_at`
    "transferred": "canceled",  # moved to another business entity under a new id
}
NO_MRR_STATUSES = frozenset({"incomplete", "trialing", "paused", "canceled"})
INVOICE_STATUSES = {
    "paid": "paid",
    "posted": "open",  # awaiting payment within its terms; no attempt has failed
    "payment_due": "open",  # failed or overdue, being retried
    "not_paid": "open",  # every collection attempt failed
    "voided": "void",
    "pending": "draft",  # not closed yet
}
FAILED_INVOICE_STATUSES = frozenset({"payment_due", "not_paid"})


@dataclass(frozen=True)
class ChargebeeOptions:
    """Knobs of this connector beyond its settings."""

    start_time: int | None = None
    """Unix time the very first sync starts from (None: everything)."""
    max_page_size: int = 100
    """Chargebee refuses a `limit` above 100; larger page sizes are lowered to this."""


class NextOffsetPaginator(Paginator):
    """`next_offset` in the body, an opaque token sent back as `offset`; absent at the end."""

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        token = body.get("next_offset")
        if token is None or token == "":
            return False, None
        return True, str(token)

    def place_token(self, request: Request, token: str) -> Request:
        return request.with_params({"offset": token})


# Value helpers -----------------------------------------------------------------------------


def _text(raw: Mapping[str, Any], field: str) -> str:
    value = raw.get(field)
    if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
        raise MappingError(f"{raw.get('object', 'record')} {raw.get('id')}: {field} is missing")
    return str(value)


def _whole(raw: Mapping[str, Any], field: str) -> int:
    """An integer field (minor units, a count); absent is 0."""
    value = raw.get(field)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise MappingError(f"{field} {value!r} is not a whole number")
    return value


def _deleted_at(raw: Mapping[str, Any]) -> datetime | None:
    if raw.get("deleted") is not True:
        return None
    at = from_unix(raw.get("updated_at"), "updated_at")
    if at is None:
        raise MappingError(f"{raw.get('object')} {raw.get('id')} is deleted but has no updated_at")
    return at


def _status(raw: Mapping[str, Any], words: Mapping[str, str]) -> str:
    word = raw.get("status")
    if not isinstance(word, str) or word not in words:
        raise MappingError(f"{raw.get('object')} {raw.get('id')} has unknown status {word!r}")
    return word


# Mappers -----------------------------------------------------------------------------------


def map_customer(raw: Mapping[str, Any], crm_id_field: str) -> list[Record]:
    """A customer -> an ExternalLink; `crm_hint` is the CRM id in the named custom field."""
    person = " ".join(str(raw[k]).strip() for k in ("first_name", "last_name") if raw.get(k))
    hint = raw.get(crm_id_field)
    values = {
        "external_id": _text(raw, "id"),
        "kind": "customer",
        "name": raw.get("company") or person or None,
        "domain": email_domain(raw.get("email")),
        "crm_hint": (str(hint).strip() or None) if hint is not None else None,
        "deleted_at": _deleted_at(raw),
    }
    return [Record(ExternalLink, values)]


PERIODS_PER_MONTH = {
    "day": Fraction(365, 12),
    "week": Fraction(52, 12),
    "month": Fraction(1),
    "year": Fraction(1, 12),
}


def _items_mrr(raw: Mapping[str, Any]) -> int:
    """The MRR a cancelled subscription billed while it ran, from its plan and addon items.

    Chargebee's own `mrr` drops to 0 once a subscription is cancelled; keeping what it billed
    lets history (MRR 90 days ago, churned ARR, GRR) see the churn. Before discounts.
    """
    unit = PERIODS_PER_MONTH.get(str(raw.get("billing_period_unit") or "month"))
    period = raw.get("billing_period") or 1
    if unit is None or not isinstance(period, int) or period < 1:
        return 0
    total = Fraction(0)
    for item in raw.get("subscription_items") or []:
        if not isinstance(item, Mapping) or item.get("item_type") not in ("plan", "addon"):
            continue
        amount = item.get("amount")
        if not isinstance(amount, int):
            price, quantity = item.get("unit_price"), item.get("quantity") or 1
            amount = price * quantity if isinstance(price, int) and isinstance(quantity, int) else 0
        total += Fraction(amount) * unit / period
    return max(0, math.floor(total + Fraction(1, 2)))


def map_subscription(raw: Mapping[str, Any]) -> list[Record]:
    """A subscription -> a Subscription row in the store's status words, with its MRR.

    A cancelled subscription keeps the MRR it billed (its end date says it no longer does),
    so point-in-time readers still count it before it ended.
    """
    word = _status(raw, SUBSCRIPTION_STATUSES)
    status = SUBSCRIPTION_STATUSES[word]
    mrr = _whole(raw, "mrr")
    dues = _whole(raw, "due_invoices_count") > 0 or _whole(raw, "total_dues") > 0
    if status == "active" and dues:
        status = "past_due"
    term_end = from_unix(raw.get("current_term_end"), "current_term_end")
    cancelled = from_unix(raw.get("cancelled_at"), "cancelled_at")
    ended = None
    if word == "cancelled":
        ended = cancelled
    elif word == "transferred":
        ended = cancelled or from_unix(raw.get("updated_at"), "updated_at")
    scheduled = from_unix(raw.get("cancel_schedule_created_at"), "cancel_schedule_created_at")
    values = {
        "external_id": _text(raw, "id"),
        "account_ref": _text(raw, "customer_id"),
        "status": status,
        "mrr_minor": _items_mrr(raw)
        if word == "cancelled"
        else (0 if status in NO_MRR_STATUSES else mrr),
        "currency": _text(raw, "currency_code").upper(),
        "started_at": from_unix(raw.get("started_at"), "started_at")
        or from_unix(raw.get("start_date"), "start_date"),
        "current_period_end": term_end,
        "cancel_at": (cancelled or term_end) if word == "non_renewing" else None,
        "canceled_at": scheduled if word == "non_renewing" else ended,
        "ended_at": ended,
        "created_at": from_unix(raw.get("created_at"), "created_at"),
        "deleted_at": _deleted_at(raw),
    }
    return [Record(Subscription, values)]


def map_invoice(raw: Mapping[str, Any]) -> list[Record]:
    """An invoice -> an Invoice row; payment_due and not_paid are failed payments."""
    word = _status(raw, INVOICE_STATUSES)
    retries = raw.get("dunning_attempts", [])
    if not isinstance(retries, list):
        raise MappingError(f"invoice {raw.get('id')}: dunning_attempts is not a list")
    failed = word in FAILED_INVOICE_STATUSES or bool(retries)
    created = from_unix(raw.get("date"), "date")
    if created is None:
        raise MappingError(f"invoice {raw.get('id')} has no date")
    subscription = raw.get("subscription_id")
    values = {
        "external_id": _text(raw, "id"),
        "account_ref": _text(raw, "customer_id"),
        "subscription_ref": str(subscription) if subscription else None,
        "status": INVOICE_STATUSES[word],
        "amount_due_minor": _whole(raw, "total"),
        "amount_remaining_minor": _whole(raw, "amount_due"),
        "currency": _text(raw, "currency_code").upper(),
        "attempt_count": 1 + len(retries) if failed else 0,
        "due_at": from_unix(raw.get("due_date"), "due_date"),
        "paid_at": from_unix(raw.get("paid_at"), "paid_at"),
        "created_at": created,
        "deleted_at": _deleted_at(raw),
    }
    return [Record(Invoice, values)]


# List entries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entries:
    """How a stream reads list entries that wrap their record under `kind`."""

    kind: str

    def inner(self, entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
        inner = entry.get(self.kind)
        return inner if isinstance(inner, Mapping) else None

    def mapper(self, mapper: Callable[[Mapping[str, Any]], list[Record]]) -> Mapper:
        def mapped(entry: Mapping[str, Any]) -> list[Record]:
            inner = self.inner(entry)
            if inner is None:
                raise MappingError(f"list entry has no {self.kind} object")
            return mapper(inner)

        return mapped

    def key(self, entry: Mapping[str, Any]) -> str:
        return record_id(self.inner(entry) or entry)

    def updated(self, entry: Mapping[str, Any]) -> datetime | None:
        """For the cursor: a malformed `updated_at` is left out, never raised."""
        value = (self.inner(entry) or {}).get("updated_at")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return datetime.fromtimestamp(value, UTC)


def build(
    settings: Settings,
    client: ClientOptions | None = None,
    options: ChargebeeOptions | None = None,
) -> Connector:
    """The Chargebee connector for these settings."""
    cfg = settings.chargebee
    opts = options or ChargebeeOptions()
    if cfg.api_key is None or not (cfg.site or cfg.base_url):
        raise ConfigError(
            "chargebee is not configured: set CHARGEBEE__SITE and CHARGEBEE__API_KEY in .env"
        )
    root = cfg.resolved_base_url()
    http = HttpSource(
        source=SOURCE,
        base_url=root if root.endswith(API_PATH) else root + API_PATH,
        auth=ApiKeyAuth(cfg.api_key),
        credential="the API key",
        settings_hint="CHARGEBEE__API_KEY",
        secrets=(cfg.api_key,),
    )
    limit = max(1, min(cfg.page_size, opts.max_page_size))

    def query(ctx: StartContext) -> dict[str, Any]:
        params: dict[str, Any] = {
            "limit": limit,
            "include_deleted": "true",
            "sort_by[asc]": "updated_at",
        }
        # `after` is strict and stamps are whole seconds: start a second early.
        after = int(ctx.since.timestamp()) - 1 if ctx.since else opts.start_time
        if after is not None:
            params["updated_at[after]"] = after
        return params

    def stream(
        name: str, kind: str, mapper: Callable[[Mapping[str, Any]], list[Record]]
    ) -> StreamSpec:
        entries = _Entries(kind)
        return StreamSpec(
            name=name,
            path=f"/{name}",
            query=query,
            records_key="list",
            paginator=NextOffsetPaginator,
            mapper=entries.mapper(mapper),
            record_key=entries.key,
            cursor_kind=CursorKind.TIMESTAMP,
            cursor=max_timestamp(entries.updated),
        )

    crm_field = cfg.crm_id_field
    streams = (
        stream("customers", "customer", lambda raw: map_customer(raw, crm_field)),
        stream("subscriptions", "subscription", map_subscription),
        stream("invoices", "invoice", map_invoice),
    )
    return Connector(
        source=SOURCE,
        streams=streams,
        open=lambda: HttpClient(http, client),
        secrets=(cfg.api_key,),
    )
