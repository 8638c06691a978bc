"""Intercom (API version 2.11): companies, and conversations with their CSAT ratings.

Companies come from `GET /companies/scroll`, the one endpoint the 2.11 description offers
for iterating over every company (`POST /companies/list` stops at 10,000 and pages by
number over an order that shifts while paging; `GET /companies` looks companies up by name,
id, tag or segment). They are read in full on every sync and become `ExternalLink` rows:
`company_id` is the id the workspace gave the company, usually the CRM id, so it is the
link's `crm_hint`, and the website's domain is the fallback.

Conversations come from `POST /conversations/search` with `updated_at >` the committed
cursor. The 2.11 search documents no sort, so no page's newest `updated_at` is safe to
commit before the last page: the cursor is the moment the run began, committed once the
last page is in. Date filters of the search API are documented (for contacts) to match by
calendar day in the workspace's timezone, so the filter starts `search_overlap` (a day)
earlier; the upserts absorb what is read twice. A conversation names its contacts, not its
company: each page's contacts are looked up in one batched `POST /contacts/search` (`id IN`)
and the first company of the first contact that has one becomes the ticket's
`account_ref`. A `conversation_rating` also becomes a CSAT `SurveyResponse` (1-5) keyed by
the conversation.

Intercom signals no deletes: companies and conversations just disappear. Both streams
declare a `Reconcile`: when one is due (`reconcile_every_hours` in the sources file), the
scroll lists every company as it always does, and the search starts from `start_time`
instead of the cursor, so it lists every conversation; the engine soft-deletes the links
and tickets these complete listings no longer show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.base import (
    Connector,
    CursorKind,
    Fetcher,
    Json,
    Page,
    Reconcile,
    ReconcilePolicy,
    Record,
    Request,
    StartContext,
    StreamSpec,
    from_unix,
    normalise_domain,
)
from connectors.errors import MappingError
from connectors.http import BearerAuth, ClientOptions, HttpClient, HttpSource, QuotaHeaders
from connectors.paginators import Paginator
from settings import ConfigError, Settings
from store.models import ExternalLink, SurveyResponse, Ticket

__all__ = [
    "MAX_PAGE_SIZE",
    "SOURCE",
    "IntercomOptions",
    "ScrollPaginator",
    "StartingAfterPaginator",
    "build",
    "map_company",
    "map_conversation",
]

SOURCE = "intercom"
MAX_PAGE_SIZE = 150
QUOTAS = (
    QuotaHeaders(
        "X-RateLimit-Remaining", reset_at="X-RateLimit-Reset", window_seconds=10.0, low_water=10
    ),
)
"""Intercom counts requests in 10-second windows. Its 429 has no Retry-After, only
`X-RateLimit-Reset` (a Unix time), which the HTTP layer cannot read yet: a 429 is retried
after the backoff, then the pause for the spent quota (a window)."""
STATUSES = {"open": "open", "closed": "closed", "snoozed": "pending"}
PRIORITIES = {"priority": "high", "not_priority": None}


@dataclass(frozen=True)
class IntercomOptions:
    """Knobs of this connector beyond its settings."""

    start_time: int = 0
    """Unix time the very first conversation sync starts from (0: everything)."""
    search_overlap: timedelta = timedelta(days=1)
    """How much earlier than the cursor the `updated_at` filter starts (day-granular dates)."""


class StartingAfterPaginator(Paginator):
    """`pages.next.starting_after` in the body; sent back in `pagination` (POST) or the query."""

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        pages = body.get("pages")
        following = pages.get("next") if isinstance(pages, Mapping) else None
        token = following.get("starting_after") if isinstance(following, Mapping) else None
        return token is not None, None if token is None else str(token)

    def place_token(self, request: Request, token: str) -> Request:
        if request.method == "GET":
            return request.with_params({"starting_after": token})
        pagination = (request.json or {}).get("pagination") or {}
        return request.with_json({"pagination": {**pagination, "starting_after": token}})


class ScrollPaginator(Paginator):
    """The companies scroll: more while a page has data, the next page by `scroll_param`.

    Intercom may hand back the same `scroll_param` for every page of one scroll, so the
    token also carries the page's last id: only a page that comes back whole repeats it.
    """

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        data = body.get("data")
        if not isinstance(data, list) or not data:
            return False, None
        param = body.get("scroll_param")
        last = data[-1].get("id") if isinstance(data[-1], Mapping) else None
        return True, None if param is None else f"{param}|{last}"

    def place_token(self, request: Request, token: str) -> Request:
        return request.with_params({"scroll_param": token.split("|", 1)[0]})


def _id(raw: Mapping[str, Any], what: str) -> str:
    value = raw.get("id")
    if not isinstance(value, str) or not value:
        raise MappingError(f"{what} has no id: {value!r}")
    return value


def _text(raw: Mapping[str, Any], field: str, owner: str) -> str | None:
    value = raw.get(field)
    if value is not None and not isinstance(value, str):
        raise MappingError(f"{owner}: {field} {value!r} is not text")
    return (value.strip() or None) if value else None


def _time(
    raw: Mapping[str, Any], field: str, owner: str, *, required: bool = False
) -> datetime | None:
    value = from_unix(raw.get(field), f"{owner}: {field}")
    if value is None and required:
        raise MappingError(f"{owner}: {field} is missing")
    return value


def _object(raw: Mapping[str, Any], field: str, owner: str) -> Mapping[str, Any]:
    value = raw.get(field)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MappingError(f"{owner}: {field} is not an object")
    return value


def map_company(raw: Mapping[str, Any]) -> list[Record]:
    """A company -> an ExternalLink waiting to be matched to a CRM account."""
    ident = _id(raw, "company")
    owner = f"company {ident}"
    hint = raw.get("company_id")
    if hint is not None and (isinstance(hint, bool) or not isinstance(hint, str | int)):
        raise MappingError(f"{owner}: company_id {hint!r} is not an id")
    values: dict[str, Any] = {
        "external_id": ident,
        "kind": "company",
        "name": _text(raw, "name", owner),
        "domain": normalise_domain(_text(raw, "website", owner)),
        "crm_hint": (str(hint).strip() or None) if hint is not None else None,
        "deleted_at": None,
    }
    if (updated := _time(raw, "updated_at", owner)) is not None:
        values["updated_at"] = updated
    return [Record(ExternalLink, values)]


def _rating(raw: Mapping[str, Any], owner: str) -> tuple[int, Mapping[str, Any]] | None:
    rating = _object(raw, "conversation_rating", owner)
    score = rating.get("rating")
    if score is None:
        return None
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise MappingError(f"{owner}: conversation_rating.rating {score!r} is not 1 to 5")
    return score, rating


def map_conversation(raw: Mapping[str, Any]) -> list[Record]:
    """A conversation -> a Ticket row, plus a CSAT SurveyResponse when it was rated.

    `company_ids` (added by the contacts lookup) lists its contacts' companies, first first.
    """
    ident = _id(raw, "conversation")
    owner = f"conversation {ident}"
    state = raw.get("state")
    if not isinstance(state, str) or state not in STATUSES:
        raise MappingError(f"{owner}: state {state!r} is not open, closed or snoozed")
    priority = raw.get("priority")
    if priority is not None and priority not in PRIORITIES:
        raise MappingError(f"{owner}: priority {priority!r} is not priority or not_priority")
    updated = _time(raw, "updated_at", owner, required=True)
    stats = _object(raw, "statistics", owner)
    solved = None
    if state == "closed":
        solved = _time(stats, "last_close_at", owner) or _time(stats, "first_close_at", owner)
    companies = raw.get("company_ids") or []
    if not isinstance(companies, list) or not all(isinstance(c, str) for c in companies):
        raise MappingError(f"{owner}: company_ids is not a list of ids")
    account = companies[0] if companies else None
    rated = _rating(raw, owner)
    source = _object(raw, "source", owner)
    ticket = {
        "external_id": ident,
        "account_ref": account,
        "subject": _text(raw, "title", owner) or _text(source, "subject", owner),
        "status": STATUSES[state],
        "priority": PRIORITIES[priority] if priority is not None else None,
        "satisfaction": None if rated is None else "good" if rated[0] >= 4 else "bad",
        "created_at": _time(raw, "created_at", owner, required=True),
        "updated_at": updated,
        "solved_at": solved,
        "deleted_at": None,
    }
    records = [Record(Ticket, ticket)]
    if rated is not None:
        score, rating = rated
        answer = {
            "external_id": ident,
            "account_ref": account,
            "ticket_ref": ident,
            "kind": "csat",
            "score": score,
            "scale_max": 5,
            "comment": _text(rating, "remark", owner),
            "responded_at": _time(rating, "created_at", owner) or updated,
        }
        records.append(Record(SurveyResponse, answer))
    return records


def _ref_ids(parent: Mapping[str, Any], field: str, items: str) -> list[str]:
    """The ids of a nested list of references, e.g. a conversation's `contacts.contacts`."""
    holder = parent.get(field)
    refs = holder.get(items) if isinstance(holder, Mapping) else None
    if not isinstance(refs, list):
        return []
    return [r["id"] for r in refs if isinstance(r, Mapping) and isinstance(r.get("id"), str)]


def _with_companies(per_page: int) -> Callable[[Fetcher, list[Json]], list[Json]]:
    """Adds `company_ids` to each conversation: one `id IN` contact search per page."""

    def enrich(fetcher: Fetcher, conversations: list[Json]) -> list[Json]:
        contacts = [_ref_ids(conv, "contacts", "contacts") for conv in conversations]
        wanted = list(dict.fromkeys(c for ids in contacts for c in ids))
        companies: dict[str, list[str]] = {}
        for start in range(0, len(wanted), per_page):
            query = {"field": "id", "operator": "IN", "value": wanted[start : start + per_page]}
            body_json = {"query": query, "pagination": {"per_page": per_page}}
            request: Request | None = Request("POST", "/contacts/search", json=body_json)
            paginator = StartingAfterPaginator()
            while request is not None:
                body = fetcher.fetch(request)
                paginator.update(body)
                data = body.get("data")
                for contact in data if isinstance(data, list) else []:
                    if isinstance(contact, Mapping) and isinstance(contact.get("id"), str):
                        companies[contact["id"]] = _ref_ids(contact, "companies", "data")
                request = paginator.next_request(request) if paginator.has_more else None
        return [
            {**conv, "company_ids": [ids[0] for c in mine if (ids := companies.get(c))]}
            for conv, mine in zip(conversations, contacts, strict=True)
        ]

    return enrich


def _run_start(page: Page) -> str | None:
    """Once the last page is in, the moment the run began: every earlier change was read."""
    return page.start.now.isoformat() if page.is_last else None


def build(
    settings: Settings, client: ClientOptions | None = None, options: IntercomOptions | None = None
) -> Connector:
    """The Intercom connector for these settings."""
    cfg = settings.intercom
    opts = options or IntercomOptions()
    if cfg.access_token is None:
        raise ConfigError("intercom is not configured: set INTERCOM__ACCESS_TOKEN in .env")
    http = HttpSource(
        source=SOURCE,
        base_url=cfg.base_url,
        auth=BearerAuth(cfg.access_token),
        credential="the access token",
        settings_hint="INTERCOM__ACCESS_TOKEN",
        secrets=(cfg.access_token,),
        headers={"Intercom-Version": cfg.api_version, "Accept": "application/json"},
        quotas=QUOTAS,
    )
    per_page = max(1, min(cfg.page_size, MAX_PAGE_SIZE))

    def search(ctx: StartContext) -> dict[str, Any]:
        since = opts.start_time
        if ctx.since is not None and not ctx.reconcile:
            since = max(int((ctx.since - opts.search_overlap).timestamp()), 0)
        query = {"field": "updated_at", "operator": ">", "value": since}
        return {"query": query, "pagination": {"per_page": per_page}}

    streams = (
        StreamSpec(
            name="companies",
            path="/companies/scroll",
            records_key="data",
            paginator=ScrollPaginator,
            mapper=map_company,
            reconcile=Reconcile(ExternalLink, {"kind": "company"}),
        ),
        StreamSpec(
            name="conversations",
            path="/conversations/search",
            method="POST",
            query=search,
            records_key="conversations",
            paginator=StartingAfterPaginator,
            mapper=map_conversation,
            cursor_kind=CursorKind.TIMESTAMP,
            cursor=_run_start,
            enrich=_with_companies(per_page),
            total_key="total_count",
            reconcile=Reconcile(Ticket),
        ),
    )
    return Connector(
        source=SOURCE,
        streams=streams,
        open=lambda: HttpClient(http, client),
        secrets=(cfg.access_token,),
        reconcile=ReconcilePolicy.from_config(SOURCE, settings.source_config(SOURCE)),
    )
