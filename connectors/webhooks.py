"""Vendor webhooks: what each vendor's webhook module declares, and what a delivery does.

Each vendor's webhook module (`<vendor>_webhook.py`, beside its connector) declares a
`WebhookSource`: the path it is received at, the setting holding its secret, how a
request's signature is checked (`verify`, on the raw bytes, before anything in the body is
read), how a verified body splits into events with their ids (`parse`), and how one event
becomes canonical records (`records`, through the connector's own mappers; with the
vendor's API client, when that connector is configured, for events that only name what
changed).

`webhook_sources(settings)` lists every vendor's webhook, configured or not. Then, for
any vendor:

- `record_new` inserts one `WebhookEvent` row per event (`ON CONFLICT DO NOTHING` on source
  and event id) and returns the events that were new: a delivery seen before changes
  nothing, however often it comes and on however many instances, unless its processing
  failed here: the vendor's retry of it is then processed again, once.
- `apply_events` upserts each new event's records, resolves identities as a sync does,
  and stamps each event with its account and `processed_at`, or with the error. An event
  that cannot be mapped goes to quarantine with the reason (stream `webhooks`), never
  dropped silently; the next sync of the source brings the store up to date either way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from connectors.base import Fetcher, Record, table_of, validate_record
from connectors.errors import MappingError, SyncError, scrub
from connectors.http import ClientOptions
from connectors.identity import resolve_identities
from connectors.trait_records import PendingTrait, is_trait_record, write_trait_records
from settings import Settings
from store.db import session_scope
from store.models import Account, QuarantinedRecord, WebhookEvent
from store.upsert import bulk_upsert

__all__ = [
    "QUARANTINE_STREAM",
    "TOLERANCE",
    "Applied",
    "EventRecords",
    "SignedRequest",
    "VendorEvent",
    "WebhookSource",
    "apply_events",
    "base64_hmac",
    "fresh",
    "hex_hmac",
    "json_body",
    "record_new",
    "same",
    "webhook_sources",
]

log = logging.getLogger(__name__)

TOLERANCE = timedelta(minutes=5)
"""A signature whose timestamp is further than this from now is refused (a replay)."""
QUARANTINE_STREAM = "webhooks"


@dataclass(frozen=True)
class SignedRequest:
    """A webhook request as it arrived: nothing in it is trusted until `verify` says so."""

    method: str
    uri: str
    """The full URI the vendor called: scheme, host, path and query, percent-encoded as sent."""
    headers: Mapping[str, str]
    """Header names in lower case."""
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class VendorEvent:
    """One event of a verified delivery: its id (unique per source), its kind, its payload."""

    event_id: str
    kind: str
    payload: Mapping[str, Any]


Verify = Callable[[SignedRequest, str, datetime], bool]
"""(request, secret, now) -> whether the vendor signed exactly this request, recently."""
Parse = Callable[[bytes], list[VendorEvent]]
"""A verified body -> its events; raises MappingError when the body is not the vendor's."""
EventRecords = Callable[[VendorEvent, Fetcher | None], Sequence[Record]]
"""An event -> the canonical records it carries, read with the API client when there is one;
`()` when the event changes nothing the agent keeps (or waits for the next sync)."""


@dataclass(frozen=True)
class WebhookSource:
    """One vendor's webhook, as its connector module declares it."""

    source: str
    path: str
    variable: str
    """The setting holding the secret, named in messages (never its value)."""
    secret: SecretStr | None
    verify: Verify
    parse: Parse
    records: EventRecords
    open: Callable[[], Fetcher] | None = None
    """The vendor's API client, when its connector is configured."""

    def configured(self) -> bool:
        return self.secret is not None and bool(self.secret.get_secret_value().strip())

    def verified(self, request: SignedRequest, now: datetime) -> bool:
        """True when the configured secret signed this request within the tolerance."""
        if self.secret is None or not self.configured():
            return False
        try:
            return self.verify(request, self.secret.get_secret_value().strip(), now)
        except (ValueError, TypeError, UnicodeError):  # headers of the wrong shape
            return False

    def secret_values(self) -> list[str]:
        return [self.secret.get_secret_value()] if self.configured() and self.secret else []


WebhookFactory = Callable[[Settings, ClientOptions | None], WebhookSource]


def webhook_sources(settings: Settings, client: ClientOptions | None = None) -> list[WebhookSource]:
    """Every vendor's webhook as configured (or not), in a fixed order."""
    # imported here, not at the top: the vendor modules build on the contract above
    from connectors import hubspot_webhook, stripe_webhook, zendesk_webhook

    factories: tuple[WebhookFactory, ...] = (
        stripe_webhook.build,
        hubspot_webhook.build,
        zendesk_webhook.build,
    )
    return [build(settings, client) for build in factories]


# Signature helpers ---------------------------------------------------------------------------


def hex_hmac(secret: str, message: bytes) -> str:
    """HMAC-SHA256 of `message` with `secret`, as lower-case hex."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def base64_hmac(secret: str, message: bytes) -> str:
    """HMAC-SHA256 of `message` with `secret`, base64-encoded."""
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def same(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a computed signature with the one sent."""
    return given is not None and hmac.compare_digest(expected.encode(), given.strip().encode())


def json_body(body: bytes) -> Any:
    """The verified body, parsed; a `MappingError` when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MappingError("the body is not JSON") from exc


def fresh(signed_at: float, now: datetime, tolerance: timedelta = TOLERANCE) -> bool:
    """True when the signature's Unix time is within `tolerance` of now, either way."""
    return abs(now.timestamp() - signed_at) <= tolerance.total_seconds()


# Deliveries in the store ---------------------------------------------------------------------


def record_new(
    engine: Engine, source: str, events: Sequence[VendorEvent], now: datetime
) -> list[VendorEvent]:
    """Record the events; returns those to process (in the delivery's order): the ones not
    recorded before, and the ones whose processing failed before (the vendor's retry of a
    delivery that failed here is processed again; the writes are idempotent upserts). An
    event being processed or processed already is never returned twice."""
    unique = list({e.event_id: e for e in events}.values())
    if not unique:
        return []
    rows = [
        {"source": source, "event_id": e.event_id, "kind": e.kind[:200], "received_at": now}
        for e in unique
    ]
    table = table_of(WebhookEvent)
    with session_scope(engine) as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(table)
            .on_conflict_do_nothing(index_elements=["source", "event_id"])
            .returning(table.c.event_id)
        )
        result = session.connection().execute(stmt, rows)
        new = {str(event_id) for event_id in result.scalars().all()}
        failed = [e.event_id for e in unique if e.event_id not in new]
        if failed:
            retry = (
                update(table)
                .where(
                    table.c.source == source,
                    table.c.event_id.in_(failed),
                    table.c.processed_at.is_(None),
                    table.c.error.is_not(None),
                )
                .values(error=None, received_at=now)
                .returning(table.c.event_id)
            )
            new |= {str(event_id) for event_id in session.connection().execute(retry).scalars()}
    return [e for e in unique if e.event_id in new]


@dataclass(frozen=True)
class Applied:
    """What one new event did to the store."""

    event: VendorEvent
    records: int
    account_ids: frozenset[int]
    error: str | None = None


def _stamped(source: str, record: Record) -> Record:
    if "source" in record.values or "source" not in table_of(record.model).columns:
        return record
    return Record(record.model, {"source": source, **record.values}, record.keys)


def _upsert(session: Session, records: Sequence[Record]) -> None:
    """One bulk upsert per model, key and set of columns; the last state of a key wins."""
    groups: dict[tuple[Any, ...], dict[tuple[Any, ...], Mapping[str, Any]]] = {}
    for rec in records:
        shape = (rec.model, rec.keys, tuple(sorted(rec.values)))
        groups.setdefault(shape, {})[tuple(rec.values[k] for k in rec.keys)] = rec.values
    for (model, keys, _), rows in groups.items():
        bulk_upsert(session, model, list(rows.values()), keys=keys)


def _account_of(session: Session, record: Record) -> int | None:
    """The account a stored record belongs to now (an account is its own)."""
    table = table_of(record.model)
    column = table.c.id if record.model is Account else table.c.get("account_id")
    if column is None:
        return None
    where = [table.c[k] == record.values[k] for k in record.keys]
    found = session.execute(select(column).where(*where)).scalar_one_or_none()
    return int(found) if found is not None else None


def _quarantine(
    session: Session, source: str, event: VendorEvent, reason: str, now: datetime
) -> None:
    row = {
        "source": source,
        "stream": QUARANTINE_STREAM,
        "record_key": event.event_id,
        "payload": dict(event.payload),
        "reason": reason[:1000],
        "created_at": now,
        "resolved_at": None,
    }
    bulk_upsert(session, QuarantinedRecord, [row], keys=("source", "stream", "record_key"))


def _mapped(hook: WebhookSource, event: VendorEvent, fetcher: Fetcher | None) -> list[Record]:
    records = [_stamped(hook.source, r) for r in hook.records(event, fetcher)]
    for record in records:
        if not is_trait_record(record):  # trait values are checked as they are written
            validate_record(record)
    return records


_SHAPE_ERRORS = (MappingError, LookupError, TypeError, ValueError, AttributeError)


@contextmanager
def _client(hook: WebhookSource) -> Iterator[Fetcher | None]:
    fetcher = hook.open() if hook.open is not None else None
    try:
        yield fetcher
    finally:
        if fetcher is not None:
            fetcher.close()


def _mark(session: Session, source: str, event_id: str, **values: Any) -> None:
    """Note an event's outcome on its row: `processed_at` and `account_id`, or `error`."""
    table = table_of(WebhookEvent)
    session.execute(
        update(table).where(table.c.source == source, table.c.event_id == event_id).values(**values)
    )


def apply_events(
    engine: Engine,
    hook: WebhookSource,
    events: Sequence[VendorEvent],
    now: datetime,
    secrets: Sequence[str] = (),
) -> list[Applied]:
    """Write the events' records and link them to accounts; one outcome per event.

    Records are mapped first (reading from the vendor's API where an event needs it), then
    written and matched in one transaction. A mapping failure quarantines that event; an
    API failure leaves it to the next sync; both are noted on the event row, scrubbed of
    `secrets`.
    """
    hidden = [*secrets, *hook.secret_values()]
    mapped: list[tuple[VendorEvent, list[Record]]] = []
    failed: list[Applied] = []
    quarantined: list[tuple[VendorEvent, str]] = []
    with _client(hook) as fetcher:
        for event in events:
            try:
                mapped.append((event, _mapped(hook, event, fetcher)))
            except _SHAPE_ERRORS as exc:
                reason = scrub(str(exc) if isinstance(exc, MappingError) else repr(exc), hidden)
                quarantined.append((event, reason))
                failed.append(Applied(event, 0, frozenset(), f"quarantined: {reason}"))
            except SyncError as exc:
                reason = scrub(str(exc), hidden)
                failed.append(Applied(event, 0, frozenset(), f"left to the next sync: {reason}"))
    applied: list[Applied] = []
    traits = [
        PendingTrait(event.event_id, dict(event.payload), r)
        for event, records in mapped
        for r in records
        if is_trait_record(r)
    ]
    mapped = [(event, [r for r in records if not is_trait_record(r)]) for event, records in mapped]
    with session_scope(engine) as session:
        _upsert(session, [r for _, records in mapped for r in records])
        if traits:  # after their accounts, which the same events carry
            write_trait_records(session, traits, now)
        for event, reason in quarantined:
            _quarantine(session, hook.source, event, reason, now)
        if any(records for _, records in mapped):
            resolve_identities(session, now)
        for event, records in mapped:
            accounts = frozenset(a for r in records if (a := _account_of(session, r)) is not None)
            first = min(accounts) if accounts else None
            _mark(session, hook.source, event.event_id, processed_at=now, account_id=first)
            applied.append(Applied(event, len(records), accounts))
        for outcome in failed:
            _mark(session, hook.source, outcome.event.event_id, error=outcome.error)
    for outcome in failed:
        log.warning("%s webhook %s: %s", hook.source, outcome.event.event_id, outcome.error)
    return [*applied, *failed]
