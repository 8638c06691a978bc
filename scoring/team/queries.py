"""The set-based queries of a team report: a fixed handful, whatever the size of the book.

Each function runs one aggregate query over every account at once and returns plain values
keyed by account id (or by the lower-case email of a CSM, an alert's recipient, a task's
assignee). Times are point in time: a row counts once stamped before the instant asked for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlmodel import Session, col
from sqlmodel import select as select_models

from scoring.measures import cutoff, subscription_alive_at
from scoring.metrics import TicketTimes, product_adoption
from scoring.team.periods import Period
from store.models import (
    Account,
    Alert,
    Csm,
    HealthScore,
    Opportunity,
    PlaybookTask,
    SentimentEntry,
    Subscription,
    Team,
    UsageSnapshot,
)
from store.money import normalise_currency

__all__ = [
    "SENTIMENT_WINDOW",
    "VALUE_ADOPTION",
    "Billing",
    "Person",
    "TeamKey",
    "accounts",
    "alerts",
    "billing",
    "fresh_sentiment",
    "latest_scores",
    "people",
    "renewals",
    "tasks",
    "value_reached",
]

SENTIMENT_WINDOW = timedelta(days=30)
VALUE_ADOPTION = 0.5
"""Value is reached in a week whose active users are at least this share of the seats."""

TeamKey = tuple[str, str]
"""A team's (source, external id)."""


@dataclass(frozen=True)
class Person:
    """A CSM by lower-case email, with their name and team."""

    email: str
    name: str
    team: TeamKey | None


@dataclass
class Billing:
    """An account's alive subscriptions at the start and the end, and its MRR then in each
    currency it is billed in (minor units of that currency, unconverted)."""

    alive_start: int = 0
    alive_end: int = 0
    mrr: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Currency -> (MRR at the start, MRR at the end); currencies with MRR only."""


def _existed(start: datetime, end: datetime) -> ColumnElement[bool]:
    """Accounts that existed at some time from `start` to `end`."""
    created, deleted = col(Account.created_at), col(Account.deleted_at)
    return and_(or_(created.is_(None), created < end), or_(deleted.is_(None), deleted >= start))


def _rows(session: Session, stmt: Any) -> list[Any]:
    return list(session.connection().execute(stmt).all())


def people(session: Session, end: datetime) -> tuple[dict[str, Person], dict[TeamKey, Team]]:
    """CSMs not deleted by the end, by lower-case email; teams by (source, external id)."""
    deleted = col(Csm.deleted_at)
    stmt = (
        select(col(Csm.email), col(Csm.name), col(Csm.source), col(Csm.team_external_id))
        .where(or_(deleted.is_(None), deleted >= end))
        .order_by(col(Csm.source), col(Csm.id))
    )
    by_email: dict[str, Person] = {}
    for email, name, source, team in _rows(session, stmt):
        key = (email or "").strip().lower()
        if key and key not in by_email:
            by_email[key] = Person(key, name or key, (source, team) if team else None)
    teams = {(t.source, t.external_id): t for t in session.exec(select_models(Team)).all()}
    return by_email, teams


def accounts(session: Session, start: datetime, end: datetime) -> list[Any]:
    """The accounts that existed at some time from `start` to `end`: id, owner's email,
    creation, deletion, the CRM's ARR and its currency."""
    return _rows(
        session,
        select(
            col(Account.id),
            col(Account.owner_email),
            col(Account.created_at),
            col(Account.deleted_at),
            col(Account.arr_minor),
            col(Account.currency),
        ).where(_existed(start, end)),
    )


def billing(session: Session, start: datetime, end: datetime) -> dict[int, Billing]:
    """Per account with subscriptions: MRR by currency and alive subscriptions at the start
    and the end (summed per account and currency here; converted by the caller)."""
    mrr = col(Subscription.mrr_minor)
    stmt = (
        select(
            col(Subscription.account_id),
            col(Subscription.currency),
            func.sum(case((subscription_alive_at(start), mrr), else_=0)),
            func.sum(case((subscription_alive_at(end), mrr), else_=0)),
            func.sum(case((subscription_alive_at(start), 1), else_=0)),
            func.sum(case((subscription_alive_at(end), 1), else_=0)),
        )
        .where(col(Subscription.account_id).is_not(None), col(Subscription.deleted_at).is_(None))
        .group_by(col(Subscription.account_id), col(Subscription.currency))
    )
    by_account: dict[int, Billing] = defaultdict(Billing)
    for account_id, currency, mrr_start, mrr_end, alive_start, alive_end in _rows(session, stmt):
        row = by_account[account_id]
        row.alive_start += int(alive_start or 0)
        row.alive_end += int(alive_end or 0)
        if mrr_start or mrr_end:
            code = normalise_currency(currency)
            before, after = row.mrr.get(code, (0, 0))
            row.mrr[code] = (before + int(mrr_start or 0), after + int(mrr_end or 0))
    return dict(by_account)


def latest_scores(session: Session, day: date) -> dict[int, tuple[float, str]]:
    """Each account's latest score on or before `day`, with its band."""
    ranked = (
        select(
            col(HealthScore.account_id).label("account_id"),
            col(HealthScore.score).label("score"),
            col(HealthScore.band).label("band"),
            func.row_number()
            .over(partition_by=col(HealthScore.account_id), order_by=col(HealthScore.as_of).desc())
            .label("rn"),
        )
        .where(col(HealthScore.as_of) <= day)
        .subquery()
    )
    stmt = select(ranked.c.account_id, ranked.c.score, ranked.c.band).where(ranked.c.rn == 1)
    return {a: (float(score), band) for a, score, band in _rows(session, stmt)}


def renewals(
    session: Session, period: Period, kinds: Sequence[str]
) -> dict[int, tuple[int, int, int]]:
    """Per account: renewals closing in the period, how many won, how many lost."""
    won, closed = col(Opportunity.is_won).is_(True), col(Opportunity.is_closed).is_(True)
    stmt = (
        select(
            col(Opportunity.account_id),
            func.count(),
            func.sum(case((won, 1), else_=0)),
            func.sum(case((and_(closed, ~won), 1), else_=0)),
        )
        .where(
            col(Opportunity.account_id).is_not(None),
            col(Opportunity.deleted_at).is_(None),
            func.lower(col(Opportunity.kind)).in_(tuple(kinds)),
            col(Opportunity.close_date) >= period.start,
            col(Opportunity.close_date) <= period.end,
        )
        .group_by(col(Opportunity.account_id))
    )
    return {a: (int(due), int(w or 0), int(lost or 0)) for a, due, w, lost in _rows(session, stmt)}


def fresh_sentiment(session: Session, end: datetime) -> set[int]:
    """Accounts with a sentiment entry in the `SENTIMENT_WINDOW` before `end`."""
    recorded = col(SentimentEntry.recorded_at)
    stmt = (
        select(col(SentimentEntry.account_id))
        .where(recorded >= end - SENTIMENT_WINDOW, recorded < end)
        .distinct()
    )
    return {account_id for (account_id,) in _rows(session, stmt)}


def value_reached(session: Session, period: Period, since: datetime) -> dict[int, list[datetime]]:
    """Per account created since `since`: the ends of its complete weeks, known by the end
    of the period, in which active users were at least `VALUE_ADOPTION` of the seats."""
    end = cutoff(period.end)
    week = col(UsageSnapshot.period_start)
    stmt = (
        select(
            col(UsageSnapshot.account_id),
            week,
            func.sum(col(UsageSnapshot.active_users)),
            func.sum(func.coalesce(col(UsageSnapshot.licensed_seats), 0)),
        )
        .join(Account, col(Account.id) == col(UsageSnapshot.account_id))
        .where(
            col(Account.created_at) >= since,
            col(Account.created_at) < end,
            col(UsageSnapshot.recorded_at) < end,
            week <= period.end - timedelta(days=6),
            week >= (since - timedelta(days=7)).date(),
        )
        .group_by(col(UsageSnapshot.account_id), week)
    )
    reached: dict[int, list[datetime]] = defaultdict(list)
    for account_id, start, active, seats in _rows(session, stmt):
        adoption = product_adoption(int(active or 0), int(seats or 0))
        if adoption is not None and adoption >= VALUE_ADOPTION:
            reached[account_id].append(cutoff(start + timedelta(days=6)))
    return reached


NOT_ALERTS = ("weekly_digest", "daily_summary", "routing_problem")


def alerts(session: Session, start: datetime, end: datetime) -> list[tuple[str, TicketTimes]]:
    """Alerts sent in the period by recipient: sent as created, acknowledged as answered.

    Weekly digests, daily summaries and routing notices are reading, not alerts to act on:
    left out."""
    sent = col(Alert.sent_at)
    stmt = select(func.lower(col(Alert.recipient_email)), sent, col(Alert.acknowledged_at)).where(
        sent >= start, sent < end, col(Alert.rule).not_in(NOT_ALERTS)
    )
    found = []
    for email, sent_at, acked in _rows(session, stmt):
        answered = max(acked, sent_at) if acked is not None and acked < end else None
        found.append((email or "", TicketTimes(sent_at, first_response_at=answered)))
    return found


def tasks(session: Session, period: Period) -> list[tuple[str, bool]]:
    """Tasks due in the period by assignee, and whether each was completed on time."""
    due = col(PlaybookTask.due_on)
    stmt = select(
        func.lower(col(PlaybookTask.assignee_email)), due, col(PlaybookTask.completed_at)
    ).where(due >= period.start, due <= period.end)
    return [
        (email or "", done is not None and done < cutoff(day))
        for email, day, done in _rows(session, stmt)
    ]
