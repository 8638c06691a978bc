"""HubSpot webhooks: a company changed, so read it again now rather than at the next sync.

HubSpot signs each request (v3) in `X-HubSpot-Signature-v3`: the base64 HMAC-SHA256, with
the app's client secret, of the method, the full request URI, the raw body and the
`X-HubSpot-Request-Timestamp` header (Unix milliseconds), concatenated. Before signing,
HubSpot decodes these percent-encoded characters of the URI: `%3A : %2F / %3F ? %40 @ %21 !
%24 $ %27 ' %28 ( %29 ) %2A * %2C , %3B ;` (`signed_uri` does the same). Requests whose
timestamp is more than five minutes from now are refused.

A request carries a batch of up to 100 events. HubSpot says an `eventId` alone is not
guaranteed unique, so an event's id here joins the portal, the subscription, the object, the
event id and its time: every retry of one notification has the same, other notifications
do not. Company events (`company.creation`, `company.propertyChange`, `company.restore`,
and the generic `object.*` ones for object type `0-2`) read the company again with the
connector's own mapper (its configured properties and field mappings) when HUBSPOT__TOKEN
is set; without it, and for every other event, nothing is read now: the company's
`hs_lastmodifieddate` moved, so the next incremental sync brings the change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors import hubspot
from connectors.base import Connector, Fetcher, Mapper, Record, Request, StartContext
from connectors.errors import MappingError
from connectors.http import ClientOptions
from connectors.webhooks import (
    EventRecords,
    SignedRequest,
    VendorEvent,
    WebhookSource,
    base64_hmac,
    fresh,
    json_body,
    same,
)
from settings import Settings

__all__ = ["PATH", "VARIABLE", "build", "event_records", "parse", "signed_uri", "verify"]

PATH = "/webhooks/hubspot"
VARIABLE = "HUBSPOT__WEBHOOK_SECRET"
COMPANY_OBJECT_TYPE = "0-2"
REREAD_CHANGES = frozenset({"creation", "propertyChange", "restore"})
"""Changes after which the company is read again; deletions and merges wait for the sync."""
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ENCODED = re.compile("|".join(_DECODED), re.IGNORECASE)


def signed_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the listed percent-encoded characters decoded."""
    return _ENCODED.sub(lambda found: _DECODED[found.group(0).upper()], uri)


def verify(request: SignedRequest, secret: str, now: datetime) -> bool:
    """True when `X-HubSpot-Signature-v3` signs this request, made within 5 minutes."""
    signature = request.header("x-hubspot-signature-v3")
    stamp = request.header("x-hubspot-request-timestamp")
    if not signature or not stamp or not stamp.isdigit() or len(stamp) > 15:
        return False
    if not fresh(int(stamp) / 1000, now):
        return False
    uri = signed_uri(request.uri)
    message = request.method.upper().encode() + uri.encode() + request.body + stamp.encode()
    return same(base64_hmac(secret, message), signature)


def _event_id(raw: Mapping[str, Any]) -> str:
    parts = ("portalId", "subscriptionId", "objectId", "eventId", "occurredAt")
    return ":".join(str(raw.get(part, "")) for part in parts)


def parse(body: bytes) -> list[VendorEvent]:
    """A delivery is a JSON array of events."""
    batch = json_body(body)
    if not isinstance(batch, list):
        raise MappingError("the body is not a list of HubSpot events")
    events = []
    for raw in batch:
        if not isinstance(raw, dict) or raw.get("eventId") is None:
            raise MappingError("an event of the batch has no eventId")
        kind = raw.get("subscriptionType")
        if not isinstance(kind, str) or raw.get("objectId") is None:
            raise MappingError(f"event {raw['eventId']} has no subscriptionType or objectId")
        events.append(VendorEvent(_event_id(raw), kind, raw))
    return events


def _company_change(event: VendorEvent) -> str | None:
    """The change a company event reports (`propertyChange`...), or None for other objects."""
    thing, _, change = event.kind.partition(".")
    if thing == "company":
        return change
    if thing == "object" and str(event.payload.get("objectTypeId")) == COMPANY_OBJECT_TYPE:
        return change
    return None


def event_records(mapper: Mapper, properties: Sequence[str]) -> EventRecords:
    """The company of a company event, read again and mapped as the sync maps it."""

    def records(event: VendorEvent, fetcher: Fetcher | None) -> Sequence[Record]:
        if fetcher is None or _company_change(event) not in REREAD_CHANGES:
            return []
        company = str(event.payload["objectId"])
        if not company.isdigit():
            raise MappingError(f"company id {company!r} is not a HubSpot id")
        params = {"properties": ",".join(properties)}
        raw = fetcher.fetch(Request("GET", f"/crm/v3/objects/companies/{company}", params))
        return mapper(raw)

    return records


def _companies(connector: Connector) -> tuple[Mapper, list[str]]:
    """The companies stream's mapper and the properties it asks for."""
    spec = connector.stream("companies")
    first = spec.first_request(StartContext(None, None, datetime.now(UTC), {}))
    body = first.json if first is not None else None
    properties = list(body.get("properties") or []) if body else list(hubspot.COMPANY_PROPERTIES)
    return spec.mapper, properties


def build(settings: Settings, client: ClientOptions | None = None) -> WebhookSource:
    """HubSpot's webhook as configured; companies are read again only with HUBSPOT__TOKEN."""
    cfg = settings.hubspot
    if cfg.enabled():
        connector = hubspot.build(settings, client)
        mapper, properties = _companies(connector)
        records, opener = event_records(mapper, properties), connector.open
    else:
        records, opener = event_records(hubspot.map_company, hubspot.COMPANY_PROPERTIES), None
    return WebhookSource(
        source=hubspot.SOURCE,
        path=PATH,
        variable=VARIABLE,
        secret=cfg.webhook_secret,
        verify=verify,
        parse=parse,
        records=records,
        open=opener,
    )
