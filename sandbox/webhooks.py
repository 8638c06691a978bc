"""The vendors' side of webhooks: events signed the way Stripe, HubSpot and Zendesk sign them.

For the demo and the tests: build an event body, sign it, and post it to the agent's
`/webhooks/<vendor>` routes, exactly as the vendor would.

    body = stripe_event("invoice.payment_failed", invoice)
    httpx.post(f"{agent}/webhooks/stripe", content=body, headers=stripe_headers(body, secret))

- Stripe: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "{t}.{body}">`.
- HubSpot (v3): `X-HubSpot-Signature-v3`: base64 HMAC-SHA256 of method + URI (with HubSpot's
  few percent-encoded characters decoded) + body + `X-HubSpot-Request-Timestamp` (ms).
- Zendesk: `X-Zendesk-Webhook-Signature`: base64 HMAC-SHA256 of the timestamp (ISO-8601, in
  `X-Zendesk-Webhook-Signature-Timestamp`) followed by the body.

Written from the vendors' documentation, independently of the agent's checks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sandbox.stripe_render import DEFAULT_VERSION

__all__ = [
    "hubspot_event",
    "hubspot_headers",
    "stripe_event",
    "stripe_headers",
    "zendesk_event",
    "zendesk_headers",
]

_HUBSPOT_DECODES = ":/?@!$'()*,;"
"""The characters HubSpot decodes in the URI before signing it."""


def _mac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def stripe_event(
    kind: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
    api_version: str = DEFAULT_VERSION,
) -> bytes:
    """The JSON body of a Stripe event of type `kind` carrying `obj`."""
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": api_version,
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }
    return json.dumps(event).encode()


def stripe_headers(
    body: bytes, secret: str, *, timestamp: int | None = None, extra_secrets: tuple[str, ...] = ()
) -> dict[str, str]:
    """`Stripe-Signature` for `body`; one `v1` per secret, as while a secret is rolled."""
    stamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{stamp}.".encode() + body
    v1 = ",".join(f"v1={_mac(s, signed).hex()}" for s in (*extra_secrets, secret))
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={stamp},{v1}"}


def hubspot_event(
    kind: str,
    object_id: int,
    *,
    event_id: int = 1,
    portal_id: int = 62515,
    occurred_at: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One event of a HubSpot webhook batch (a request's body is a JSON list of these)."""
    return {
        "eventId": event_id,
        "subscriptionId": 12345,
        "portalId": portal_id,
        "appId": 54321,
        "occurredAt": int(time.time() * 1000) if occurred_at is None else occurred_at,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM_UI",
        **fields,
    }


def hubspot_headers(
    method: str, uri: str, body: bytes, secret: str, *, timestamp_ms: int | None = None
) -> dict[str, str]:
    """`X-HubSpot-Signature-v3` and its timestamp for a request to `uri`."""
    stamp = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    for character in _HUBSPOT_DECODES:
        encoded = f"%{ord(character):02X}"
        uri = uri.replace(encoded, character).replace(encoded.lower(), character)
    signed = method.upper().encode() + uri.encode() + body + stamp.encode()
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-Version": "v3",
        "X-HubSpot-Signature-v3": base64.b64encode(_mac(secret, signed)).decode(),
        "X-HubSpot-Request-Timestamp": stamp,
    }


def zendesk_event(
    kind: str, detail: dict[str, Any], *, event_id: str | None = None, **extra: Any
) -> bytes:
    """The JSON body of a Zendesk event (`zen:event-type:...`) about `detail`."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "type": kind,
        "account_id": 10973248,
        "id": event_id or str(uuid.uuid4()),
        "time": now,
        "zendesk_event_version": "2022-11-06",
        "subject": f"zen:ticket:{detail.get('id')}",
        "detail": detail,
        "event": {},
        **extra,
    }
    return json.dumps(event).encode()


def zendesk_headers(body: bytes, secret: str, *, timestamp: str | None = None) -> dict[str, str]:
    """`X-Zendesk-Webhook-Signature` and its timestamp for `body`."""
    stamp = timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = base64.b64encode(_mac(secret, stamp.encode() + body)).decode()
    return {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Id": "01GK8E6BKWMJZD2T8Y5AXJQMG5",
        "X-Zendesk-Webhook-Signature": signature,
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }
