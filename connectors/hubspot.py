"""HubSpot CRM v3: owners and their teams, companies, deals with their company, archives.

Companies and deals are read incrementally with the search API (`hs_lastmodifieddate GTE`
the cursor, ascending); `SearchPaginator` starts each page as a fresh query from the last
timestamp read, so no record is skipped when others change mid-sync, and no query nears
search's cap of 10,000 results. Search never
returns archived records, so two small streams list them (`archived=true`) as soft deletes.
Once the source has synced, `finalize` sets each account's ARR (won deals) and renewal
date (earliest open renewal) in two set-based statements.

Company properties named in `[hubspot.traits]` of the sources file (or `HubSpotSettings.traits`)
become account traits: `trait = "property"`, or `trait = { property = "...", kind = "number" }`
to fix the kind. The engine writes them once the page's accounts are stored
(`connectors.trait_records`), and only where they differ from the value stored as of then.

Each value is stamped with the time it was set in HubSpot. Two streams list every company
(archived, then live) with `propertiesWithHistory` for the trait properties, in pages of at
most 50 (HubSpot's cap with history; search returns no history): each past value becomes a
trait seen at its history entry's timestamp, oldest first. They run before the search, and
only while their cursor, a fingerprint of the trait properties listed, is not stored: on the
first sync, after `[hubspot.traits]` changes, and on a backfill. The fingerprint is saved
after the last page, so a listing stopped part-way runs again from the start (a replay
writes nothing). A company too broken to map is skipped there with a log line: the search
lists it next and quarantines it, once. Incremental syncs then read current values from
the search, seen at the company's `hs_lastmodifieddate`: history for every changed company
would cost a request per 50 of them on every sync, from a list that cannot pick companies
by id. So a company created after the full listing starts its history at its last change,
and a value changed twice between two syncs keeps only its latest state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlmodel import Session

from connectors.base import (
    Connector,
    CursorKind,
    Fetcher,
    Json,
    Page,
    Record,
    Request,
    StartContext,
    StreamSpec,
    max_timestamp,
    normalise_domain,
    parse_iso,
    table_of,
    to_minor,
)
from connectors.crm_sentiment import (
    SENTIMENT_FIELDS,
    normalise_sentiment,
    record_crm_sentiment,
    sentiment_values,
)
from connectors.errors import MappingError, PagingError
from connectors.http import (
    BearerAuth,
    ClientOptions,
    HttpClient,
    HttpSource,
    QuotaHeaders,
    RequestBudget,
)
from connectors.paginators import CursorAfterPaginator
from connectors.trait_records import crm_trait_records, crm_traits, trait_record
from settings import ConfigError, Settings, TraitField
from store.models import Account, Csm, Opportunity, Team

__all__ = [
    "COMPANY_PROPERTIES",
    "DEAL_PROPERTIES",
    "HISTORY_STREAMS",
    "SOURCE",
    "HubSpotOptions",
    "SearchPaginator",
    "build",
    "map_company",
    "map_deal",
    "map_owner",
    "set_account_rollups",
]

log = logging.getLogger(__name__)

SOURCE = "hubspot"
MODIFIED = "hs_lastmodifieddate"
COMPANY_PROPERTIES = (
    "name",
    "domain",
    "hubspot_owner_id",
    "annualrevenue",
    "lifecyclestage",
    "createdate",
    "hs_merged_object_ids",
    MODIFIED,
)
DEAL_PROPERTIES = (
    "dealname",
    "amount",
    "dealstage",
    "pipeline",
    "closedate",
    "hs_is_closed_won",
    "hs_is_closed",
    "hs_arr",
    "hs_mrr",
    "dealtype",
    "deal_currency_code",
    MODIFIED,
)
Query = Callable[[StartContext], Mapping[str, Any] | None]
QUOTAS = (
    QuotaHeaders(
        "X-HubSpot-RateLimit-Remaining",
        window_ms="X-HubSpot-RateLimit-Interval-Milliseconds",
        window_seconds=10.0,
        low_water=5,
    ),
)
SEARCH_BUDGETS = (RequestBudget("/search", 5, 1.0),)
"""Search answers without rate-limit headers; its own limit is 5 requests per second."""
HISTORY_STREAMS = {"archived_company_history": True, "company_history": False}
"""The streams listing companies with their trait properties' history: name -> archived."""


@dataclass(frozen=True)
class HubSpotOptions:
    """Knobs of this connector beyond its settings."""

    search_limit: int = 200
    result_cap: int = 10_000
    association_batch: int = 100
    extra_company_properties: tuple[str, ...] = ()
    segment_property: str | None = None
    history_limit: int = 50
    """Companies per page when their property history is asked for (HubSpot's cap: 50)."""


def hs_time(value: object) -> datetime | None:
    """A HubSpot date property: ISO-8601 in v3 responses, epoch milliseconds in filters."""
    if isinstance(value, str) and value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    return parse_iso(value)


def _ms(moment: datetime | None) -> str:
    return "0" if moment is None else str(int(moment.timestamp() * 1000))


def _since_filter(since_ms: str) -> list[Json]:
    return [{"filters": [{"propertyName": MODIFIED, "operator": "GTE", "value": since_ms}]}]


def _search_body(properties: Sequence[str], limit: int, ctx: StartContext) -> Json:
    return {
        "filterGroups": _since_filter(_ms(ctx.since)),
        "sorts": [{"propertyName": MODIFIED, "direction": "ASCENDING"}],
        "properties": list(properties),
        "limit": limit,
    }


class SearchPaginator(CursorAfterPaginator):
    """Each page a fresh search from the last `hs_lastmodifieddate` read (GTE, ascending).

    Search's `after` is an offset into a list sorted by modification time: a record changed
    while the sync pages through moves to the end, every record behind it moves up one, and
    the one sliding across a page boundary would never be read. A fresh query per page
    makes the offsets irrelevant (a changed record simply comes again later) and never
    nears the 10,000-result cap of one query. Only a whole page modified in the same
    millisecond (a bulk import) pages on with `after` within that window, up to the cap.
    """

    def __init__(self, limit: int, cap: int) -> None:
        super().__init__()
        self._limit = limit
        self._cap = cap
        self._window: str | None = None
        self._fetched = 0

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        more, token = super().read_token(body)
        if not more:
            return False, None
        results = body.get("results") or []
        stamps = [m for r in results if (m := _modified(r)) is not None]
        if not stamps:
            raise PagingError("hubspot search page without any hs_lastmodifieddate")
        window = f"since:{_ms(max(stamps))}"
        if window != self._window:
            self._window, self._fetched = window, 0
            # a new query pages from `after` 0 again: its tokens may repeat the last one's
            self._seen = {t for t in self._seen if t.startswith("since:")}
            return True, window
        self._fetched += len(results)
        if self._fetched + self._limit > self._cap:
            raise PagingError(
                f"hubspot search: more than {self._cap} records modified in one millisecond"
            )
        return True, token

    def place_token(self, request: Request, token: str) -> Request:
        if token.startswith("since:"):
            since = token.removeprefix("since:")
            return request.with_json({"filterGroups": _since_filter(since)}, drop=("after",))
        return super().place_token(request, token)


def _modified(raw: Mapping[str, Any]) -> datetime | None:
    """A record's last change; None for a record too broken to say (it is quarantined)."""
    props = raw.get("properties")
    return hs_time(props.get(MODIFIED)) if isinstance(props, Mapping) else None


def _deleted_at(raw: Mapping[str, Any]) -> datetime | None:
    if raw.get("archived") is not True:
        return None
    return parse_iso(raw.get("archivedAt")) or parse_iso(raw.get("updatedAt"))


def _flag(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def map_owner(raw: Mapping[str, Any]) -> list[Record]:
    """An owner -> a Csm row, plus a Team row for each of its teams."""
    email = raw.get("email")
    if not email:
        raise MappingError(f"owner {raw.get('id')} has no email")
    teams = [t for t in raw.get("teams") or [] if t.get("id") is not None]
    primary = next((t for t in teams if t.get("primary")), teams[0] if teams else None)
    name = " ".join(p for p in (raw.get("firstName"), raw.get("lastName")) if p)
    csm = {
        "external_id": str(raw["id"]),
        "email": str(email).lower(),
        "name": name,
        "team_external_id": str(primary["id"]) if primary else None,
        "deleted_at": _deleted_at(raw),
    }
    if (updated := parse_iso(raw.get("updatedAt"))) is not None:
        csm["updated_at"] = updated
    rows = [Record(Team, {"external_id": str(t["id"]), "name": t.get("name") or ""}) for t in teams]
    return [Record(Csm, csm), *rows]


MAPPABLE_FIELDS = ("renewal_date", "arr", "segment", *SENTIMENT_FIELDS)
"""Account fields a sources file may map to a company property of the admin's choice."""


def _date_property(value: object, name: str) -> date | None:
    """A date property: `YYYY-MM-DD`, ISO-8601 or epoch milliseconds; empty is None."""
    if value in (None, ""):
        return None
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    moment = hs_time(value)
    if moment is None:
        raise MappingError(f"{name} {value!r} is not a date")
    return moment.date()


def map_company(
    raw: Mapping[str, Any],
    segment_property: str | None = None,
    fields: Mapping[str, str] | None = None,
    sentiment_synonyms: Mapping[str, str] | None = None,
    traits: Mapping[str, TraitField] | None = None,
) -> list[Record]:
    """A company -> an Account row (archived ones soft-deleted), its merged-away ids, and
    the values of its `traits` (trait name -> the company property), seen when it changed.

    `fields` maps account fields (see MAPPABLE_FIELDS) to the company properties that hold
    them in this CRM, e.g. {"renewal_date": "contract_end"}; mapped values win over the
    ones derived from deals. Companies HubSpot merged into this one (`hs_merged_object_ids`)
    no longer exist there: each becomes a soft-deleted account that names its survivor, so
    records and links that still point at the old id follow the survivor.
    """
    props = raw["properties"]
    domain = normalise_domain(props.get("domain"))
    values = {
        "external_id": str(raw["id"]),
        "name": props.get("name") or domain or f"company {raw['id']}",
        "domain": domain,
        "owner_external_id": props.get("hubspot_owner_id") or None,
        "lifecycle_stage": props.get("lifecyclestage") or None,
        "created_at": hs_time(props.get("createdate")) or parse_iso(raw.get("createdAt")),
        "updated_at": hs_time(props.get(MODIFIED)) or parse_iso(raw.get("updatedAt")),
        "deleted_at": _deleted_at(raw),
    }
    fields = fields or {}
    segment_property = fields.get("segment", segment_property)
    if segment_property:
        values["segment"] = props.get(segment_property) or None
    if "renewal_date" in fields:
        name = fields["renewal_date"]
        values["renewal_date"] = _date_property(props.get(name), name)
    if "arr" in fields:
        values["arr_minor"] = to_minor(props.get(fields["arr"]), fields["arr"])
    if "sentiment" in fields:
        values.update(_sentiment(props, fields, sentiment_synonyms or {}))
    merged = _merged_away(raw["id"], props, values["updated_at"])
    if not traits:
        return [Record(Account, values), *merged]

    def read(name: str, value: object) -> object:
        try:  # a date property may come as epoch milliseconds
            if any(f.property == name and f.kind == "date" for f in traits.values()):
                day = _date_property(value, name)
                return day.isoformat() if day else value
        except MappingError:
            pass
        return value

    seen_at = hs_time(props.get(MODIFIED)) or parse_iso(raw.get("updatedAt"))
    past = _property_history(raw)
    current = {n: f for n, f in traits.items() if not past.get(f.property)}
    found = crm_trait_records(str(raw["id"]), lambda n: read(n, props.get(n)), current, seen_at)
    for name, field in traits.items():
        found += [
            trait_record(
                str(raw["id"]), name, read(field.property, value), kind=field.kind, seen_at=at
            )
            for at, value in past.get(field.property, ())
        ]
    return [Record(Account, values), *merged, *found]


def _property_history(raw: Mapping[str, Any]) -> dict[str, list[tuple[datetime, object]]]:
    """`propertiesWithHistory` (newest first, as HubSpot lists it) as each property's
    values with the time each was set, oldest first; equal times keep the newest last."""
    listed = raw.get("propertiesWithHistory")
    if not isinstance(listed, Mapping):
        return {}
    out: dict[str, list[tuple[datetime, object]]] = {}
    for name, entries in listed.items():
        if not isinstance(entries, list):
            raise MappingError(f"propertiesWithHistory.{name} is not a list")
        past = []
        for entry in reversed(entries):
            at = hs_time(entry.get("timestamp")) if isinstance(entry, Mapping) else None
            if at is None:
                raise MappingError(f"a history entry of {name} has no timestamp")
            past.append((at, entry.get("value")))
        out[str(name)] = sorted(past, key=lambda item: item[0])
    return out


def _sentiment(
    props: Mapping[str, Any], fields: Mapping[str, str], synonyms: Mapping[str, str]
) -> dict[str, Any]:
    name = fields["sentiment"]
    note = props.get(fields["sentiment_note"]) if "sentiment_note" in fields else None
    when = hs_time(props.get(fields["sentiment_date"])) if "sentiment_date" in fields else None
    return {
        "crm_sentiment": normalise_sentiment(props.get(name), synonyms, name, SOURCE),
        "crm_sentiment_note": str(note).strip() if note else None,
        "crm_sentiment_at": when,
    }


def _merged_away(survivor: object, props: Mapping[str, Any], when: object) -> list[Record]:
    merged = props.get("hs_merged_object_ids")
    if not merged:
        return []
    return [
        Record(
            Account,
            {
                "external_id": old,
                "name": f"company {old} (merged into {survivor})",
                "merged_into": str(survivor),
                "deleted_at": when,
            },
        )
        for old in (part.strip() for part in str(merged).split(";"))
        if old and old != str(survivor)
    ]


def _company_of(raw: Mapping[str, Any]) -> str | None:
    links = raw.get("associations", {}).get("companies", {}).get("results") or []
    primary = [a for a in links if a.get("type") == "deal_to_company"] or links
    return str(primary[0]["id"]) if primary else None


def map_deal(raw: Mapping[str, Any]) -> list[Record]:
    """A deal with its company association -> an Opportunity row."""
    props = raw["properties"]
    close = hs_time(props.get("closedate"))
    kind = props.get("dealtype")
    values = {
        "external_id": str(raw["id"]),
        "account_ref": _company_of(raw),
        "name": props.get("dealname") or None,
        "kind": kind.lower() if isinstance(kind, str) and kind else None,
        "stage": props.get("dealstage") or None,
        "amount_minor": to_minor(props.get("amount"), "amount"),
        "arr_minor": to_minor(props.get("hs_arr"), "hs_arr"),
        "currency": (props.get("deal_currency_code") or "USD").upper(),
        "close_date": close.date() if close else None,
        "is_closed": _flag(props.get("hs_is_closed")),
        "is_won": _flag(props.get("hs_is_closed_won")),
        "updated_at": hs_time(props.get(MODIFIED)) or parse_iso(raw.get("updatedAt")),
        "deleted_at": _deleted_at(raw),
    }
    return [Record(Opportunity, values)]


def map_archived_deal(raw: Mapping[str, Any]) -> list[Record]:
    """An archived deal -> only its soft delete (its company link is left as it was)."""
    deleted = _deleted_at(raw)
    if deleted is None:
        raise MappingError(f"deal {raw.get('id')} listed as archived without archivedAt")
    return [Record(Opportunity, {"external_id": str(raw["id"]), "deleted_at": deleted})]


def _with_companies(batch: int) -> Callable[[Fetcher, list[Json]], list[Json]]:
    def enrich(fetcher: Fetcher, deals: list[Json]) -> list[Json]:
        companies: dict[str, list[Json]] = {}
        for start in range(0, len(deals), batch):
            inputs = [{"id": str(d["id"])} for d in deals[start : start + batch] if "id" in d]
            body = fetcher.fetch(
                Request(
                    "POST",
                    "/crm/v3/associations/deals/companies/batch/read",
                    json={"inputs": inputs},
                )
            )
            for result in body.get("results") or []:
                companies[str(result["from"]["id"])] = list(result.get("to") or [])
        return [
            {**d, "associations": {"companies": {"results": companies.get(str(d.get("id")), [])}}}
            for d in deals
        ]

    return enrich


RENEWAL_KINDS = ("renewal", "existingbusiness")


def set_account_rollups(
    session: Session,
    *,
    arr: bool = True,
    renewal_date: bool = True,
    source: str = SOURCE,
    renewal_kinds: Sequence[str] = RENEWAL_KINDS,
) -> None:
    """ARR = the latest won deal's ARR, in its currency; renewal date = earliest open
    renewal's close date.

    The latest won deal, not the sum of all: a renewal restates the contract's ARR, so
    summing every won deal would count a renewed contract twice. HubSpot's stock deal types
    call renewals "existingbusiness"; a custom "renewal" type counts too. Another CRM passes
    its own `source` and the (lower-case) opportunity kinds that are renewals there.
    """
    accounts = table_of(Account)
    deals = table_of(Opportunity).c
    mine = (
        deals.source == source,
        deals.account_ref == accounts.c.external_id,
        deals.deleted_at.is_(None),
    )

    def latest_won(column: Any) -> Any:
        return (
            select(column)
            .where(*mine, deals.is_won.is_(True))
            .order_by(deals.close_date.desc(), deals.updated_at.desc())
            .limit(1)
            .scalar_subquery()
        )

    renewal = select(func.min(deals.close_date)).where(
        *mine, deals.kind.in_(tuple(renewal_kinds)), deals.is_closed.is_(False)
    )
    rollups: dict[str, Any] = {}
    if arr:
        rollups["arr_minor"] = func.coalesce(latest_won(deals.arr_minor), 0)
        rollups["currency"] = func.coalesce(latest_won(deals.currency), accounts.c.currency)
    if renewal_date:
        rollups["renewal_date"] = renewal.scalar_subquery()
    if rollups:  # fields mapped to company properties are left as the CRM says
        session.execute(update(accounts).where(accounts.c.source == source).values(**rollups))


def build(
    settings: Settings, client: ClientOptions | None = None, options: HubSpotOptions | None = None
) -> Connector:
    """The HubSpot connector for these settings."""
    cfg = settings.hubspot
    opts = options or HubSpotOptions()
    if cfg.token is None:
        raise ConfigError("hubspot is not configured: set HUBSPOT__TOKEN in .env")
    http = HttpSource(
        source=SOURCE,
        base_url=cfg.base_url,
        auth=BearerAuth(cfg.token),
        credential="the token",
        settings_hint="HUBSPOT__TOKEN",
        secrets=(cfg.token,),
        quotas=QUOTAS,
        budgets=SEARCH_BUDGETS,
    )
    limit = min(opts.search_limit, 200)
    fields = dict(settings.source_config(SOURCE).fields)
    unknown = sorted(set(fields) - set(MAPPABLE_FIELDS))
    if unknown:
        raise ConfigError(
            f"hubspot fields {', '.join(unknown)} cannot be mapped in the sources file: "
            f"use {', '.join(MAPPABLE_FIELDS)}"
        )
    extras = tuple(opts.extra_company_properties) + (
        (opts.segment_property,) if opts.segment_property else ()
    )
    traits = crm_traits(SOURCE, cfg.traits, settings.source_config(SOURCE).traits)
    trait_props = tuple(f.property for f in traits.values())
    company_props = tuple(
        dict.fromkeys(COMPANY_PROPERTIES + extras + tuple(fields.values()) + trait_props)
    )

    synonyms = sentiment_values(settings.source_config(SOURCE).model_extra or {}, SOURCE)
    if {"sentiment_note", "sentiment_date"} & set(fields) and "sentiment" not in fields:
        raise ConfigError(
            "hubspot fields sentiment_note and sentiment_date need fields.sentiment too "
            "(the company property holding green, yellow or red) in the sources file"
        )

    def company(raw: Mapping[str, Any]) -> list[Record]:
        return map_company(raw, opts.segment_property, fields, synonyms, traits)

    def company_history(raw: Mapping[str, Any]) -> list[Record]:
        """A company with its history; one too broken to map is left to the search stream,
        which lists it next and quarantines it there (once, not once per listing)."""
        try:
            return company(raw)
        except (MappingError, LookupError, TypeError, ValueError, AttributeError) as exc:
            log.warning("hubspot company %s: its history is left out: %s", raw.get("id"), exc)
            return []

    def rollups(session: Session) -> None:
        set_account_rollups(
            session, arr="arr" not in fields, renewal_date="renewal_date" not in fields
        )
        if "sentiment" in fields:
            record_crm_sentiment(session, SOURCE)

    def archived(properties: Sequence[str]) -> Query:
        return lambda _ctx: {
            "archived": "true",
            "limit": cfg.page_size,
            "properties": ",".join(properties),
        }

    def searched(properties: Sequence[str]) -> Query:
        return lambda ctx: _search_body(properties, limit, ctx)

    fingerprint = "history:" + ",".join(sorted(set(trait_props)))

    def with_history(archived: bool) -> Query:
        def query(ctx: StartContext) -> Mapping[str, Any] | None:
            if ctx.cursor == fingerprint and ctx.since is None:
                return None  # listed already for these properties: the search keeps up
            return {
                **({"archived": "true"} if archived else {}),
                "limit": min(cfg.page_size, opts.history_limit),
                "properties": ",".join(company_props),
                "propertiesWithHistory": ",".join(dict.fromkeys(trait_props)),
            }

        return query

    def listed(page: Page) -> str | None:
        return fingerprint if page.is_last else None  # a listing stopped part-way runs again

    histories = tuple(
        StreamSpec(
            name=name,
            path="/crm/v3/objects/companies",
            query=with_history(archived),
            records_key="results",
            paginator=CursorAfterPaginator,
            mapper=company_history,
            cursor_kind=CursorKind.OPAQUE,
            cursor=listed,
        )
        for name, archived in HISTORY_STREAMS.items()
        if trait_props
    )

    streams = (
        StreamSpec(
            name="owners",
            path="/crm/v3/owners",
            query=lambda _ctx: {"limit": cfg.page_size},
            records_key="results",
            paginator=CursorAfterPaginator,
            mapper=map_owner,
        ),
        *histories,
        StreamSpec(
            name="companies",
            path="/crm/v3/objects/companies/search",
            method="POST",
            query=searched(company_props),
            records_key="results",
            paginator=lambda: SearchPaginator(limit, opts.result_cap),
            mapper=company,
            cursor_kind=CursorKind.TIMESTAMP,
            cursor=max_timestamp(_modified),
            total_key="total",
        ),
        StreamSpec(
            name="archived_companies",
            path="/crm/v3/objects/companies",
            query=archived(company_props),
            records_key="results",
            paginator=CursorAfterPaginator,
            mapper=company,
        ),
        StreamSpec(
            name="deals",
            path="/crm/v3/objects/deals/search",
            method="POST",
            query=searched(DEAL_PROPERTIES),
            records_key="results",
            paginator=lambda: SearchPaginator(limit, opts.result_cap),
            mapper=map_deal,
            cursor_kind=CursorKind.TIMESTAMP,
            cursor=max_timestamp(_modified),
            enrich=_with_companies(opts.association_batch),
            total_key="total",
        ),
        StreamSpec(
            name="archived_deals",
            path="/crm/v3/objects/deals",
            query=archived(("dealname",)),
            records_key="results",
            paginator=CursorAfterPaginator,
            mapper=map_archived_deal,
        ),
    )
    return Connector(
        source=SOURCE,
        streams=streams,
        open=lambda: HttpClient(http, client),
        secrets=(cfg.token,),
        finalize=rollups,
    )
