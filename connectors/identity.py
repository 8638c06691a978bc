"""Which account does each synced record belong to: set-based matching after every sync.

Accounts come from the CRM, and each gets an `ExternalLink` of method `crm` to itself.
Account-like objects of other systems (helpdesk organizations, billing customers, usage
rows) are links waiting to be resolved, in this order:

1. explicit id: the CRM id kept in the other system (`crm_hint`) names an account
   -> `explicit_id`, confidence 1.0;
2. domain: exactly one live account has the link's domain (free-mail domains never count)
   -> `domain`, confidence 0.8; several accounts -> `ambiguous`, with the reason;
3. otherwise `unmatched`, with the reason.

Links an admin set by hand (method `manual`) are never touched. Then every record's
`account_id` follows from `(source, account_ref)` through the links, and each account's
`owner_email` from its CRM owner. A handful of UPDATE / INSERT ... SELECT statements do all
of it, whatever the number of records; unmatched records are kept with no account.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlmodel import Session

from connectors.base import table_of
from store.models import (
    Account,
    Contact,
    Csm,
    ExternalLink,
    Invoice,
    Opportunity,
    Subscription,
    SurveyResponse,
    Ticket,
    UsageMetric,
    UsageSnapshot,
)
from store.types import UTCDateTime, utcnow

__all__ = [
    "FREE_MAIL_DOMAINS",
    "LinkError",
    "link_manually",
    "resolve_identities",
    "unmatched_links",
]

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "hotmail.co.uk",
        "live.com",
        "msn.com",
        "yahoo.com",
        "yahoo.co.uk",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.net",
        "gmx.de",
        "web.de",
        "mail.com",
        "zoho.com",
        "yandex.com",
        "yandex.ru",
        "mail.ru",
        "qq.com",
        "163.com",
        "fastmail.com",
        "hey.com",
    }
)
RECORD_MODELS = (
    Ticket,
    Subscription,
    Invoice,
    UsageSnapshot,
    UsageMetric,
    SurveyResponse,
    Opportunity,
    Contact,
)

_links = table_of(ExternalLink)
_accounts = table_of(Account)
L, A = _links.c, _accounts.c
S = _accounts.alias("survivor")
MERGED_INTO = and_(
    S.c.source == A.source, S.c.external_id == A.merged_into, S.c.deleted_at.is_(None)
)
"""Join condition: `survivor` is the live account that `accounts` was merged into."""


def _link_crm_accounts(session: Session, now: datetime) -> None:
    """Every account is linked to itself (method `crm`); such links follow the account."""
    stamp = literal(now, UTCDateTime())
    missing = select(
        A.source,
        A.external_id,
        literal("account"),
        A.name,
        A.domain,
        A.external_id,
        A.id,
        literal("matched"),
        literal("crm"),
        cast(literal(1.0), Float),
        stamp,
        A.deleted_at,
        stamp,
    ).where(~exists().where(L.source == A.source, L.external_id == A.external_id))
    columns = ["source", "external_id", "kind", "name", "domain", "crm_hint", "account_id"]
    columns += ["status", "method", "confidence", "matched_at", "deleted_at", "updated_at"]
    session.execute(insert(_links).from_select(columns, missing))

    def of_account(column: ColumnElement[object]) -> ColumnElement[object]:
        return (
            select(column)
            .where(A.source == L.source, A.external_id == L.external_id)
            .scalar_subquery()
        )

    def of_survivor(name: str) -> ColumnElement[object]:
        """The column of the account this one was merged into, else of the account itself."""
        return (
            select(func.coalesce(S.c[name], A[name]))
            .select_from(_accounts.outerjoin(S, MERGED_INTO))
            .where(A.source == L.source, A.external_id == L.external_id)
            .scalar_subquery()
        )

    session.execute(
        update(_links)
        .where(L.method == "crm")
        .values(
            account_id=of_survivor("id"),
            name=of_account(A.name),
            domain=of_account(A.domain),
            crm_hint=L.external_id,
            deleted_at=of_survivor("deleted_at"),
        )
    )


def _match_links(session: Session, now: datetime) -> None:
    """Resolve every link that is neither the CRM's own nor set by hand."""
    candidate = or_(L.method.is_(None), L.method.not_in(("crm", "manual")))
    hinted_id = (  # an account merged away in the CRM hands its links to the survivor
        select(func.min(func.coalesce(S.c.id, A.id)))
        .select_from(_accounts.outerjoin(S, MERGED_INTO))
        .where(A.external_id == L.crm_hint)
        .scalar_subquery()
    )
    hint_matches = exists().where(A.external_id == L.crm_hint)
    live_domain = and_(A.domain == L.domain, A.deleted_at.is_(None))
    domain_count = select(func.count()).where(live_domain).scalar_subquery()
    domain_id = select(func.min(A.id)).where(live_domain).scalar_subquery()
    free = L.domain.in_(sorted(FREE_MAIL_DOMAINS))
    usable_domain = and_(L.domain.is_not(None), ~free)
    not_hinted = and_(candidate, ~hint_matches)

    def matched(
        method: str, confidence: float, account: ColumnElement[int], rule: ColumnElement[bool]
    ) -> None:
        unchanged = and_(
            L.method.is_not_distinct_from(method),
            L.account_id.is_not_distinct_from(account),
            L.status == "matched",
        )
        session.execute(
            update(_links)
            .where(rule, ~unchanged)
            .values(
                account_id=account,
                status="matched",
                method=method,
                confidence=confidence,
                reason=None,
                matched_at=now,
            )
        )

    matched("explicit_id", 1.0, hinted_id, and_(candidate, hint_matches))
    matched("domain", 0.8, domain_id, and_(not_hinted, usable_domain, domain_count == 1))

    unresolved = {"account_id": None, "method": None, "confidence": 0.0, "matched_at": None}
    shared = cast(domain_count, String) + literal(" live accounts share the domain ") + L.domain
    session.execute(
        update(_links)
        .where(not_hinted, usable_domain, domain_count > 1)
        .values(status="ambiguous", reason=shared, **unresolved)
    )
    hint_part = case(
        (
            L.crm_hint.is_not(None),
            literal("CRM id ") + L.crm_hint + literal(" matches no account; "),
        ),
        else_=literal("no CRM id; "),
    )
    domain_part = case(
        (L.domain.is_(None), literal("no domain to match on")),
        (free, literal("free-mail domain ") + L.domain + literal(" cannot identify an account")),
        else_=literal("no live account has the domain ") + L.domain,
    )
    session.execute(
        update(_links)
        .where(not_hinted, ~and_(usable_domain, domain_count >= 1))
        .values(status="unmatched", reason=hint_part + domain_part, **unresolved)
    )


def _fill_account_ids(session: Session) -> None:
    """Each record's account follows from its `(source, account_ref)` link."""
    tickets = table_of(Ticket).c
    for model in RECORD_MODELS:  # tickets first: CSAT answers may resolve through them
        table = table_of(model)
        rows = table.c
        target: ColumnElement[int] = (
            select(L.account_id)
            .where(L.source == rows.source, L.external_id == rows.account_ref)
            .scalar_subquery()
        )
        has_ref: ColumnElement[bool] = rows.account_ref.is_not(None)
        if model is SurveyResponse:  # answers that know only their ticket (same source)
            via_ticket = (
                select(tickets.account_id)
                .where(tickets.source == rows.source, tickets.external_id == rows.ticket_ref)
                .scalar_subquery()
            )
            target = func.coalesce(target, via_ticket)
            has_ref = or_(has_ref, rows.ticket_ref.is_not(None))
        session.execute(
            update(table)
            .where(has_ref, rows.account_id.is_distinct_from(target))
            .values(account_id=target)
        )


def _fill_owner_emails(session: Session) -> None:
    csms = table_of(Csm).c
    email = (
        select(csms.email)
        .where(csms.source == A.source, csms.external_id == A.owner_external_id)
        .scalar_subquery()
    )
    session.execute(
        update(_accounts).where(A.owner_email.is_distinct_from(email)).values(owner_email=email)
    )


def resolve_identities(session: Session, now: datetime | None = None) -> dict[str, int]:
    """Match links, then fill account ids and owner emails; returns live links by status."""
    now = now or utcnow()
    _link_crm_accounts(session, now)
    _match_links(session, now)
    _fill_account_ids(session)
    _fill_owner_emails(session)
    counts = session.execute(
        select(L.status, cast(func.count(), Integer))
        .where(L.deleted_at.is_(None))
        .group_by(L.status)
    ).all()
    return {status: count for status, count in counts}


def unmatched_links(session: Session) -> list[ExternalLink]:
    """Live links that wait for a person: unmatched or ambiguous, with their reasons."""
    query = (
        select(ExternalLink)
        .where(L.status != "matched", L.deleted_at.is_(None))
        .order_by(L.source, L.kind, L.external_id)
    )
    return list(session.execute(query).scalars())


class LinkError(LookupError):
    """An admin's link decision names a record or an account that is not there."""


def link_manually(
    session: Session, source: str, external_id: str, account_id: int, now: datetime | None = None
) -> ExternalLink:
    """An admin's decision: this record of `source` belongs to `account_id`, for good.

    The link becomes method `manual` (confidence 1.0), which matching never overwrites, and
    every record that hangs off it takes the account at once.
    """
    link: ExternalLink | None = session.execute(
        select(ExternalLink).where(L.source == source, L.external_id == external_id)
    ).scalar_one_or_none()
    if link is None:
        raise LinkError(
            f"{source} has no record {external_id!r} to link: see `health-agent sources unmatched`"
        )
    account = session.get(Account, account_id)
    if account is None or account.deleted_at is not None:
        raise LinkError(f"no live account with id {account_id}")
    if link.method == "crm":
        raise LinkError(f"{source} {external_id} is a CRM account itself; it links to itself")
    link.account_id = account_id
    link.method = "manual"
    link.status = "matched"
    link.confidence = 1.0
    link.reason = None
    link.matched_at = now or utcnow()
    session.add(link)
    session.flush()
    _fill_account_ids(session)
    return link
