"""Salesforce (REST API, SOQL): users and their roles, accounts, opportunities, and deletes.

Every stream is one SOQL query on `/services/data/vNN.N/query`, read incrementally with
`SystemModstamp >` the committed cursor (minus the engine's lookback), oldest first, and
paged by following `nextRecordsUrl` until `done`. Deleted accounts and opportunities are
read the same way from `queryAll` with `IsDeleted = true` (the recycle bin keeps them about
15 days) and become soft deletes. Inactive users are soft-deleted CSMs; a user's role is
their team. Once the source has synced, `finalize` sets each account's ARR (latest won
opportunity) and renewal date (earliest open renewal). In the sources file,
`[salesforce.fields]` maps `renewal_date`, `arr` and `segment` to (custom) Account fields,
which then win over the rollups, and `opportunity_arr` to the Opportunity field holding a
deal's ARR when `Amount` is not annual; `renewal_types` names the Opportunity types that
are renewals (default `["Renewal"]`). `[salesforce.traits]` names Account fields read into
account traits (`plan = "Plan__c"`, or `{ property = "Plan__c", kind = "category" }`), seen at the
account's last modification and written once the page's accounts are stored.

Auth is a connected app, client credentials or the JWT bearer flow: `SalesforceAuth` in
`connectors.salesforce_auth`, re-exported here with its grants. The org's API allocation is a
rolling 24 hours reported on every response (`Sforce-Limit-Info: api-usage=n/limit`); the
client stops while `SALESFORCE__LIMIT_RESERVE` of it is left, and a 403
`REQUEST_LIMIT_EXCEEDED` (Salesforce's answer when it is spent: no 429, no Retry-After)
stops the source instead of being retried.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import httpx
from sqlmodel import Session

from connectors.base import (
    Connector,
    CursorKind,
    Record,
    Request,
    StartContext,
    StreamSpec,
    max_timestamp,
    normalise_domain,
    parse_iso,
    record_id,
    to_minor,
)
from connectors.crm_sentiment import (
    SENTIMENT_FIELDS,
    normalise_sentiment,
    record_crm_sentiment,
    sentiment_values,
)
from connectors.errors import FatalError, MappingError, RetriableError, SyncError, one_line
from connectors.http import (
    Allocation,
    AllocationExhaustedError,
    ClientOptions,
    HttpClient,
    HttpSource,
)
from connectors.hubspot import set_account_rollups
from connectors.paginators import Paginator
from connectors.salesforce_auth import (
    ClientCredentials,
    JwtBearer,
    SalesforceAuth,
    grant_from_settings,
)
from connectors.trait_records import crm_trait_records, crm_traits
from settings import ConfigError, Settings, TraitField
from store.models import Account, Csm, Opportunity, Team

__all__ = [
    "ACCOUNT_FIELDS",
    "LIMIT_HEADER",
    "MAPPABLE_FIELDS",
    "OPPORTUNITY_FIELDS",
    "SOURCE",
    "USER_FIELDS",
    "ClientCredentials",
    "JwtBearer",
    "NextRecordsUrlPaginator",
    "SalesforceAuth",
    "api_usage",
    "build",
    "map_account",
    "map_opportunity",
    "map_user",
    "soql",
    "vendor_error",
]

SOURCE = "salesforce"
LIMIT_HEADER = "Sforce-Limit-Info"
MODIFIED = "SystemModstamp"
USER_FIELDS = ("Id", "Name", "Email", "IsActive", "UserRoleId", "UserRole.Name", MODIFIED)
ACCOUNT_FIELDS = (
    "Id",
    "Name",
    "Website",
    "OwnerId",
    "AnnualRevenue",  # the customer's own revenue, not its ARR with us: kept in the raw record
    "Type",
    "Industry",
    "CreatedDate",
    "IsDeleted",
    "MasterRecordId",  # set on an account deleted by a merge: the account that absorbed it
    MODIFIED,
)
OPPORTUNITY_FIELDS = (
    "Id",
    "AccountId",
    "Name",
    "Amount",
    "StageName",
    "CloseDate",
    "IsClosed",
    "IsWon",
    "Type",
    "IsDeleted",
    MODIFIED,
)
ACCOUNT_MAPPABLE = ("renewal_date", "arr", "segment", *SENTIMENT_FIELDS)
MAPPABLE_FIELDS = (*ACCOUNT_MAPPABLE, "opportunity_arr")
"""Keys of `[salesforce.fields]`: account fields kept in (custom) Account fields, and the
Opportunity field holding a deal's ARR when `Amount` is not annual."""
RENEWAL_TYPES = ("Renewal",)
"""Opportunity `Type` values that are renewals; `renewal_types` in the sources file."""
_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*")
_USAGE = re.compile(r"(?:^|[\s;,])api-usage=(\d+)/(\d+)")


# Limits and errors ---------------------------------------------------------------------------


def api_usage(headers: httpx.Headers) -> tuple[float, float] | None:
    """(used, limit) of the org's rolling 24 h allocation from `Sforce-Limit-Info`."""
    match = _USAGE.search(headers.get(LIMIT_HEADER, ""))
    return (float(match[1]), float(match[2])) if match else None


def _errors(response: httpx.Response) -> list[tuple[str, str]]:
    """The (errorCode, message) pairs of a REST API error answer (a JSON array)."""
    try:
        body = response.json()
    except ValueError:
        return []
    items = body if isinstance(body, list) else [body]
    return [
        (str(item.get("errorCode") or ""), str(item.get("message") or ""))
        for item in items
        if isinstance(item, dict)
    ]


def _gist(message: str) -> str:
    """The point of a Salesforce error message: its last line (a query error first echoes
    the query and a caret), up to the end of its first sentence."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    sentence = (lines[-1] if lines else "").partition(". ")[0]
    return one_line(sentence.rstrip("."))


def vendor_error(request: Request, response: httpx.Response) -> SyncError | None:
    """The error a Salesforce error answer means, when its status alone does not say.

    `REQUEST_LIMIT_EXCEEDED` (403) is the spent daily allocation, which no retry within a
    sync can outwait, or too many long-running requests at once, which passes; a 400 names
    its code (a field mapped in the sources file that the org does not have, an expired
    query locator). Anything else is left to the HTTP layer's status rules.
    """
    errors = _errors(response)
    status = response.status_code
    where = f"{request.method} {request.path}"
    for code, message in errors:
        if code != "REQUEST_LIMIT_EXCEEDED":
            continue
        if "concurrent" in message.lower():
            return RetriableError(
                f"salesforce: too many long-running requests at once on {where} "
                f"(HTTP {status} REQUEST_LIMIT_EXCEEDED)",
                status=status,
            )
        usage = api_usage(response.headers)
        spent = f"{usage[0]:g}/{usage[1]:g} in 24 h" if usage else "the org's 24 h allocation"
        return AllocationExhaustedError(
            f"salesforce API allocation exhausted ({spent}): sync resumes from the last "
            f"committed cursor once usage falls; raise the org's allocation or lower the schedule"
        )
    if status != 400 or not errors:
        return None
    code, message = errors[0]
    fix = ""
    if code in ("INVALID_FIELD", "INVALID_TYPE"):
        fix = "; check the field names under [salesforce.fields] in the sources file"
    return FatalError(f"salesforce: HTTP 400 on {where}: {code}: {_gist(message)}{fix}")


# Paging and queries ------------------------------------------------------------------------


class NextRecordsUrlPaginator(Paginator):
    """SOQL results: while `done` is false, GET the `nextRecordsUrl` the page names."""

    def read_token(self, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        url = body.get("nextRecordsUrl")
        return body.get("done") is False, url if isinstance(url, str) and url else None

    def place_token(self, request: Request, token: str) -> Request:
        return Request("GET", token)


def _soql_time(moment: datetime) -> str:
    """A SOQL datetime literal, cut to the second (a lower bound only widens a `>` filter)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql(
    sobject: str,
    fields: Sequence[str],
    since: datetime | None,
    *,
    deleted: bool = False,
    where: Sequence[str] = (),
) -> str:
    """`SELECT fields FROM sobject WHERE ... ORDER BY SystemModstamp ASC, Id ASC`."""
    conditions = [*where, *(["IsDeleted = true"] if deleted else [])]
    if since is not None:
        conditions.append(f"{MODIFIED} > {_soql_time(since)}")
    # SOQL, not SQL: names are constants or API names validated from the sources file.
    text = f"SELECT {', '.join(dict.fromkeys(fields))} FROM {sobject}"  # noqa: S608
    if conditions:
        text += f" WHERE {' AND '.join(conditions)}"
    return f"{text} ORDER BY {MODIFIED} ASC, Id ASC"


# Mappers -------------------------------------------------------------------------------------


def _value(raw: Mapping[str, Any], name: str) -> Any:
    """A field of a record; `Owner.Email` reads through the relationship's nested record."""
    value: Any = raw
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _id(raw: Mapping[str, Any], what: str) -> str:
    value = raw.get("Id")
    if not isinstance(value, str) or not value:
        raise MappingError(f"{what} record without an Id")
    return value


def _modified(raw: Mapping[str, Any], what: str) -> datetime:
    stamp = parse_iso(raw.get(MODIFIED), MODIFIED)
    if stamp is None:
        raise MappingError(f"{what} {raw.get('Id')} has no {MODIFIED}")
    return stamp


def _cursor_stamp(raw: Mapping[str, Any]) -> datetime | None:
    """A record's SystemModstamp for the cursor; None for one too broken to say."""
    try:
        return parse_iso(raw.get(MODIFIED), MODIFIED)
    except MappingError:
        return None


def _record_key(raw: Mapping[str, Any]) -> str:
    value = raw.get("Id")
    return value if isinstance(value, str) and value else record_id(raw)


def _deleted_at(raw: Mapping[str, Any], modified: datetime) -> datetime | None:
    """A record in the recycle bin was deleted when it last changed."""
    return modified if raw.get("IsDeleted") is True else None


def _date(value: object, name: str) -> date | None:
    """A Date field (`YYYY-MM-DD`), or the day of a DateTime field; empty is None."""
    if value in (None, ""):
        return None
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    try:
        moment = parse_iso(value, name)
    except MappingError:
        raise MappingError(f"{name} {value!r} is not a date") from None
    return moment.date() if moment else None


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def map_user(raw: Mapping[str, Any]) -> list[Record]:
    """A user -> a Csm row (inactive users soft-deleted), and a Team row for their role."""
    email = raw.get("Email")
    if not email:
        raise MappingError(f"user {raw.get('Id')} has no email")
    modified = _modified(raw, "user")
    role = raw.get("UserRoleId") or None
    csm = {
        "external_id": _id(raw, "user"),
        "email": str(email).lower(),
        "name": raw.get("Name") or "",
        "team_external_id": role,
        "deleted_at": None if raw.get("IsActive") is not False else modified,
        "updated_at": modified,
    }
    if role is None:
        return [Record(Csm, csm)]
    team = {"external_id": str(role), "name": _value(raw, "UserRole.Name") or f"role {role}"}
    return [Record(Csm, csm), Record(Team, team)]


def map_account(
    raw: Mapping[str, Any],
    fields: Mapping[str, str] | None = None,
    sentiment_synonyms: Mapping[str, str] | None = None,
    traits: Mapping[str, TraitField] | None = None,
) -> list[Record]:
    """An account -> an Account row (one in the recycle bin is soft-deleted), and the values
    of its `traits` (trait name -> Account field), seen at its last modification.

    `fields` maps account fields (renewal_date, arr, segment, the CSM's sentiment) to the
    Account fields that hold them in this org, e.g. {"renewal_date": "Renewal_Date__c"};
    mapped values win over the ones derived from opportunities. An account deleted by a
    merge names the account that absorbed it (`MasterRecordId`), whose records it hands on.
    """
    modified = _modified(raw, "account")
    external_id = _id(raw, "account")
    domain = normalise_domain(raw.get("Website"))
    values: dict[str, Any] = {
        "external_id": external_id,
        "name": raw.get("Name") or domain or f"account {external_id}",
        "domain": domain,
        "owner_external_id": raw.get("OwnerId") or None,
        "lifecycle_stage": raw.get("Type") or None,
        "created_at": parse_iso(raw.get("CreatedDate"), "CreatedDate"),
        "updated_at": modified,
        "deleted_at": _deleted_at(raw, modified),
    }
    fields = fields or {}
    if "segment" in fields:
        values["segment"] = _text(_value(raw, fields["segment"]))
    if "renewal_date" in fields:
        name = fields["renewal_date"]
        values["renewal_date"] = _date(_value(raw, name), name)
    if "arr" in fields:
        values["arr_minor"] = to_minor(_value(raw, fields["arr"]), fields["arr"])
    if "sentiment" in fields:
        name = fields["sentiment"]
        note = _text(_value(raw, fields["sentiment_note"])) if "sentiment_note" in fields else None
        when = None
        if "sentiment_date" in fields:
            day = _date(_value(raw, fields["sentiment_date"]), fields["sentiment_date"])
            when = None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)
        values["crm_sentiment"] = normalise_sentiment(
            _value(raw, name), sentiment_synonyms or {}, name, SOURCE
        )
        values["crm_sentiment_note"] = note
        values["crm_sentiment_at"] = when
    if values["deleted_at"] is not None and raw.get("MasterRecordId"):
        values["merged_into"] = str(raw["MasterRecordId"])
    found = crm_trait_records(external_id, lambda name: _value(raw, name), traits or {}, modified)
    return [Record(Account, values), *found]


def map_opportunity(raw: Mapping[str, Any], arr_field: str | None = None) -> list[Record]:
    """An opportunity -> an Opportunity row; its ARR is `arr_field` when mapped, else Amount."""
    modified = _modified(raw, "opportunity")
    kind = raw.get("Type")
    arr_name = arr_field or "Amount"
    values = {
        "external_id": _id(raw, "opportunity"),
        "account_ref": raw.get("AccountId") or None,
        "name": raw.get("Name") or None,
        "kind": kind.strip().lower() if isinstance(kind, str) and kind.strip() else None,
        "stage": raw.get("StageName") or None,
        "amount_minor": to_minor(raw.get("Amount"), "Amount"),
        "arr_minor": to_minor(_value(raw, arr_name), arr_name),
        "close_date": _date(raw.get("CloseDate"), "CloseDate"),
        "is_closed": raw.get("IsClosed") is True,
        "is_won": raw.get("IsWon") is True,
        "updated_at": modified,
        "deleted_at": _deleted_at(raw, modified),
    }
    return [Record(Opportunity, values)]


# The connector -------------------------------------------------------------------------------


def _mapped_fields(fields: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(set(fields) - set(MAPPABLE_FIELDS))
    if unknown:
        raise ConfigError(
            f"salesforce fields {', '.join(unknown)} cannot be mapped in the sources file: "
            f"use {', '.join(MAPPABLE_FIELDS)}"
        )
    for key, name in fields.items():
        if not _API_NAME.fullmatch(name):
            raise ConfigError(
                f"[salesforce.fields] {key} = {name!r} is not a field API name "
                f"(like ARR__c, or Parent.Segment__c through a relationship)"
            )
    return dict(fields)


def _renewal_kinds(options: Mapping[str, Any]) -> tuple[str, ...]:
    value = options.get("renewal_types", RENEWAL_TYPES)
    valid = isinstance(value, list | tuple) and value
    if not valid or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(
            '[salesforce] renewal_types must be a list of Opportunity Type values, e.g. ["Renewal"]'
        )
    return tuple(v.strip().lower() for v in value)


def _stream(
    name: str,
    path: str,
    sobject: str,
    fields: Sequence[str],
    mapper: Callable[[Mapping[str, Any]], Sequence[Record]],
    *,
    deleted: bool = False,
    where: Sequence[str] = (),
) -> StreamSpec:
    def query(ctx: StartContext) -> Mapping[str, Any]:
        return {"q": soql(sobject, fields, ctx.since, deleted=deleted, where=where)}

    return StreamSpec(
        name=name,
        path=path,
        query=query,
        records_key="records",
        paginator=NextRecordsUrlPaginator,
        mapper=mapper,
        cursor_kind=CursorKind.TIMESTAMP,
        cursor=max_timestamp(_cursor_stamp),
        record_key=_record_key,
        total_key="totalSize",
    )


def build(settings: Settings, client: ClientOptions | None = None) -> Connector:
    """The Salesforce connector for these settings."""
    cfg = settings.salesforce
    if not cfg.enabled():
        raise ConfigError(
            "salesforce is not configured: set SALESFORCE__CLIENT_ID with "
            "SALESFORCE__CLIENT_SECRET, or with SALESFORCE__USERNAME and "
            "SALESFORCE__PRIVATE_KEY_FILE, in .env"
        )
    grant = grant_from_settings(cfg, (client or ClientOptions()).clock)
    section = settings.source_config(SOURCE)
    fields = _mapped_fields(section.fields)
    renewal_kinds = _renewal_kinds(section.model_extra or {})
    account_fields = {k: v for k, v in fields.items() if k in ACCOUNT_MAPPABLE}
    traits = crm_traits(SOURCE, cfg.traits, section.traits)
    for name, trait in traits.items():
        if not _API_NAME.fullmatch(trait.property):
            raise ConfigError(
                f"[salesforce.traits] {name} = {trait.property!r} is not a field API name "
                f"(like Plan__c, or Parent.Industry through a relationship)"
            )
    synonyms = sentiment_values(section.model_extra or {}, SOURCE)
    if {"sentiment_note", "sentiment_date"} & set(fields) and "sentiment" not in fields:
        raise ConfigError(
            "salesforce fields sentiment_note and sentiment_date need fields.sentiment too "
            "(the Account field holding green, yellow or red) in the sources file"
        )
    arr_field = fields.get("opportunity_arr")
    secrets = (cfg.client_secret,) if cfg.client_secret is not None else ()
    allocation = Allocation(
        header=LIMIT_HEADER,
        usage=api_usage,
        reserve=cfg.limit_reserve,
        advice="raise the org's allocation, lower the schedule or SALESFORCE__LIMIT_RESERVE",
    )

    def open_client() -> HttpClient:
        http = HttpSource(
            source=SOURCE,
            base_url=cfg.login_url.rstrip("/"),
            auth=SalesforceAuth(grant, cfg.login_url),
            credential="the access token",
            settings_hint=grant.hint,
            secrets=secrets,
            headers={"Sforce-Query-Options": f"batchSize={cfg.page_size}"},
            errors=vendor_error,
            allocation=allocation,
        )
        return HttpClient(http, client)

    def account(raw: Mapping[str, Any]) -> list[Record]:
        return map_account(raw, account_fields, synonyms, traits)

    def opportunity(raw: Mapping[str, Any]) -> list[Record]:
        return map_opportunity(raw, arr_field)

    def rollups(session: Session) -> None:
        set_account_rollups(
            session,
            source=SOURCE,
            renewal_kinds=renewal_kinds,
            arr="arr" not in fields,
            renewal_date="renewal_date" not in fields,
        )
        if "sentiment" in fields:
            record_crm_sentiment(session, SOURCE)

    api = f"/services/data/v{cfg.api_version.removeprefix('v')}"
    query, query_all = f"{api}/query", f"{api}/queryAll"
    trait_fields = (t.property for t in traits.values())
    accounts = tuple(dict.fromkeys((*ACCOUNT_FIELDS, *account_fields.values(), *trait_fields)))
    opportunities = (*OPPORTUNITY_FIELDS, *([arr_field] if arr_field else []))
    streams = (
        _stream("users", query, "User", USER_FIELDS, map_user, where=("UserType = 'Standard'",)),
        _stream("accounts", query, "Account", accounts, account),
        _stream("deleted_accounts", query_all, "Account", accounts, account, deleted=True),
        _stream("opportunities", query, "Opportunity", opportunities, opportunity),
        _stream(
            "deleted_opportunities",
            query_all,
            "Opportunity",
            opportunities,
            opportunity,
            deleted=True,
        ),
    )
    return Connector(
        source=SOURCE,
        streams=streams,
        open=open_client,
        secrets=secrets,
        finalize=rollups,
    )
