"""Stripe objects of the book in the JSON shape of a given API version.

Two shapes matter. Before `2025-03-31`, `current_period_start/end` sit on the subscription,
the invoice names its subscription in `subscription` and has `paid`, and subscriptions,
invoices and customers carry the legacy single `discount`. From `2025-03-31` (basil) the
periods live on each subscription item, the invoice's subscription is under
`parent.subscription_details.subscription`, and `discount` and `paid` are gone; `discounts`
is a list of ids unless expanded. Events render `data.object` in the requested version.
"""

from __future__ import annotations

from typing import Any, Final

from sandbox.emulator import unix
from sandbox.records import Book, Customer, Event, Invoice, Price, Subscription

__all__ = ["DEFAULT_VERSION", "NEW_SHAPES_FROM", "StripeRenderer", "uses_new_shapes"]

NEW_SHAPES_FROM: Final = "2025-03-31"
DEFAULT_VERSION: Final = "2024-06-20"


def uses_new_shapes(version: str) -> bool:
    """Whether `version` (e.g. `2025-03-31.basil`) has the item-level billing periods."""
    return version[:10] >= NEW_SHAPES_FROM


class StripeRenderer:
    """Renders the book's Stripe records; `expand` holds paths without the `data.` prefix."""

    def __init__(self, book: Book) -> None:
        self.prices = {p.id: p for p in book.prices}
        self.coupons = {c.id: c for c in book.coupons}
        self.customers = {c.id: c for c in book.customers}
        self.subscriptions = {s.id: s for s in book.subscriptions}
        self.invoices = {i.id: i for i in book.invoices}
        self.currencies = {
            s.customer_id: self.prices[s.price_id].currency for s in book.subscriptions
        }

    def price(self, p: Price) -> dict[str, Any]:
        return {
            "id": p.id, "object": "price", "active": True, "billing_scheme": "per_unit",
            "created": unix(p.created), "currency": p.currency, "custom_unit_amount": None,
            "livemode": False, "lookup_key": None, "metadata": {},
            "nickname": f"{p.product_name} per seat, {p.interval}ly", "product": p.product_id,
            "recurring": {"aggregate_usage": None, "interval": p.interval, "interval_count": 1,
                          "meter": None, "trial_period_days": None, "usage_type": "licensed"},
            "tax_behavior": "unspecified", "tiers_mode": None, "transform_quantity": None,
            "type": "recurring", "unit_amount": p.unit_amount,
            "unit_amount_decimal": str(p.unit_amount),
        }  # fmt: skip

    def customer(self, c: Customer, version: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": c.id, "object": "customer", "address": None, "balance": 0,
            "created": unix(c.created), "currency": self.currencies.get(c.id, "usd"),
            "default_source": None,
            "delinquent": c.delinquent, "description": None, "email": c.email,
            "invoice_prefix": c.id[4:12].upper(), "livemode": False, "name": c.name,
            "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                                 "footer": None, "rendering_options": None},
            "metadata": {"crm_account_id": c.crm_account_id} if c.crm_account_id else {},
            "next_invoice_sequence": 1, "phone": None, "preferred_locales": [],
            "shipping": None, "tax_exempt": "none", "test_clock": None,
        }  # fmt: skip
        if not uses_new_shapes(version):
            body["discount"] = None
        return body

    def discount(self, s: Subscription) -> dict[str, Any] | None:
        if s.discount_id is None or s.coupon_id is None:
            return None
        coupon = self.coupons[s.coupon_id]
        return {
            "id": s.discount_id, "object": "discount", "checkout_session": None,
            "coupon": {"id": coupon.id, "object": "coupon", "amount_off": None,
                       "created": unix(coupon.created), "currency": None, "duration": "forever",
                       "duration_in_months": None, "livemode": False, "max_redemptions": None,
                       "metadata": {}, "name": coupon.name, "percent_off": coupon.percent_off,
                       "redeem_by": None, "times_redeemed": 1, "valid": True},
            "customer": s.customer_id, "end": None, "invoice": None, "invoice_item": None,
            "promotion_code": None, "start": unix(s.start_date), "subscription": s.id,
            "subscription_item": None,
        }  # fmt: skip

    def _discounts(self, s: Subscription, expand: set[str]) -> list[Any]:
        discount = self.discount(s)
        if discount is None:
            return []
        return [discount] if "discounts" in expand else [discount["id"]]

    def subscription(self, s: Subscription, version: str, expand: set[str]) -> dict[str, Any]:
        new = uses_new_shapes(version)
        periods = {"current_period_start": unix(s.current_period_start),
                   "current_period_end": unix(s.current_period_end)}  # fmt: skip
        item: dict[str, Any] = {
            "id": s.item_id, "object": "subscription_item", "billing_thresholds": None,
            "created": unix(s.created), "discounts": [], "metadata": {},
            "price": self.price(self.prices[s.price_id]), "quantity": s.quantity,
            "subscription": s.id, "tax_rates": [],
        }  # fmt: skip
        customer: Any = s.customer_id
        if "customer" in expand:
            customer = self.customer(self.customers[s.customer_id], version)
        body: dict[str, Any] = {
            "id": s.id, "object": "subscription", "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"enabled": False, "liability": None},
            "billing_cycle_anchor": unix(s.billing_cycle_anchor), "billing_thresholds": None,
            "cancel_at": None, "cancel_at_period_end": False,
            "canceled_at": unix(s.canceled_at) if s.canceled_at else None,
            "cancellation_details": {
                "comment": None, "feedback": None,
                "reason": "cancellation_requested" if s.canceled_at else None,
            },
            "collection_method": "charge_automatically", "created": unix(s.created),
            "currency": self.prices[s.price_id].currency, "customer": customer,
            "days_until_due": None,
            "default_payment_method": None, "default_source": None, "default_tax_rates": [],
            "description": None, "discounts": self._discounts(s, expand),
            "ended_at": unix(s.ended_at) if s.ended_at else None,
            "items": {"object": "list", "data": [item], "has_more": False, "total_count": 1,
                      "url": f"/v1/subscription_items?subscription={s.id}"},
            "latest_invoice": s.latest_invoice_id, "livemode": False, "metadata": {},
            "next_pending_invoice_item_invoice": None, "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                                 "save_default_payment_method": "off"},
            "pending_invoice_item_interval": None, "pending_setup_intent": None,
            "pending_update": None, "schedule": None, "start_date": unix(s.start_date),
            "status": s.status, "test_clock": None, "transfer_data": None,
            "trial_end": unix(s.trial_end) if s.trial_end else None,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": unix(s.trial_start) if s.trial_start else None,
        }  # fmt: skip
        if new:
            item.update(periods)
        else:
            body.update(periods)
            body["discount"] = self.discount(s)
        return body

    def invoice(self, i: Invoice, version: str, expand: set[str]) -> dict[str, Any]:
        new = uses_new_shapes(version)
        sub = self.subscriptions[i.subscription_id]
        discount = self.discount(sub) if i.discount_amount else None
        cust = self.customers[i.customer_id]
        period = {"start": unix(i.period_start), "end": unix(i.period_end)}
        unit = str(self.prices[i.price_id].unit_amount)
        line: dict[str, Any] = {
            "id": f"il_{i.id[3:]}", "object": "line_item", "amount": i.subtotal,
            "amount_excluding_tax": i.subtotal, "currency": self.prices[i.price_id].currency,
            "description": f"{i.quantity} seat x {self.prices[i.price_id].product_name}",
            "discount_amounts": [{"amount": i.discount_amount, "discount": discount["id"]}]
            if discount else [],
            "discountable": True, "discounts": [], "invoice": i.id, "livemode": False,
            "metadata": {}, "period": period, "quantity": i.quantity, "tax_amounts": [],
            "tax_rates": [],
        }  # fmt: skip
        if new:
            line["parent"] = {"type": "subscription_item_details", "invoice_item_details": None,
                              "subscription_item_details": {
                                  "invoice_item": None, "proration": False,
                                  "proration_details": {"credited_items": None},
                                  "subscription": i.subscription_id,
                                  "subscription_item": i.subscription_item_id}}  # fmt: skip
            details = {"price": i.price_id, "product": self.prices[i.price_id].product_id}
            line["pricing"] = {"type": "price_details", "unit_amount_decimal": unit,
                               "price_details": details}  # fmt: skip
        else:
            line.update({"price": self.price(self.prices[i.price_id]), "proration": False,
                         "proration_details": {"credited_items": None}, "type": "subscription",
                         "subscription": i.subscription_id,
                         "subscription_item": i.subscription_item_id,
                         "unit_amount_excluding_tax": unit})  # fmt: skip
        paid_at = unix(i.paid_at) if i.paid_at else None
        retry_at = unix(i.next_payment_attempt) if i.next_payment_attempt else None
        body: dict[str, Any] = {
            "id": i.id, "object": "invoice", "account_country": "US",
            "account_name": "Sandbox Software Inc.", "account_tax_ids": None,
            "amount_due": i.total, "amount_paid": i.amount_paid,
            "amount_remaining": i.amount_remaining, "amount_shipping": 0, "application": None,
            "attempt_count": i.attempt_count, "attempted": i.attempt_count > 0,
            "auto_advance": i.status == "open",
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_reason": i.billing_reason, "collection_method": "charge_automatically",
            "created": unix(i.created), "currency": self.prices[i.price_id].currency,
            "custom_fields": None,
            "customer": self.customer(cust, version) if "customer" in expand else cust.id,
            "customer_address": None, "customer_email": cust.email, "customer_name": cust.name,
            "customer_phone": None, "customer_shipping": None, "customer_tax_exempt": "none",
            "customer_tax_ids": [], "default_payment_method": None, "default_source": None,
            "default_tax_rates": [], "description": None,
            "discounts": ([discount] if "discounts" in expand else [discount["id"]])
            if discount else [],
            "due_date": None, "ending_balance": 0, "footer": None, "from_invoice": None,
            "hosted_invoice_url": None, "invoice_pdf": None, "last_finalization_error": None,
            "latest_revision": None,
            "lines": {"object": "list", "data": [line], "has_more": False, "total_count": 1,
                      "url": f"/v1/invoices/{i.id}/lines"},
            "livemode": False, "metadata": {},
            "next_payment_attempt": retry_at,
            "number": i.number, "on_behalf_of": None,
            "payment_settings": {"default_mandate": None, "payment_method_options": None,
                                 "payment_method_types": None},
            "period_end": unix(i.period_end), "period_start": unix(i.period_start),
            "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
            "quote": None, "receipt_number": None, "shipping_cost": None,
            "shipping_details": None, "starting_balance": 0, "statement_descriptor": None,
            "status": i.status,
            "status_transitions": {"finalized_at": unix(i.finalized_at),
                                   "marked_uncollectible_at": None, "paid_at": paid_at,
                                   "voided_at": None},
            "subtotal": i.subtotal, "subtotal_excluding_tax": i.subtotal, "test_clock": None,
            "total": i.total,
            "total_discount_amounts": [{"amount": i.discount_amount, "discount": discount["id"]}]
            if discount else [],
            "total_excluding_tax": i.total, "total_tax_amounts": [], "transfer_data": None,
            "webhooks_delivered_at": unix(i.finalized_at),
        }  # fmt: skip
        if new:
            parent: dict[str, Any] = {"metadata": {}, "subscription": i.subscription_id}
            body["parent"] = {"type": "subscription_details", "quote_details": None,
                              "subscription_details": parent}  # fmt: skip
        else:
            body.update({"subscription": i.subscription_id, "paid": i.status == "paid",
                         "paid_out_of_band": False, "charge": None, "payment_intent": None,
                         "discount": discount, "tax": None})  # fmt: skip
        return body

    def event(self, e: Event, version: str) -> dict[str, Any]:
        if e.object_type == "customer":
            obj = self.customer(self.customers[e.object_id], version)
        elif e.object_type == "subscription":
            obj = self.subscription(self.subscriptions[e.object_id], version, set())
        else:
            obj = self.invoice(self.invoices[e.object_id], version, set())
        data: dict[str, Any] = {"object": obj}
        if e.previous_attributes:
            data["previous_attributes"] = dict(e.previous_attributes)
        return {
            "id": e.id, "object": "event", "api_version": version, "created": unix(e.created),
            "data": data, "livemode": False, "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None}, "type": e.type,
        }  # fmt: skip
