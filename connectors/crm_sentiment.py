"""CSM sentiment kept in a CRM field: read it from the account, keep its history as entries.

Many teams already keep a "CSM health" picklist on the CRM account. An admin maps it in the
sources file (`fields.sentiment`, optionally `fields.sentiment_note` and
`fields.sentiment_date`), and values other than green, yellow and red are translated by a
`sentiment_values` table (`{ "At risk" = "red" }`). The CRM mapper stores the current value
on the account (`crm_sentiment*` columns); after the sync, `record_crm_sentiment` adds one
`SentimentEntry` per change in a single INSERT ... SELECT, so the scorer sees the same
history whichever way the CSM gave the call (Slack, the CLI or the CRM) and its age.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, insert, literal, or_, select
from sqlmodel import Session

from connectors.base import table_of
from connectors.errors import MappingError
from settings import ConfigError
from store.models import Account, SentimentEntry
from store.types import UTCDateTime, utcnow

__all__ = [
    "SENTIMENTS",
    "SENTIMENT_FIELDS",
    "normalise_sentiment",
    "origin",
    "record_crm_sentiment",
    "sentiment_values",
]

SENTIMENTS = ("green", "yellow", "red")
SENTIMENT_FIELDS = ("sentiment", "sentiment_note", "sentiment_date")
"""Account fields a sources file may map to CRM properties for the CSM's sentiment."""


def origin(source: str) -> str:
    """The `origin` of entries derived from this CRM's field, e.g. `crm:hubspot`."""
    return f"crm:{source}"


def sentiment_values(options: Mapping[str, object], source: str) -> dict[str, str]:
    """The `sentiment_values` table of a source's section, keys folded to lower case."""
    table = options.get("sentiment_values") or {}
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{source}] sentiment_values must be a table of value = colour")
    folded: dict[str, str] = {}
    for key, colour in table.items():
        if colour not in SENTIMENTS:
            raise ConfigError(
                f"[{source}.sentiment_values] {key!r} = {colour!r}: use green, yellow or red"
            )
        folded[str(key).strip().lower()] = colour
    return folded


def normalise_sentiment(
    value: object, synonyms: Mapping[str, str], property_name: str, source: str
) -> str | None:
    """A CRM value as green/yellow/red; empty is None; anything else is a MappingError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    key = str(value).strip().lower()
    if key in SENTIMENTS:
        return key
    if key in synonyms:
        return synonyms[key]
    raise MappingError(
        f"{property_name} {value!r} is not green, yellow or red: translate it in "
        f"[{source}.sentiment_values] of the sources file, then retry the quarantine"
    )


def record_crm_sentiment(session: Session, source: str, now: datetime | None = None) -> int:
    """Add a sentiment entry for each live account whose CRM sentiment changed; returns how many.

    A change is a new colour or note, or (when the CRM keeps the date of the call) a later
    date, which re-confirms the same colour. The entry is dated by the CRM's date when mapped,
    else by the account's last modification: the earliest moment the agent can vouch for.
    """
    accounts = table_of(Account).c
    entries = table_of(SentimentEntry)
    e = entries.c
    tag = origin(source)
    ranked = (
        select(
            e.account_id,
            e.sentiment,
            e.note,
            e.recorded_at,
            func.row_number()
            .over(partition_by=e.account_id, order_by=(e.recorded_at.desc(), e.id.desc()))
            .label("rn"),
        )
        .where(e.origin == tag)
        .subquery()
    )
    latest = select(ranked).where(ranked.c.rn == 1).subquery()
    stamp = literal(now or utcnow(), UTCDateTime())
    when: ColumnElement[datetime] = func.coalesce(
        accounts.crm_sentiment_at, accounts.updated_at, stamp
    )
    note = func.coalesce(accounts.crm_sentiment_note, literal(""))
    changed = or_(
        latest.c.account_id.is_(None),
        latest.c.sentiment != accounts.crm_sentiment,
        latest.c.note != note,
        and_(
            accounts.crm_sentiment_at.is_not(None),
            accounts.crm_sentiment_at > latest.c.recorded_at,
        ),
    )
    rows = (
        select(
            accounts.id,
            accounts.crm_sentiment,
            note,
            accounts.owner_email,
            literal(tag),
            when,
        )
        .select_from(table_of(Account).outerjoin(latest, latest.c.account_id == accounts.id))
        .where(
            accounts.source == source,
            accounts.deleted_at.is_(None),
            accounts.crm_sentiment.in_(SENTIMENTS),
            changed,
        )
    )
    columns = ["account_id", "sentiment", "note", "author_email", "origin", "recorded_at"]
    added = session.execute(insert(entries).from_select(columns, rows).returning(e.id))
    return len(added.all())
