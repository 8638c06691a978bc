"""Stripe webhooks: signed events applied as they happen, so a failed payment is news at once.

Stripe signs every delivery in `Stripe-Signature`: `t=<unix time>,v1=<hex>[,v1=<hex>...]`,
each `v1` the HMAC-SHA256 of `{t}.{raw body}` with the endpoint's signing secret (several
while a secret is being rolled: any may match; `v0` and unknown schemes are ignored). A
delivery whose `t` is more than five minutes from now is refused: Stripe signs each attempt
afresh, so only a replay is that old. The event id (`evt_...`) is the same on every attempt.

The event's object goes through the connector's own `map_event`: invoices (`invoice.*`, so
`invoice.payment_failed` and `invoice.paid`), subscriptions (`customer.subscription.*`) and
customers (`customer.*`). Other events are recorded and change nothing. Since API version
2025-03-31 a subscription names its discounts by id only: with STRIPE__API_KEY set they are
read with their coupons, as the sync does; without it the event leaves the stored MRR as it
was (the next sync computes it) and updates the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from connectors import stripe
from connectors.base import Fetcher, Record
from connectors.errors import MappingError
from connectors.http import ClientOptions
from connectors.webhooks import (
    EventRecords,
    SignedRequest,
    VendorEvent,
    WebhookSource,
    fresh,
    hex_hmac,
    json_body,
    same,
)
from settings import Settings
from store.models import Subscription

__all__ = ["PATH", "VARIABLE", "build", "event_records", "parse", "verify"]

PATH = "/webhooks/stripe"
VARIABLE = "STRIPE__WEBHOOK_SECRET"
SKIPPED_TYPES = frozenset({"invoice.upcoming"})
"""Previews of invoices that do not exist yet (they have no id)."""


def _signature_parts(header: str) -> tuple[str | None, list[str]]:
    """`t` and every `v1` of a `Stripe-Signature` header."""
    stamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            stamp = value
        elif key == "v1" and value:
            signatures.append(value)
    return stamp, signatures


def verify(request: SignedRequest, secret: str, now: datetime) -> bool:
    """True when one `v1` signature of `Stripe-Signature` is this body's, within 5 minutes."""
    header = request.header("stripe-signature")
    if not header:
        return False
    stamp, signatures = _signature_parts(header)
    if stamp is None or not stamp.isdigit() or len(stamp) > 12 or not signatures:
        return False
    if not fresh(int(stamp), now):
        return False
    expected = hex_hmac(secret, stamp.encode() + b"." + request.body)
    return any(same(expected, signature) for signature in signatures)


def parse(body: bytes) -> list[VendorEvent]:
    """A delivery is one event object."""
    event = json_body(body)
    if not isinstance(event, dict) or event.get("object") != "event":
        raise MappingError("the body is not a Stripe event")
    event_id, kind = event.get("id"), event.get("type")
    data = event.get("data")
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str):
        raise MappingError("the event has no id or no type")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise MappingError(f"event {event_id} carries no object")
    return [VendorEvent(event_id, kind, event)]


def _names_discounts_by_id(event: Mapping[str, Any]) -> bool:
    obj = event["data"]["object"]
    discounts = obj.get("discounts") or []
    return obj.get("object") == "subscription" and any(isinstance(d, str) for d in discounts)


def _without_mrr(record: Record) -> Record:
    if record.model is not Subscription:
        return record
    values = {k: v for k, v in record.values.items() if k != "mrr_minor"}
    return Record(record.model, values, record.keys)


def event_records(metadata_key: str) -> EventRecords:
    """The records of one event, mapped as the sync maps the events it reads."""

    def records(event: VendorEvent, fetcher: Fetcher | None) -> Sequence[Record]:
        if event.kind in SKIPPED_TYPES:
            return []
        raw: Mapping[str, Any] = event.payload
        if fetcher is not None and _names_discounts_by_id(raw):
            [raw] = stripe.expand_event_discounts(fetcher, [dict(raw)])
        rows = stripe.map_event(raw, metadata_key)
        if _names_discounts_by_id(raw):  # no coupons to compute MRR with: keep the stored one
            return [_without_mrr(row) for row in rows]
        return rows

    return records


def build(settings: Settings, client: ClientOptions | None = None) -> WebhookSource:
    """Stripe's webhook as configured; the API client only when STRIPE__API_KEY is set."""
    cfg = settings.stripe
    opener = stripe.build(settings, client).open if cfg.enabled() else None
    return WebhookSource(
        source=stripe.SOURCE,
        path=PATH,
        variable=VARIABLE,
        secret=cfg.webhook_secret,
        verify=verify,
        parse=parse,
        records=event_records(cfg.crm_id_metadata_key),
        open=opener,
    )
