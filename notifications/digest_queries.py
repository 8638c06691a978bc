"""The set-based queries of a weekly digest: a fixed handful per team, whatever its size.

Each function runs one query over all of a team's accounts at once and returns plain values
keyed by account id. The team's accounts are a subquery (`book_ids`): those owned by the
team's CSMs, by email without regard to case. Times are point in time: a row counts once
stamped before the instant asked for.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Mapped
from sqlmodel import Session, col
from sqlmodel import select as select_models

from notifications.digest_facts import AlertAcks, DigestTeam, OverdueTask
from scoring.measures import subscription_alive_at
from store.models import Account, Alert, Csm, HealthScore, PlaybookTask, Subscription, Team

__all__ = [
    "CLOSED_TASK_STATUSES",
    "RULE_DIGEST",
    "BookAccount",
    "BookIds",
    "alert_acks",
    "alive_counts",
    "book",
    "book_ids",
    "latest_rows",
    "members",
    "overdue_tasks",
    "teams",
    "weekly_scores",
]

BookIds = Select[int | None]
"""A subquery of account ids: the team's book."""
RULE_DIGEST = "weekly_digest"
"""The rule of the alert rows that record a sent digest; they are not alerts to count."""
CLOSED_TASK_STATUSES = ("done", "completed", "cancelled", "canceled", "dismissed")
"""Statuses of a task that nobody has to do any more, even without a completion time."""


@dataclass(frozen=True)
class BookAccount:
    """One account of a team's book, as the CRM states it now."""

    id: int
    name: str
    owner_email: str
    arr_minor: int
    currency: str
    renewal_date: date | None
    created_at: datetime | None
    deleted_at: datetime | None

    def exists_at(self, instant: datetime) -> bool:
        created, deleted = self.created_at, self.deleted_at
        return (created is None or created < instant) and (deleted is None or deleted >= instant)


def _rows(session: Session, stmt: Any) -> list[Any]:
    return list(session.connection().execute(stmt).all())


def teams(session: Session) -> list[DigestTeam]:
    """Every team by name; a team without `lead_email` takes its CSM marked as lead."""
    deleted = col(Csm.deleted_at)
    leads: dict[tuple[str, str], str] = {}
    stmt = (
        select(col(Csm.source), col(Csm.team_external_id), col(Csm.email))
        .where(col(Csm.is_lead).is_(True), deleted.is_(None))
        .order_by(col(Csm.id))
    )
    for source, team, email in _rows(session, stmt):
        leads.setdefault((source, team or ""), email)
    found = session.exec(select_models(Team).order_by(col(Team.name), col(Team.id))).all()
    return [
        DigestTeam(
            id=int(t.id or 0),
            name=t.name or t.external_id,
            source=t.source,
            external_id=t.external_id,
            lead_email=t.lead_email or leads.get((t.source, t.external_id)),
            channel=t.slack_channel or None,
        )
        for t in found
    ]


def members(session: Session, team: DigestTeam, end: datetime) -> dict[str, str]:
    """The team's CSMs not deleted by `end`: lower-case email -> name."""
    deleted = col(Csm.deleted_at)
    stmt = (
        select(func.lower(col(Csm.email)), col(Csm.name))
        .where(
            col(Csm.source) == team.source,
            col(Csm.team_external_id) == team.external_id,
            or_(deleted.is_(None), deleted >= end),
        )
        .order_by(col(Csm.id))
    )
    found: dict[str, str] = {}
    for email, name in _rows(session, stmt):
        if email:
            found.setdefault(email, name or email)
    return found


def book_ids(emails: Collection[str]) -> BookIds:
    """The ids of the accounts the CSMs with these (lower-case) emails own."""
    return select(col(Account.id)).where(func.lower(col(Account.owner_email)).in_(list(emails)))


def book(
    session: Session, emails: Collection[str], first: datetime, end: datetime
) -> list[BookAccount]:
    """The accounts the CSMs own that existed at some time from `first` to `end`."""
    created, deleted = col(Account.created_at), col(Account.deleted_at)
    stmt = select(
        col(Account.id),
        col(Account.name),
        func.lower(col(Account.owner_email)),
        col(Account.arr_minor),
        col(Account.currency),
        col(Account.renewal_date),
        created,
        deleted,
    ).where(
        func.lower(col(Account.owner_email)).in_(list(emails)),
        or_(created.is_(None), created < end),
        or_(deleted.is_(None), deleted >= first),
    )
    return [
        BookAccount(a, name, owner, int(arr or 0), (currency or "USD").upper(), renewal, c, d)
        for a, name, owner, arr, currency, renewal, c, d in _rows(session, stmt)
    ]


def alive_counts(
    session: Session, ids: BookIds, instants: Sequence[datetime]
) -> dict[int, tuple[int, ...]]:
    """Per account with subscriptions: how many were alive at each instant."""
    stmt = (
        select(
            col(Subscription.account_id),
            *(func.sum(case((subscription_alive_at(t), 1), else_=0)) for t in instants),
        )
        .where(col(Subscription.account_id).in_(ids), col(Subscription.deleted_at).is_(None))
        .group_by(col(Subscription.account_id))
    )
    return {row[0]: tuple(int(n or 0) for n in row[1:]) for row in _rows(session, stmt)}


def _day(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def weekly_scores(
    session: Session, ids: BookIds, days: Sequence[date]
) -> dict[date, dict[int, tuple[float, str]]]:
    """Per day: each account's latest score on or before it, with its band (one query)."""
    weeks = union_all(*(select(literal(day, Date).label("week")) for day in days)).subquery()
    latest = (
        select(
            weeks.c.week,
            col(HealthScore.account_id).label("account_id"),
            func.max(col(HealthScore.as_of)).label("day"),
        )
        .select_from(weeks)
        .join(HealthScore, col(HealthScore.as_of) <= weeks.c.week)
        .where(col(HealthScore.account_id).in_(ids))
        .group_by(weeks.c.week, col(HealthScore.account_id))
        .subquery()
    )
    stmt = select(
        latest.c.week, latest.c.account_id, col(HealthScore.score), col(HealthScore.band)
    ).join(
        HealthScore,
        and_(
            col(HealthScore.account_id) == latest.c.account_id,
            col(HealthScore.as_of) == latest.c.day,
        ),
    )
    found: dict[date, dict[int, tuple[float, str]]] = {day: {} for day in days}
    for week, account_id, score, band in _rows(session, stmt):
        found[_day(week)][account_id] = (float(score), band)
    return found


def latest_rows(
    session: Session, ids: BookIds | Collection[int], day: date
) -> dict[int, HealthScore]:
    """The full latest score on or before `day` (components, drivers) of each account."""
    chosen = ids if isinstance(ids, Select) else list(ids)
    last = (
        select(col(HealthScore.account_id).label("account_id"), func.max(col(HealthScore.as_of)))
        .where(col(HealthScore.as_of) <= day, col(HealthScore.account_id).in_(chosen))
        .group_by(col(HealthScore.account_id))
        .subquery()
    )
    stmt = select_models(HealthScore).join(
        last,
        and_(
            col(HealthScore.account_id) == last.c.account_id,
            col(HealthScore.as_of) == last.c[1],
        ),
    )
    return {row.account_id: row for row in session.exec(stmt).all()}


def _team_rows(
    account: Mapped[int | None],
    person: Mapped[str | None],
    ids: BookIds,
    emails: Collection[str],
) -> ColumnElement[bool]:
    """Rows about one of the team's accounts, or addressed to one of its CSMs."""
    return or_(account.in_(ids), func.lower(person).in_(list(emails)))


def alert_acks(
    session: Session,
    ids: BookIds,
    emails: Collection[str],
    start: datetime,
    end: datetime,
) -> AlertAcks:
    """Alerts about the team's accounts or to its CSMs sent from `start` to `end`, and how
    many were acknowledged before `end`. Digests are not alerts and are left out."""
    sent, acked = col(Alert.sent_at), col(Alert.acknowledged_at)
    stmt = select(
        func.count(), func.sum(case((and_(acked.is_not(None), acked < end), 1), else_=0))
    ).where(
        col(Alert.rule) != RULE_DIGEST,
        sent >= start,
        sent < end,
        _team_rows(col(Alert.account_id), col(Alert.recipient_email), ids, emails),
    )
    count, acknowledged = _rows(session, stmt)[0]
    return AlertAcks(sent=int(count or 0), acknowledged=int(acknowledged or 0))


def overdue_tasks(
    session: Session,
    ids: BookIds,
    people: Mapping[str, str],
    day: date,
    end: datetime,
) -> list[OverdueTask]:
    """Tasks of the team due on or before `day` and not done by `end`, oldest due first;
    `people` (lower-case email -> name) names the assignees."""
    task = PlaybookTask
    done, status = col(task.completed_at), col(task.status)
    stmt = (
        select(
            col(task.title),
            col(task.playbook),
            col(Account.name),
            func.lower(col(task.assignee_email)),
            col(task.due_on),
        )
        .outerjoin(Account, col(Account.id) == col(task.account_id))
        .where(
            _team_rows(col(task.account_id), col(task.assignee_email), ids, people),
            col(task.due_on) <= day,
            col(task.created_at) < end,
            or_(done >= end, and_(done.is_(None), status.not_in(CLOSED_TASK_STATUSES))),
        )
        .order_by(col(task.due_on), col(task.id))
    )
    return [
        OverdueTask(title, playbook, account, people.get(email, email), _day(due))
        for title, playbook, account, email, due in _rows(session, stmt)
    ]
