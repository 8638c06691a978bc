"""Zendesk webhooks: ticket events applied at once, through the connector's ticket mapper.

Zendesk signs each request in `X-Zendesk-Webhook-Signature`: the base64 HMAC-SHA256, with
the webhook's signing secret, of `X-Zendesk-Webhook-Signature-Timestamp` (ISO-8601) followed
directly by the raw body. Requests signed more than five minutes from now are refused.

Deliveries are Zendesk's event payloads (`{"type": "zen:event-type:ticket.status_changed",
"id": ..., "time": ..., "detail": {ticket}, "event": {...}}`); the event `id` is unique and
the same on every retry. Ticket events carry the ticket in `detail` (ids as strings, status
and priority in capitals); it is mapped by the connector's `map_ticket`. What `detail` does
not carry is left as stored: the satisfaction rating always, the subject, priority and
organization when absent. `ticket.soft_deleted` and `ticket.permanently_deleted` soft-delete
the ticket. Other events (users, organizations) are recorded and wait for the next sync.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from connectors import zendesk
from connectors.base import Fetcher, Record, parse_iso
from connectors.errors import MappingError
from connectors.http import ClientOptions
from connectors.webhooks import (
    SignedRequest,
    VendorEvent,
    WebhookSource,
    base64_hmac,
    fresh,
    json_body,
    same,
)
from settings import Settings

__all__ = ["PATH", "VARIABLE", "build", "parse", "ticket_records", "verify"]

PATH = "/webhooks/zendesk"
VARIABLE = "ZENDESK__WEBHOOK_SECRET"
TICKET_EVENT = "zen:event-type:ticket."
DELETED = frozenset({"soft_deleted", "permanently_deleted"})
NO_ORGANIZATION = frozenset({"", "0"})


def verify(request: SignedRequest, secret: str, now: datetime) -> bool:
    """True when `X-Zendesk-Webhook-Signature` signs this body, within 5 minutes."""
    signature = request.header("x-zendesk-webhook-signature")
    stamp = request.header("x-zendesk-webhook-signature-timestamp")
    if not signature or not stamp:
        return False
    try:
        signed_at = parse_iso(stamp.strip())
    except MappingError:
        return False
    if signed_at is None or not fresh(signed_at.timestamp(), now):
        return False
    return same(base64_hmac(secret, stamp.encode() + request.body), signature)


def parse(body: bytes) -> list[VendorEvent]:
    """A delivery is one event object."""
    event = json_body(body)
    if not isinstance(event, dict):
        raise MappingError("the body is not a Zendesk event")
    event_id, kind = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str):
        raise MappingError("the event has no id or no type")
    return [VendorEvent(event_id, kind, event)]


def _lower(value: object) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def ticket_records(event: VendorEvent, _fetcher: Fetcher | None = None) -> Sequence[Record]:
    """The ticket of a ticket event, as `map_ticket` maps it; nothing for other events."""
    if not event.kind.startswith(TICKET_EVENT):
        return []
    detail = event.payload.get("detail")
    if not isinstance(detail, dict) or detail.get("id") in (None, ""):
        raise MappingError(f"{event.kind} without a ticket in detail")
    change = event.kind.removeprefix(TICKET_EVENT)
    org = detail.get("organization_id")
    raw: dict[str, Any] = {
        "id": detail["id"],
        "status": "deleted" if change in DELETED else _lower(detail.get("status")),
        "priority": _lower(detail.get("priority")),
        "subject": detail.get("subject"),
        "organization_id": None if org is None or str(org) in NO_ORGANIZATION else org,
        "created_at": detail.get("created_at"),
        "updated_at": detail.get("updated_at") or event.payload.get("time"),
    }
    kept = {"satisfaction"} | {
        column
        for column, field in (
            ("subject", "subject"),
            ("priority", "priority"),
            ("account_ref", "organization_id"),
        )
        if field not in detail
    }
    return [
        Record(r.model, {k: v for k, v in r.values.items() if k not in kept}, r.keys)
        for r in zendesk.map_ticket(raw)
    ]


def build(settings: Settings, client: ClientOptions | None = None) -> WebhookSource:
    """Zendesk's webhook as configured (it reads nothing from the API)."""
    return WebhookSource(
        source=zendesk.SOURCE,
        path=PATH,
        variable=VARIABLE,
        secret=settings.zendesk.webhook_secret,
        verify=verify,
        parse=parse,
        records=ticket_records,
    )
