"""What a connector declares: its streams, each a frozen `StreamSpec`, and how to open a client.

A stream says where its records live (path, method, records key), how it pages (a paginator
factory), where it starts from (a query built from the committed cursor, handed over as a
`StartContext`), what its cursor is after a page, and one pure mapper from a raw vendor
record to canonical `Record`s. A stream that can list every live record of a model declares
it with `Reconcile`: the engine then soft-deletes, on the source's `ReconcilePolicy` cadence,
the rows such a complete listing no longer shows. The fetch loop that runs these
declarations is `sync.py`.

The small value helpers at the bottom are shared by the vendor mappers; they raise
`MappingError`, so a malformed value sends its record to quarantine.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import SecretStr
from sqlalchemy import Table
from sqlmodel import Session, SQLModel

from connectors.errors import MappingError
from settings import ConfigError, SourceConfig
from store.upsert import table_of

if TYPE_CHECKING:
    from connectors.paginators import Paginator

__all__ = [
    "Connector",
    "CursorKind",
    "Fetcher",
    "Mapper",
    "Page",
    "Reconcile",
    "ReconcilePolicy",
    "Record",
    "Request",
    "StartContext",
    "StreamSpec",
    "email_domain",
    "from_unix",
    "max_timestamp",
    "normalise_domain",
    "parse_iso",
    "record_id",
    "table_of",
    "to_minor",
    "validate_record",
]

Json = dict[str, Any]


@dataclass(frozen=True)
class Request:
    """One request to a vendor: query parameters for GET, a JSON body for POST."""

    method: Literal["GET", "POST"]
    path: str
    params: Mapping[str, str | int] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None

    def with_params(self, set_: Mapping[str, str | int], drop: Sequence[str] = ()) -> Request:
        params = {k: v for k, v in self.params.items() if k not in drop}
        params.update(set_)
        return Request(self.method, self.path, params, self.json)

    def with_json(self, set_: Mapping[str, Any], drop: Sequence[str] = ()) -> Request:
        body = {k: v for k, v in (self.json or {}).items() if k not in drop}
        body.update(set_)
        return Request(self.method, self.path, self.params, body)


class Fetcher(Protocol):
    """Sends a `Request` and returns the decoded JSON object (HTTP client, file reader)."""

    def fetch(self, request: Request) -> Json: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Record:
    """One canonical row: the store model it belongs to and its column values."""

    model: type[SQLModel]
    values: Mapping[str, Any]
    keys: tuple[str, ...] = ("source", "external_id")


Mapper = Callable[[Mapping[str, Any]], Sequence[Record]]
"""A pure function from one raw vendor record to its canonical rows; `()` means skipped."""


class CursorKind(StrEnum):
    """How the engine treats a stream's cursor."""

    NONE = "none"  # full refresh every time
    TIMESTAMP = "timestamp"  # ISO-8601 UTC; never moves backwards; lookback applies
    OPAQUE = "opaque"  # a vendor token or fingerprint, saved as given


@dataclass(frozen=True)
class StartContext:
    """What a stream knows when it builds its first request."""

    cursor: str | None
    """The committed cursor, as stored."""
    since: datetime | None
    """For timestamp cursors: the committed cursor minus the lookback window."""
    now: datetime
    source_cursors: Mapping[str, str | None]
    """Committed cursors of every stream of the same source, by stream name."""
    reconcile: bool = False
    """A reconcile is due: the stream must list every live record, from the beginning."""


@dataclass(frozen=True)
class Page:
    """One fetched page, as the cursor function of a stream sees it."""

    request: Request
    body: Mapping[str, Any]
    records: Sequence[Mapping[str, Any]]
    is_last: bool
    start: StartContext


def _no_query(_ctx: StartContext) -> Mapping[str, Any] | None:
    return {}


def record_id(raw: Mapping[str, Any]) -> str:
    """The vendor id of a raw record, or a digest of it when it has none."""
    value = raw.get("id")
    if value is not None and value != "":
        return str(value)
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
    return f"sha256:{digest[:32]}"


@dataclass(frozen=True)
class Reconcile:
    """A stream's promise that, when `StartContext.reconcile` is set, it lists every live
    record of `model` for its source, from the beginning, so whatever it leaves out was
    deleted at the vendor.

    The engine then soft-deletes the live rows of `model` of the source (narrowed by `scope`)
    whose `external_id` the listing did not show, provided the listing ran to its end in one
    run. The mapper must set `deleted_at` (None for a live record), so that a record that
    comes back is undeleted by its upsert.
    """

    model: type[SQLModel]
    scope: Mapping[str, Any] = field(default_factory=dict)
    """Column values of the rows the listing covers, e.g. `{"kind": "company"}`."""

    def __post_init__(self) -> None:
        needed = {"source", "external_id", "deleted_at", *self.scope}
        missing = needed - set(table_of(self.model).columns.keys())
        if missing:
            name = table_of(self.model).name
            raise ValueError(f"{name} cannot be reconciled: no {', '.join(sorted(missing))}")

    def __hash__(self) -> int:  # the scope is a dict: keep specs hashable values
        return hash((self.model, tuple(sorted(self.scope.items()))))


@dataclass(frozen=True)
class ReconcilePolicy:
    """When a source's full listings reconcile deletes, and how much they must see to do it."""

    every: timedelta = timedelta(hours=24)
    """A reconcile is due this long after the last one (zero: on every sync)."""
    min_share: float = 0.5
    """A listing that shows fewer than this share of the live rows deletes nothing."""

    @classmethod
    def from_config(cls, source: str, config: SourceConfig) -> ReconcilePolicy:
        """The policy in a source's section of the sources file (`reconcile_every_hours`,
        `reconcile_min_share`), or the defaults; a bad value is a ConfigError naming it."""
        extra = config.model_extra or {}
        policy = cls()
        hours = _number(source, extra, "reconcile_every_hours", policy.every / timedelta(hours=1))
        share = _number(source, extra, "reconcile_min_share", policy.min_share, upper=1.0)
        return cls(every=timedelta(hours=hours), min_share=share)


def _number(
    source: str, extra: Mapping[str, Any], key: str, default: float, upper: float | None = None
) -> float:
    value = extra.get(key, default)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    valid = number and math.isfinite(value) and value >= 0
    if not valid or (upper is not None and value > upper):
        bound = f"between 0 and {upper:g}" if upper is not None else "0 or more"
        raise ConfigError(f"[{source}] {key} must be a number {bound}, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class StreamSpec:
    """One endpoint of one source, declared; `sync.run_stream` does the work."""

    name: str
    path: str
    mapper: Mapper
    paginator: Callable[[], Paginator]
    records_key: str
    method: Literal["GET", "POST"] = "GET"
    query: Callable[[StartContext], Mapping[str, Any] | None] = _no_query
    """Query parameters (GET) or JSON body (POST) of the first request; None: nothing to do."""
    cursor_kind: CursorKind = CursorKind.NONE
    cursor: Callable[[Page], str | None] | None = None
    """The stream's cursor once this page is committed; None leaves the cursor as it is."""
    record_key: Callable[[Mapping[str, Any]], str] = record_id
    newest_first: bool = False
    """The vendor lists newest first: map each page oldest first so later states win."""
    enrich: Callable[[Fetcher, list[Json]], list[Json]] | None = None
    """Adds related data to a page's raw records before mapping (e.g. associations)."""
    total_key: str | None = None
    reconcile: Reconcile | None = None
    """This stream can list every live record of a model: see `Reconcile`."""

    def first_request(self, ctx: StartContext) -> Request | None:
        query = self.query(ctx)
        if query is None:
            return None
        if self.method == "GET":
            return Request("GET", self.path, params=dict(query))
        return Request("POST", self.path, json=dict(query))


@dataclass(frozen=True)
class Connector:
    """A source: its name, its streams in sync order, and how to open its client."""

    source: str
    streams: tuple[StreamSpec, ...]
    open: Callable[[], Fetcher]
    secrets: tuple[SecretStr, ...] = ()
    finalize: Callable[[Session], None] | None = None
    """Set-based derivations once every stream has synced (e.g. ARR from won deals)."""
    reconcile: ReconcilePolicy = ReconcilePolicy()
    """Cadence and guard of the delete reconciliation of streams that declare `Reconcile`."""

    def secret_values(self) -> list[str]:
        return [s.get_secret_value() for s in self.secrets if s.get_secret_value()]

    def stream(self, name: str) -> StreamSpec:
        for spec in self.streams:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.source} has no stream {name!r}")


def max_timestamp(
    getter: Callable[[Mapping[str, Any]], datetime | None],
) -> Callable[[Page], str | None]:
    """A cursor function: the latest timestamp among the page's records."""

    def cursor(page: Page) -> str | None:
        stamps = [s for s in (getter(r) for r in page.records) if s is not None]
        return max(stamps).isoformat() if stamps else None

    return cursor


# Shared value helpers for mappers ---------------------------------------------------------


def validate_record(record: Record) -> None:
    """Raise MappingError when the values could not be stored in the record's table."""
    values = record.values
    plan = _plan(table_of(record.model), tuple(values))
    if plan is not None:
        for name in plan:
            if values[name] is None:
                break
        else:
            for value in values.values():
                if isinstance(value, datetime) and value.tzinfo is None:
                    break
            else:
                return
    _validate_slowly(record)


_PLANS: dict[tuple[Table, tuple[str, ...]], tuple[str, ...] | None] = {}


def _plan(table: Table, names: tuple[str, ...]) -> tuple[str, ...] | None:
    """The given columns that must not be None, when these names could be valid at all.

    None when the names alone break a rule (an unknown or a missing required column):
    the full check then says which. Cached per table and tuple of names.
    """
    key = (table, names)
    try:
        return _PLANS[key]
    except KeyError:
        pass
    given = set(names)
    plan: tuple[str, ...] | None = tuple(
        c.name for c in table.columns if c.name in given and not c.nullable
    )
    if given - set(table.columns.keys()):
        plan = None
    for column in table.columns:
        has_default = column.default is not None or column.server_default is not None
        absent = column.name not in given and not has_default and not column.primary_key
        if absent and not column.nullable:
            plan = None
    if len(_PLANS) > 4096:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def _validate_slowly(record: Record) -> None:
    table = table_of(record.model)
    unknown = set(record.values) - set(table.columns.keys())
    if unknown:
        raise MappingError(f"unknown columns for {table.name}: {', '.join(sorted(unknown))}")
    for column in table.columns:
        value = record.values.get(column.name)
        has_default = column.default is not None or column.server_default is not None
        absent = column.name not in record.values and not has_default and not column.primary_key
        if not column.nullable and (absent or (column.name in record.values and value is None)):
            raise MappingError(f"{table.name}.{column.name} is required but missing")
        if isinstance(value, datetime) and value.tzinfo is None:
            raise MappingError(f"{table.name}.{column.name} is a naive datetime")


def parse_iso(value: object, field_name: str = "timestamp") -> datetime | None:
    """An ISO-8601 string (with `Z` or an offset) as aware UTC; None stays None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MappingError(f"{field_name} {value!r} is not an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MappingError(f"{field_name} {value!r} is not an ISO-8601 timestamp") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def from_unix(value: object, field_name: str = "timestamp") -> datetime | None:
    """Unix seconds as aware UTC; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MappingError(f"{field_name} {value!r} is not a Unix time")
    return datetime.fromtimestamp(value, UTC)


def to_minor(value: object, field_name: str = "amount") -> int:
    """A decimal amount in major units ("1234.50") as integer minor units (123450)."""
    if value is None or value == "":
        return 0
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise MappingError(f"{field_name} {value!r} is not a number") from exc
    if not amount.is_finite():
        raise MappingError(f"{field_name} {value!r} is not a finite number")
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def normalise_domain(value: object) -> str | None:
    """`https://WWW.Acme.com/about` -> `acme.com`; empty -> None."""
    if not isinstance(value, str) or not value.strip():
        return None
    domain = value.strip().lower()
    domain = domain.split("://", 1)[-1].split("/", 1)[0].split("@")[-1].split(":", 1)[0]
    domain = domain.removeprefix("www.").strip(".")
    return domain or None


def email_domain(value: object) -> str | None:
    """The domain of an email address, normalised; None when it has none."""
    if not isinstance(value, str) or "@" not in value:
        return None
    return normalise_domain(value.rsplit("@", 1)[1])
