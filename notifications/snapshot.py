"""What alert detection knows about every account as of a day, read in a few queries.

`take_snapshots` reads the day's health scores with their accounts (one query), and only
for the rules that need them: each account's score before the day and its score some days
earlier (one aggregate query each), its oldest open ticket of the urgent priorities at the
instant of detection (one over the tickets) and its latest CSM sentiment entry (one over
the entries). Never a query per account; the rules then look at plain `AccountSnapshot`s.

A ticket is open at an instant when it was created before and not solved by then; a solved
or closed ticket without `solved_at` counts as solved at its `updated_at` (as the scoring
measures do).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, case, func, or_, select
from sqlmodel import Session, col

from scoring.measures import cutoff
from scoring.scorecard import SIGNALS
from store.models import Account, HealthScore, SentimentEntry, Ticket

__all__ = ["AccountSnapshot", "ScorePoint", "SnapshotNeeds", "take_snapshots"]


@dataclass(frozen=True)
class ScorePoint:
    """An account's score on a day."""

    as_of: date
    score: float
    band: str


@dataclass(frozen=True)
class AccountSnapshot:
    """One live account with its score as of the day, and what the rules may ask about it."""

    account_id: int
    name: str
    owner_email: str | None
    renewal_date: date | None
    arr_minor: int
    currency: str
    current: ScorePoint
    components: Mapping[str, Any]
    drivers: list[str]
    """The texts of the drivers that pull the score down."""
    scorecard_version: str
    previous: ScorePoint | None = None
    """The latest score before the day."""
    earlier: ScorePoint | None = None
    """The latest score on or before the score-drop window's start."""
    urgent_open: int = 0
    urgent_since: datetime | None = None
    """When the oldest open ticket of the urgent priorities was created."""
    sentiment_at: datetime | None = None
    """When the latest CSM sentiment entry was recorded (None: never)."""

    def reading(self, measure: str) -> tuple[Any, Mapping[str, Any]] | None:
        """The stored value and details of a measure of the score, or None without data."""
        for component in self.components.values():
            measures = component.get("measures") if isinstance(component, Mapping) else None
            entry = measures.get(measure) if isinstance(measures, Mapping) else None
            if isinstance(entry, Mapping) and entry.get("value") is not None:
                details = entry.get("details")
                return entry["value"], details if isinstance(details, Mapping) else {}
        return None

    def churned(self) -> bool:
        """True when every subscription of the account has ended: nothing left to alert on."""
        state = self.reading("subscription_state")
        return state is not None and state[0] == "churned"

    def signals(self) -> list[Mapping[str, Any]]:
        """The score's signals (the CSM's call and the data disagreeing)."""
        found = self.components.get(SIGNALS)
        return [s for s in found if isinstance(s, Mapping)] if isinstance(found, list) else []


def _scores_before(session: Session, day: date, *, inclusive: bool) -> dict[int, ScorePoint]:
    """Each account's latest score before `day` (or on it, when `inclusive`)."""
    when = col(HealthScore.as_of) <= day if inclusive else col(HealthScore.as_of) < day
    latest = (
        select(
            col(HealthScore.account_id).label("account_id"),
            func.max(col(HealthScore.as_of)).label("day"),
        )
        .where(when)
        .group_by(col(HealthScore.account_id))
        .subquery()
    )
    stmt = select(
        col(HealthScore.account_id),
        col(HealthScore.as_of),
        col(HealthScore.score),
        col(HealthScore.band),
    ).join(
        latest,
        and_(
            col(HealthScore.account_id) == latest.c.account_id,
            col(HealthScore.as_of) == latest.c.day,
        ),
    )
    return {
        account_id: ScorePoint(day, score, band)
        for account_id, day, score, band in session.connection().execute(stmt)
    }


def _solved_at() -> ColumnElement[datetime]:
    solved_status = col(Ticket.status).in_(("solved", "closed"))
    return func.coalesce(col(Ticket.solved_at), case((solved_status, col(Ticket.updated_at))))


def _urgent_tickets(
    session: Session, instant: datetime, priorities: Collection[str]
) -> dict[int, tuple[int, datetime]]:
    """Per account, how many tickets of `priorities` are open at `instant`, and the oldest's
    creation time."""
    solved = _solved_at()
    stmt = (
        select(col(Ticket.account_id), func.count(), func.min(col(Ticket.created_at)))
        .where(
            col(Ticket.account_id).is_not(None),
            col(Ticket.deleted_at).is_(None),
            func.lower(col(Ticket.priority)).in_([p.lower() for p in priorities]),
            col(Ticket.created_at) < instant,
            or_(solved.is_(None), solved >= instant),
        )
        .group_by(col(Ticket.account_id))
    )
    rows = session.connection().execute(stmt)
    return {account_id: (int(count), oldest) for account_id, count, oldest in rows if account_id}


def _latest_sentiment(session: Session, as_of: date) -> dict[int, datetime]:
    stmt = (
        select(col(SentimentEntry.account_id), func.max(col(SentimentEntry.recorded_at)))
        .where(col(SentimentEntry.recorded_at) < cutoff(as_of))
        .group_by(col(SentimentEntry.account_id))
    )
    return {account_id: at for account_id, at in session.connection().execute(stmt)}


STREAM_CHUNK = 2_000
"""Scores read at a time, so a large book's scores never sit in memory whole."""


@dataclass(frozen=True)
class SnapshotNeeds:
    """Which optional reads the enabled rules need."""

    previous: bool = False
    earlier_days: int | None = None
    urgent_priorities: tuple[str, ...] = ()
    sentiment: bool = False


def _current(session: Session, as_of: date) -> Iterator[Row[Any]]:
    """The day's scores with their accounts' fields, streamed `STREAM_CHUNK` at a time."""
    stmt = (
        select(
            col(HealthScore.account_id),
            col(HealthScore.score),
            col(HealthScore.band),
            col(HealthScore.components),
            col(HealthScore.drivers),
            col(HealthScore.scorecard_version),
            col(Account.name),
            col(Account.owner_email),
            col(Account.renewal_date),
            col(Account.arr_minor),
            col(Account.currency),
        )
        .join(Account, col(Account.id) == col(HealthScore.account_id))
        .where(col(HealthScore.as_of) == as_of, col(Account.deleted_at).is_(None))
        .order_by(col(HealthScore.account_id))
        .execution_options(yield_per=STREAM_CHUNK)
    )
    yield from session.connection().execute(stmt)


def take_snapshots(
    session: Session, as_of: date, instant: datetime, needs: SnapshotNeeds
) -> Iterator[AccountSnapshot]:
    """Every live account scored as of `as_of`, with what `needs` asks for, one at a time
    (the day's scores are streamed; the other reads are small aggregates)."""
    previous = _scores_before(session, as_of, inclusive=False) if needs.previous else {}
    earlier: dict[int, ScorePoint] = {}
    if needs.earlier_days is not None:
        start = date.fromordinal(as_of.toordinal() - needs.earlier_days)
        earlier = _scores_before(session, start, inclusive=True)
    urgent = (
        _urgent_tickets(session, instant, needs.urgent_priorities)
        if needs.urgent_priorities
        else {}
    )
    sentiment = _latest_sentiment(session, as_of) if needs.sentiment else {}
    for row in _current(session, as_of):
        account_id = row.account_id
        count, oldest = urgent.get(account_id, (0, None))
        yield AccountSnapshot(
            account_id=account_id,
            name=row.name,
            owner_email=row.owner_email,
            renewal_date=row.renewal_date,
            arr_minor=row.arr_minor,
            currency=row.currency,
            current=ScorePoint(as_of, row.score, row.band),
            components=row.components or {},
            drivers=[str(d["text"]) for d in row.drivers or [] if d.get("direction") != "positive"],
            scorecard_version=row.scorecard_version,
            previous=previous.get(account_id),
            earlier=earlier.get(account_id),
            urgent_open=count,
            urgent_since=oldest,
            sentiment_at=sentiment.get(account_id),
        )
