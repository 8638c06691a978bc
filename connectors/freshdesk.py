"""Freshdesk v2: companies, tickets, and deleted tickets as soft deletes.

Freshdesk answers a list as a bare JSON array and announces the next page in a
`Link: <...>; rel="next"` header, so `link_envelope` turns such an answer into one object
(`{"items": [...], "next_link": ...}`) and `LinkHeaderPaginator` follows that link.
Companies are listed in full on every sync and become `ExternalLink` rows; the CRM id may
sit in a custom field (`FreshdeskOptions.crm_field`). Tickets are read with
`updated_since` (always sent: without it Freshdesk returns only the last 30 days), oldest
change first; the cursor is the latest `updated_at` seen. `UpdatedSincePaginator` starts
each page as a fresh query from the last `updated_at` read, so a ticket changing during the
sync can never shift another past a page boundary (and the 300-page cap per query is never
reached). Deleted tickets (`filter=deleted`) are a stream of their own.
Companies have no such filter: their listing declares a `Reconcile`, so the engine
soft-deletes, on the source's reconcile cadence, the companies it no longer shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.base import (
    Connector,
    CursorKind,
    Json,
    Mapper,
    Reconcile,
    ReconcilePolicy,
    Record,
    Request,
    StreamSpec,
    max_timestamp,
    normalise_domain,
    parse_iso,
)
from connectors.errors import MappingError, PagingError
from connectors.http import ApiKeyAuth, ClientOptions, HttpClient, HttpSource, QuotaHeaders
from connectors.paginators import Paginator
from settings import ConfigError, Settings
from store.models import ExternalLink, Ticket

__all__ = [
    "SOURCE",
    "FreshdeskOptions",
    "LinkHeaderPaginator",
    "UpdatedSincePaginator",
    "build",
    "link_envelope",
    "map_company",
    "map_deleted_ticket",
    "map_ticket",
]

SOURCE = "freshdesk"
ITEMS = "items"
NEXT_LINK = "next_link"
MAX_PER_PAGE = 100
QUOTAS = (QuotaHeaders("X-RateLimit-Remaining", window_seconds=60.0, low_water=10),)
STATUSES = {2: "open", 3: "pending", 4: "solved", 5: "closed"}
CUSTOM_STATUS = "pending"
"""Statuses above 5 are an account's own; Freshdesk treats them all as unresolved."""
PRIORITIES = {1: "low", 2: "normal", 3: "high", 4: "urgent"}


@dataclass(frozen=True)
class FreshdeskOptions:
    """Knobs of this connector beyond its settings."""

    crm_field: str = "crm_account_id"
    """The company custom field that holds the CRM account id."""
    max_pages: int = 300
    """Freshdesk serves at most this many pages per query; tickets restart before it."""
    start_time: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    """`updated_since` of the very first ticket sync (earlier than any Freshdesk data)."""
    include_stats: bool = False
    """Ask for `stats` (resolution times); Freshdesk charges extra credits for it."""


def link_envelope(items: list[Any], response: httpx.Response) -> Json:
    """A bare JSON array answer as `{ITEMS: [...], NEXT_LINK: url}`, the URL being the
    `Link` header's `rel="next"` (None on the last page)."""
    return {ITEMS: items, NEXT_LINK: response.links.get("next", {}).get("url")}


class LinkHeaderPaginator(Paginator):
    """Follows the `rel="next"` link (the page token): its query parameters replace the
    request's; the path stays, as the base URL may carry a prefix the vendor does not know."""

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        link = body.get(NEXT_LINK)
        return bool(link), str(link) if link else None

    def place_token(self, request: Request, token: str) -> Request:
        params = dict(httpx.URL(token).params.items())
        return request.with_params(params)


class UpdatedSincePaginator(LinkHeaderPaginator):
    """`updated_since` windows: each next page is a fresh query from the last `updated_at`.

    Freshdesk pages by offset (`page=N`) over a list sorted by `updated_at`. A ticket that
    changes while the sync pages through moves to the end of that list, and every ticket
    behind it moves up one place: with plain offsets, the one that slides across a page
    boundary is never read, and no lookback finds it once the cursor has passed. So each
    page after the first starts a fresh query a second before the latest `updated_at` read
    (no ticket sharing that second is lost, whether Freshdesk reads `updated_since`
    inclusively or not), and a changed ticket simply comes again later. Only when a whole
    page shares that second, so a fresh query would make no progress, does it follow the
    `Link` to the next page; a cap's worth of pages in one second stops with PagingError.
    """

    def __init__(self, max_pages: int) -> None:
        super().__init__()
        self._max_pages = max_pages
        self._pages = 0
        self._window: str | None = None

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        more, link = super().read_token(body)
        self._pages += 1
        if not more:
            return False, None
        stamps = [s for s in map(_updated, body.get(ITEMS) or []) if s is not None]
        if not stamps:
            raise PagingError("freshdesk page without any updated_at: cannot page on safely")
        window = f"since:{_iso(max(stamps) - timedelta(seconds=1))}"
        if window != self._window:
            self._window, self._pages = window, 0
            return True, window
        if self._pages >= self._max_pages:
            raise PagingError(
                f"freshdesk returned {self._pages} pages of tickets updated in one second: "
                "lower the page size or raise FreshdeskOptions.max_pages"
            )
        return True, link  # a full page in one second: offset paging within this window

    def place_token(self, request: Request, token: str) -> Request:
        if token.startswith("since:"):
            since = token.removeprefix("since:")
            return request.with_params({"updated_since": since}, drop=("page",))
        return super().place_token(request, token)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _updated(raw: object) -> datetime | None:
    """A record's last change; None for a record too broken to say (it is quarantined)."""
    if not isinstance(raw, Mapping):
        return None
    try:
        return parse_iso(raw.get("updated_at"), "updated_at")
    except MappingError:
        return None


def _id(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise MappingError(f"{what} {value!r} is not an id")
    return str(value)


def _required_time(raw: Mapping[str, Any], field: str, what: str) -> datetime:
    value = parse_iso(raw.get(field), field)
    if value is None:
        raise MappingError(f"{what}: {field} is missing")
    return value


def _hint(value: object) -> str | None:
    """A custom field's value as an id; a number field's `5003.0` reads `5003`."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return (str(value).strip() or None) if value is not None else None


def map_company(raw: Mapping[str, Any], crm_field: str = "crm_account_id") -> list[Record]:
    """A company -> an ExternalLink waiting to be matched to a CRM account."""
    what = f"company {raw.get('id')}"
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise MappingError(f"{what} has no name")
    domains = raw.get("domains") or []
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        raise MappingError(f"{what}: domains is not a list of domains")
    custom = raw.get("custom_fields") or {}
    if not isinstance(custom, Mapping):
        raise MappingError(f"{what}: custom_fields is not an object")
    values: dict[str, Any] = {
        "external_id": _id(raw.get("id"), f"{what}: id"),
        "kind": "company",
        "name": name.strip(),
        "domain": next((d for d in map(normalise_domain, domains) if d), None),
        "crm_hint": _hint(custom.get(crm_field)),
        "deleted_at": None,
    }
    if (updated := parse_iso(raw.get("updated_at"), "updated_at")) is not None:
        values["updated_at"] = updated
    return [Record(ExternalLink, values)]


def _named(
    raw: Mapping[str, Any], field: str, names: Mapping[int, str], what: str, above: str = ""
) -> str:
    """A Freshdesk code by its name; codes past the known ones are `above`, when given."""
    code = raw.get(field)
    if isinstance(code, bool) or not isinstance(code, int):
        raise MappingError(f"{what}: {field} {code!r} is not a Freshdesk code")
    if code in names or (above and code > max(names)):
        return names.get(code, above)
    raise MappingError(f"{what}: {field} {code} is not a Freshdesk {field}")


def _solved_at(raw: Mapping[str, Any], status: str, what: str) -> datetime | None:
    stats = raw.get("stats")
    if stats is None:
        return None
    if not isinstance(stats, Mapping):
        raise MappingError(f"{what}: stats is not an object")
    resolved = parse_iso(stats.get("resolved_at"), "stats.resolved_at")
    closed = parse_iso(stats.get("closed_at"), "stats.closed_at")
    # A reopened ticket keeps its old resolved_at: only a solved ticket has a solve time.
    return (resolved or closed) if status in ("solved", "closed") else None


def map_ticket(raw: Mapping[str, Any]) -> list[Record]:
    """A ticket -> a Ticket row; `deleted: true` becomes a soft delete at `updated_at`."""
    what = f"ticket {raw.get('id')}"
    deleted = raw.get("deleted", False)
    if not isinstance(deleted, bool):
        raise MappingError(f"{what}: deleted {deleted!r} is not a boolean")
    company = raw.get("company_id")
    status = _named(raw, "status", STATUSES, what, above=CUSTOM_STATUS)
    updated = _required_time(raw, "updated_at", what)
    values = {
        "external_id": _id(raw.get("id"), f"{what}: id"),
        "account_ref": None if company is None else _id(company, f"{what}: company_id"),
        "subject": raw.get("subject") or None,
        "status": status,
        "priority": _named(raw, "priority", PRIORITIES, what),
        "created_at": _required_time(raw, "created_at", what),
        "updated_at": updated,
        "solved_at": _solved_at(raw, status, what),
        "deleted_at": updated if deleted else None,
    }
    return [Record(Ticket, values)]


def map_deleted_ticket(raw: Mapping[str, Any]) -> list[Record]:
    """A ticket listed under `filter=deleted` -> its Ticket row, soft-deleted."""
    return map_ticket({**raw, "deleted": True})


def build(
    settings: Settings,
    client: ClientOptions | None = None,
    options: FreshdeskOptions | None = None,
) -> Connector:
    """The Freshdesk connector for these settings."""
    cfg = settings.freshdesk
    opts = options or FreshdeskOptions()
    if cfg.api_key is None or not (cfg.domain or cfg.base_url):
        raise ConfigError(
            "freshdesk is not configured: set FRESHDESK__DOMAIN and FRESHDESK__API_KEY"
        )
    http = HttpSource(
        source=SOURCE,
        base_url=cfg.resolved_base_url(),
        auth=ApiKeyAuth(cfg.api_key, password="X"),  # noqa: S106  # Freshdesk's documented dummy password
        credential="the API key",
        settings_hint="FRESHDESK__API_KEY",
        secrets=(cfg.api_key,),
        quotas=QUOTAS,
        list_envelope=link_envelope,
    )
    per_page = max(1, min(cfg.page_size, MAX_PER_PAGE))

    def ticket_stream(name: str, mapper: Mapper, **extra: str) -> StreamSpec:
        if opts.include_stats:
            extra["include"] = "stats"
        return StreamSpec(
            name=name,
            path="/api/v2/tickets",
            query=lambda ctx: {
                "updated_since": _iso(ctx.since or opts.start_time),
                "order_by": "updated_at",
                "order_type": "asc",
                "per_page": per_page,
                **extra,
            },
            records_key=ITEMS,
            paginator=lambda: UpdatedSincePaginator(opts.max_pages),
            mapper=mapper,
            cursor_kind=CursorKind.TIMESTAMP,
            cursor=max_timestamp(_updated),
        )

    streams = (
        StreamSpec(
            name="companies",
            path="/api/v2/companies",
            query=lambda _ctx: {"per_page": per_page},
            records_key=ITEMS,
            paginator=LinkHeaderPaginator,
            mapper=lambda raw: map_company(raw, opts.crm_field),
            reconcile=Reconcile(ExternalLink, {"kind": "company"}),
        ),
        ticket_stream("tickets", map_ticket),
        ticket_stream("deleted_tickets", map_deleted_ticket, filter="deleted"),
    )
    return Connector(
        source=SOURCE,
        streams=streams,
        open=lambda: HttpClient(http, client),
        secrets=(cfg.api_key,),
        reconcile=ReconcilePolicy.from_config(SOURCE, settings.source_config(SOURCE)),
    )
