"""CSM and team performance over a period: what CS leads otherwise build in spreadsheets.

`team_report` gives, for each CSM and rolled up per team, the figures of a period (a
quarter `2026-Q3`, a month `2026-09`, an ISO week `2026-W37`, or two dates), read from the
store with a handful of queries over every account at once. Everything is point in time:
"at the start" means as of the day before the period (the close of the period before), "at
the end" as of its last day, and a row counts once stamped before that day ended.

Whose is what. An account belongs to its owner (`owner_email`, as the CRM says now; no
ownership history is stored) when that is a known CSM, matched by email without regard to
case; every other account rolls up under "(unowned)". Alerts go by `recipient_email` and
playbook tasks by `assignee_email`, the same way. A CSM's team is `team_external_id`.

The figures of a book:

- Live logos and ARR at the end. An account with subscriptions is a customer while one of
  them is alive (started, and neither ended nor canceled, the rule of the
  `subscription_state` measure) and its ARR is 12 x its alive MRR then; an account
  without any subscription counts as a customer, with the ARR the CRM states now (the
  store keeps no ARR history for it).
- Health: the ARR-weighted mean of the customers' latest scores on or before the day, at
  the end and at the start (each over the customers of its day, with that day's ARR);
  unscored customers are left out of the mean. Bands count the customers at the end by
  the band of that score, or unscored.
- GRR, NRR, churned, contracted and expanded ARR: MRR movements between the start and the
  end of the customers paying at the start (`scoring.metrics`), from the subscriptions'
  stored MRR. The store keeps each subscription's latest MRR only, so a plan changed in
  place shows only when a subscription starts or ends; and billing stores no MRR on a
  canceled subscription, so an account whose subscriptions all ended in the period with
  no MRR left on them is taken to have paid the CRM's ARR / 12 at the start (for a
  churned account the CRM's ARR is that of its last contract).
- Renewals: opportunities of a renewal kind closing in the period; won when won, lost
  when closed and not won, as the CRM says now.
- Alerts sent in the period; acknowledged when acknowledged by its end; the median time
  from sending to acknowledging.
- Playbook tasks due in the period; on time when completed by the end of the due day.
- Fresh sentiment: the share of customers at the end with a sentiment entry in the 30
  days before the end.
- Time to value of the accounts created in the year up to the end: from the account's
  creation to the end of its first complete week with active users at least half of its
  licensed seats. Accounts that have not got there by the end are censored, and the
  median comes from a Kaplan-Meier curve (`scoring.metrics.time_to_value`).
"""

from __future__ import annotations

import calendar
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import ColumnElement, Engine, and_, case, func, or_, select
from sqlmodel import Session, col
from sqlmodel import select as select_models

from scoring.measures import cutoff
from scoring.metrics import (
    MovementKind,
    SubscriptionSnapshot,
    TicketTimes,
    ValueObservation,
    arr,
    gross_revenue_retention,
    median_first_response_time,
    mrr_movements,
    net_revenue_retention,
    product_adoption,
    time_to_value,
    value_observation,
)
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

__all__ = [
    "NO_TEAM",
    "RENEWAL_KINDS",
    "UNOWNED",
    "Bands",
    "BookFigures",
    "CsmPerformance",
    "Period",
    "PeriodError",
    "TeamPerformance",
    "TeamReport",
    "TeamReportError",
    "choose_period",
    "last_complete_quarter",
    "parse_period",
    "print_team_report",
    "team_report",
]

UNOWNED = "(unowned)"
NO_TEAM = "(no team)"
RENEWAL_KINDS = ("renewal", "existingbusiness")
"""Opportunity kinds (lower case, as connectors store them) that are renewals."""
SENTIMENT_WINDOW = timedelta(days=30)
ONBOARDING_WINDOW = timedelta(days=365)
VALUE_ADOPTION = 0.5
"""Value is reached in a week whose active users are at least this share of the seats."""


class PeriodError(ValueError):
    """A period that cannot be read, or that ends before it starts."""


class TeamReportError(ValueError):
    """A report that cannot be made as asked: an unknown team, mixed currencies."""


# ---- periods ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The days from `start` to `end`, both included, with the name it was given."""

    label: str
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise PeriodError(f"the period ends ({self.end}) before it starts ({self.start})")

    @property
    def opening_day(self) -> date:
        """The day whose end is the period's start: figures "at the start" are as of it."""
        return self.start - timedelta(days=1)


_QUARTER = re.compile(r"(\d{4})-Q(\d)", re.IGNORECASE)
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_WEEK = re.compile(r"(\d{4})-W(\d{2})", re.IGNORECASE)


def _quarter(year: int, number: int) -> Period:
    first_month = 3 * number - 2
    last = date(year, first_month + 2, calendar.monthrange(year, first_month + 2)[1])
    return Period(f"{year}-Q{number}", date(year, first_month, 1), last)


def parse_period(text: str) -> Period:
    """`2026-Q3` (a quarter), `2026-09` (a month) or `2026-W37` (an ISO week) as days."""
    value = text.strip()
    if (found := _QUARTER.fullmatch(value)) and 1 <= int(found[2]) <= 4:
        return _quarter(int(found[1]), int(found[2]))
    if (found := _MONTH.fullmatch(value)) and 1 <= int(found[2]) <= 12:
        year, month = int(found[1]), int(found[2])
        last = calendar.monthrange(year, month)[1]
        return Period(value, date(year, month, 1), date(year, month, last))
    if found := _WEEK.fullmatch(value):
        try:
            monday = date.fromisocalendar(int(found[1]), int(found[2]), 1)
        except ValueError:
            raise PeriodError(f"{found[1]} has no ISO week {found[2]}") from None
        return Period(f"{found[1]}-W{found[2]}", monday, monday + timedelta(days=6))
    raise PeriodError(f"{text!r} is not a period: use 2026-Q3, 2026-09 or 2026-W37")


def last_complete_quarter(today: date) -> Period:
    """The latest quarter that ended before `today`."""
    current = (today.month - 1) // 3 + 1
    return _quarter(today.year - 1, 4) if current == 1 else _quarter(today.year, current - 1)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(f"{option} {text!r} is not a date; use YYYY-MM-DD") from None


def choose_period(period: str | None, start: str | None, end: str | None, *, today: date) -> Period:
    """The period the options name: `--period`, or `--from` and `--to` (days included),
    or by default the last complete quarter before `today`."""
    if period is not None and (start is not None or end is not None):
        raise PeriodError("give --period or --from/--to, not both")
    if period is not None:
        return parse_period(period)
    if start is None and end is None:
        return last_complete_quarter(today)
    if start is None or end is None:
        raise PeriodError("--from and --to go together")
    first, last = _day(start, "--from"), _day(end, "--to")
    return Period(f"{first}..{last}", first, last)


# ---- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bands:
    """Customers at the end of the period by the band of their latest score."""

    green: int = 0
    yellow: int = 0
    red: int = 0
    unscored: int = 0


@dataclass(frozen=True)
class BookFigures:
    """The figures of one book (a CSM's, a team's, everyone's); see the module docstring.

    Money is minor units of the report's currency; rates are floats rounded to 4 places,
    health to one decimal; `None` is undefined (nothing to measure), never zero.
    """

    logos: int
    arr_minor: int
    health: float | None
    health_at_start: float | None
    health_change: float | None
    bands: Bands
    mrr_at_start_minor: int
    grr: float | None
    nrr: float | None
    churned_logos: int
    churned_arr_minor: int
    contracted_arr_minor: int
    expanded_arr_minor: int
    renewals_due: int
    renewals_won: int
    renewals_lost: int
    alerts_received: int
    alerts_acknowledged: int
    median_hours_to_acknowledge: float | None
    tasks_due: int
    tasks_on_time: int
    sentiment_fresh: int
    sentiment_freshness: float | None
    onboarding_accounts: int
    onboarding_reached_value: int
    time_to_value_days: float | None


@dataclass(frozen=True)
class CsmPerformance:
    """One CSM's figures; the "(unowned)" row has no email."""

    email: str | None
    name: str
    figures: BookFigures


@dataclass(frozen=True)
class TeamPerformance:
    """A team's CSMs and its total, computed over their books together."""

    name: str
    lead_email: str | None
    csms: tuple[CsmPerformance, ...]
    total: BookFigures


@dataclass(frozen=True)
class TeamReport:
    """Every team's performance over `period`; `accounts` counts the accounts that existed
    during it (zero: the store has nothing to report on)."""

    period: Period
    currency: str
    accounts: int
    teams: tuple[TeamPerformance, ...]
    total: BookFigures


# ---- what the store says ---------------------------------------------------------------


@dataclass(frozen=True)
class _Book:
    """One account's facts over the period."""

    account_id: int
    customer_at_start: bool
    customer_at_end: bool
    arr_at_start: int
    arr_at_end: int
    mrr_at_start: int
    mrr_at_end: int
    score_at_start: float | None
    score_at_end: float | None
    band_at_end: str | None
    fresh_sentiment: bool
    renewals: tuple[int, int, int]
    onboarding: ValueObservation | None


TeamKey = tuple[str, str]
"""A team's (source, external id)."""


@dataclass(frozen=True)
class _Person:
    email: str
    name: str
    team: TeamKey | None


@dataclass
class _Billing:
    """An account's MRR and alive subscriptions at the start and the end, and the
    currencies of that MRR."""

    mrr_start: int = 0
    mrr_end: int = 0
    alive_start: int = 0
    alive_end: int = 0
    currencies: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Facts:
    """What the period's queries found, by account id."""

    currency: str
    billing: dict[int, _Billing]
    scores_at_start: dict[int, tuple[float, str]]
    scores_at_end: dict[int, tuple[float, str]]
    fresh_sentiment: set[int]
    renewals: dict[int, tuple[int, int, int]]
    value_weeks: dict[int, list[datetime]]


def _existed(start: datetime, end: datetime) -> ColumnElement[bool]:
    """Accounts that existed at some time from `start` to `end`."""
    created, deleted = col(Account.created_at), col(Account.deleted_at)
    return and_(or_(created.is_(None), created < end), or_(deleted.is_(None), deleted >= start))


def _alive_at(instant: datetime) -> ColumnElement[bool]:
    """A subscription alive at `instant`: the rule of the `subscription_state` measure."""
    start = func.coalesce(col(Subscription.started_at), col(Subscription.created_at))
    ended, canceled = col(Subscription.ended_at), col(Subscription.canceled_at)
    final = col(Subscription.status).in_(("canceled", "incomplete_expired"))
    ended_by = or_(
        and_(ended.is_not(None), ended < instant),
        and_(ended.is_(None), final, or_(canceled.is_(None), canceled < instant)),
    )
    return and_(or_(start.is_(None), start < instant), ~ended_by)


def _rows(session: Session, stmt: Any) -> list[Any]:
    return list(session.connection().execute(stmt).all())


def _people(session: Session, end: datetime) -> tuple[dict[str, _Person], dict[TeamKey, Team]]:
    """CSMs not deleted by the end, by lower-case email; teams by (source, external id)."""
    deleted = col(Csm.deleted_at)
    stmt = (
        select(col(Csm.email), col(Csm.name), col(Csm.source), col(Csm.team_external_id))
        .where(or_(deleted.is_(None), deleted >= end))
        .order_by(col(Csm.source), col(Csm.id))
    )
    people: dict[str, _Person] = {}
    for email, name, source, team in _rows(session, stmt):
        key = (email or "").strip().lower()
        if key and key not in people:
            people[key] = _Person(key, name or key, (source, team) if team else None)
    teams = {(t.source, t.external_id): t for t in session.exec(select_models(Team)).all()}
    return people, teams


def _billing(session: Session, start: datetime, end: datetime) -> dict[int, _Billing]:
    """Per account with subscriptions: MRR and alive subscriptions at the start and end."""
    mrr = col(Subscription.mrr_minor)
    stmt = (
        select(
            col(Subscription.account_id),
            col(Subscription.currency),
            func.sum(case((_alive_at(start), mrr), else_=0)),
            func.sum(case((_alive_at(end), mrr), else_=0)),
            func.sum(case((_alive_at(start), 1), else_=0)),
            func.sum(case((_alive_at(end), 1), else_=0)),
        )
        .where(col(Subscription.account_id).is_not(None), col(Subscription.deleted_at).is_(None))
        .group_by(col(Subscription.account_id), col(Subscription.currency))
    )
    billing: dict[int, _Billing] = defaultdict(_Billing)
    for account_id, currency, mrr_start, mrr_end, alive_start, alive_end in _rows(session, stmt):
        row = billing[account_id]
        row.mrr_start += int(mrr_start or 0)
        row.mrr_end += int(mrr_end or 0)
        row.alive_start += int(alive_start or 0)
        row.alive_end += int(alive_end or 0)
        if mrr_start or mrr_end:
            row.currencies.add((currency or "USD").upper())
    return dict(billing)


def _latest_scores(session: Session, day: date) -> dict[int, tuple[float, str]]:
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


def _renewals(
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


def _fresh_sentiment(session: Session, end: datetime) -> set[int]:
    recorded = col(SentimentEntry.recorded_at)
    stmt = (
        select(col(SentimentEntry.account_id))
        .where(recorded >= end - SENTIMENT_WINDOW, recorded < end)
        .distinct()
    )
    return {account_id for (account_id,) in _rows(session, stmt)}


def _value_reached(session: Session, period: Period, since: datetime) -> dict[int, list[datetime]]:
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


def _alerts(session: Session, start: datetime, end: datetime) -> list[tuple[str, TicketTimes]]:
    """Alerts sent in the period by recipient: sent as created, acknowledged as answered."""
    sent = col(Alert.sent_at)
    stmt = select(func.lower(col(Alert.recipient_email)), sent, col(Alert.acknowledged_at)).where(
        sent >= start, sent < end
    )
    alerts = []
    for email, sent_at, acked in _rows(session, stmt):
        answered = max(acked, sent_at) if acked is not None and acked < end else None
        alerts.append((email or "", TicketTimes(sent_at, first_response_at=answered)))
    return alerts


def _tasks(session: Session, period: Period) -> list[tuple[str, bool]]:
    """Tasks due in the period by assignee, and whether each was completed on time."""
    due = col(PlaybookTask.due_on)
    stmt = select(
        func.lower(col(PlaybookTask.assignee_email)), due, col(PlaybookTask.completed_at)
    ).where(due >= period.start, due <= period.end)
    return [
        (email or "", done is not None and done < cutoff(day))
        for email, day, done in _rows(session, stmt)
    ]


# ---- assembling the books --------------------------------------------------------------


def _currency(accounts: Iterable[Any], billing: dict[int, _Billing]) -> str:
    """The one currency of the money in the report; `TeamReportError` when there are more."""
    seen: set[str] = set()
    for account in accounts:
        money = billing.get(account.id)
        if money is not None:
            seen |= money.currencies
        elif account.arr_minor:
            seen.add((account.currency or "USD").upper())
    if len(seen) > 1:
        raise TeamReportError(
            f"the book holds money in several currencies ({', '.join(sorted(seen))}); "
            "the team report adds money up and needs one"
        )
    return seen.pop() if seen else "USD"


def _arr(mrr_minor: int, currency: str) -> int:
    return arr([SubscriptionSnapshot("account", mrr_minor, currency)])


def _book(account: Any, facts: _Facts, period: Period) -> _Book:
    """One account's `_Book` from the results of the period's queries."""
    start, end, currency = cutoff(period.opening_day), cutoff(period.end), facts.currency
    money = facts.billing.get(account.id)

    def customer(at: datetime, alive: int) -> bool:
        created, deleted = account.created_at, account.deleted_at
        exists = (created is None or created < at) and (deleted is None or deleted >= at)
        return exists and (money is None or alive > 0)

    paid = money or _Billing()
    crm_arr = int(account.arr_minor or 0)
    mrr_start = paid.mrr_start
    if paid.alive_start and not paid.alive_end and not mrr_start:
        mrr_start = round(crm_arr / 12)  # billing keeps no MRR on a canceled subscription
    scores_start, scores_end = facts.scores_at_start, facts.scores_at_end
    onboarding = None
    if account.created_at is not None and end - ONBOARDING_WINDOW <= account.created_at < end:
        reached = [t for t in facts.value_weeks.get(account.id, []) if t > account.created_at]
        onboarding = value_observation(account.created_at, min(reached, default=None), end)
    return _Book(
        account_id=account.id,
        customer_at_start=customer(start, paid.alive_start),
        customer_at_end=customer(end, paid.alive_end),
        arr_at_start=crm_arr if money is None else _arr(mrr_start, currency),
        arr_at_end=crm_arr if money is None else _arr(paid.mrr_end, currency),
        mrr_at_start=mrr_start,
        mrr_at_end=paid.mrr_end,
        score_at_start=scores_start.get(account.id, (None, None))[0],
        score_at_end=scores_end.get(account.id, (None, None))[0],
        band_at_end=scores_end.get(account.id, (None, None))[1],
        fresh_sentiment=account.id in facts.fresh_sentiment,
        renewals=facts.renewals.get(account.id, (0, 0, 0)),
        onboarding=onboarding,
    )


def _weighted_health(pairs: Iterable[tuple[float | None, int]]) -> float | None:
    scored = [(score, weight) for score, weight in pairs if score is not None and weight > 0]
    total = sum(weight for _, weight in scored)
    return sum(score * weight for score, weight in scored) / total if total else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _figures(
    books: Sequence[_Book], alerts: Sequence[TicketTimes], tasks: Sequence[bool], currency: str
) -> BookFigures:
    """The figures of a book from its accounts' facts, alerts and tasks."""
    customers = [b for b in books if b.customer_at_end]
    health = _weighted_health((b.score_at_end, b.arr_at_end) for b in customers)
    opening = _weighted_health(
        (b.score_at_start, b.arr_at_start) for b in books if b.customer_at_start
    )
    start = [SubscriptionSnapshot(str(b.account_id), b.mrr_at_start, currency) for b in books]
    end = [SubscriptionSnapshot(str(b.account_id), b.mrr_at_end, currency) for b in books]
    moves = mrr_movements(start, end)
    bands = Counter(b.band_at_end if b.score_at_end is not None else "unscored" for b in customers)
    waits = median_first_response_time(alerts)
    onboarding = [b.onboarding for b in books if b.onboarding is not None]
    fresh = sum(b.fresh_sentiment for b in customers)
    return BookFigures(
        logos=len(customers),
        arr_minor=sum(b.arr_at_end for b in customers),
        health=_round(health, 1),
        health_at_start=_round(opening, 1),
        health_change=None if health is None or opening is None else round(health - opening, 1),
        bands=Bands(**{k: bands[k] for k in ("green", "yellow", "red", "unscored")}),
        mrr_at_start_minor=moves.start_mrr_minor,
        grr=_round(gross_revenue_retention(start, end), 4),
        nrr=_round(net_revenue_retention(start, end), 4),
        churned_logos=sum(m.kind is MovementKind.CHURN for m in moves.movements),
        churned_arr_minor=_arr(-moves.churn_minor, currency),
        contracted_arr_minor=_arr(-moves.contraction_minor, currency),
        expanded_arr_minor=_arr(moves.expansion_minor, currency),
        renewals_due=sum(b.renewals[0] for b in books),
        renewals_won=sum(b.renewals[1] for b in books),
        renewals_lost=sum(b.renewals[2] for b in books),
        alerts_received=len(alerts),
        alerts_acknowledged=sum(a.first_response_at is not None for a in alerts),
        median_hours_to_acknowledge=None if waits is None else round(waits / timedelta(hours=1), 2),
        tasks_due=len(tasks),
        tasks_on_time=sum(tasks),
        sentiment_fresh=fresh,
        sentiment_freshness=round(fresh / len(customers), 4) if customers else None,
        onboarding_accounts=len(onboarding),
        onboarding_reached_value=sum(o.reached for o in onboarding),
        time_to_value_days=_round(time_to_value(onboarding), 1),
    )


def _owner(email: str | None, people: dict[str, _Person]) -> str:
    key = (email or "").strip().lower()
    return key if key in people else UNOWNED


@dataclass(frozen=True)
class _Group:
    name: str
    lead_email: str | None
    members: tuple[str, ...]


def _groups(people: dict[str, _Person], teams: dict[TeamKey, Team], unowned: bool) -> list[_Group]:
    """Teams with their CSMs by name; then CSMs without a known team; then "(unowned)"."""
    members: dict[TeamKey | None, list[_Person]] = defaultdict(list)
    for person in people.values():
        members[person.team if person.team in teams else None].append(person)
    groups = []
    for key, team in sorted(teams.items(), key=lambda item: item[1].name.lower()):
        if members.get(key):
            names = sorted(members[key], key=lambda p: p.name.lower())
            groups.append(_Group(team.name, team.lead_email, tuple(p.email for p in names)))
    if members.get(None):
        names = sorted(members[None], key=lambda p: p.name.lower())
        groups.append(_Group(NO_TEAM, None, tuple(p.email for p in names)))
    if unowned:
        groups.append(_Group(UNOWNED, None, (UNOWNED,)))
    return groups


def _chosen(groups: list[_Group], teams: dict[TeamKey, Team], wanted: str | None) -> list[_Group]:
    if wanted is None:
        return groups
    ids = {t.name.lower(): t.external_id.lower() for t in teams.values()}
    needle = wanted.strip().lower()
    chosen = [g for g in groups if needle in (g.name.lower(), ids.get(g.name.lower()))]
    if not chosen:
        names = ", ".join(g.name for g in groups) or "none"
        raise TeamReportError(f"no team is named {wanted!r}; the teams are: {names}")
    return chosen


def _facts(session: Session, period: Period, accounts: list[Any], kinds: Sequence[str]) -> _Facts:
    start, end = cutoff(period.opening_day), cutoff(period.end)
    billing = _billing(session, start, end)
    return _Facts(
        currency=_currency(accounts, billing),
        billing=billing,
        scores_at_start=_latest_scores(session, period.opening_day),
        scores_at_end=_latest_scores(session, period.end),
        fresh_sentiment=_fresh_sentiment(session, end),
        renewals=_renewals(session, period, kinds),
        value_weeks=_value_reached(session, period, end - ONBOARDING_WINDOW),
    )


def team_report(
    engine: Engine,
    period: Period,
    *,
    team: str | None = None,
    renewal_kinds: Sequence[str] = RENEWAL_KINDS,
) -> TeamReport:
    """Each CSM's and each team's figures over `period` (one team's with `team`, a name).

    A fixed handful of queries, whatever the size of the book.
    """
    start, end = cutoff(period.opening_day), cutoff(period.end)
    with Session(engine) as session:
        people, teams = _people(session, end)
        accounts = _rows(
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
        facts = _facts(session, period, accounts, renewal_kinds)
        alerts, tasks = _alerts(session, start, end), _tasks(session, period)
    books: dict[str, list[_Book]] = defaultdict(list)
    for account in accounts:
        books[_owner(account.owner_email, people)].append(_book(account, facts, period))
    sent: dict[str, list[TicketTimes]] = defaultdict(list)
    for email, times in alerts:
        sent[_owner(email, people)].append(times)
    due: dict[str, list[bool]] = defaultdict(list)
    for email, on_time in tasks:
        due[_owner(email, people)].append(on_time)
    unowned = bool(books.get(UNOWNED) or sent.get(UNOWNED) or due.get(UNOWNED))
    chosen = _chosen(_groups(people, teams, unowned), teams, team)

    def figures(keys: Iterable[str]) -> BookFigures:
        keys = tuple(keys)
        return _figures(
            [b for k in keys for b in books.get(k, [])],
            [a for k in keys for a in sent.get(k, [])],
            [t for k in keys for t in due.get(k, [])],
            facts.currency,
        )

    performances = tuple(
        TeamPerformance(
            name=group.name,
            lead_email=group.lead_email,
            csms=tuple(
                CsmPerformance(
                    email=None if key == UNOWNED else key,
                    name=people[key].name if key in people else UNOWNED,
                    figures=figures([key]),
                )
                for key in group.members
            ),
            total=figures(group.members),
        )
        for group in chosen
    )
    return TeamReport(
        period=period,
        currency=facts.currency,
        accounts=len(accounts),
        teams=performances,
        total=figures(k for g in chosen for k in g.members),
    )


# ---- rendering -------------------------------------------------------------------------

COLUMNS = (
    "CSM",
    "Logos",
    "ARR",
    "Health\n(change)",
    "Bands\nR/Y/G",
    "GRR",
    "NRR",
    "Churned\nARR",
    "Expanded\nARR",
    "Renewals\nW/L/due",
    "Alerts\nacked",
    "Hours\nto ack",
    "Tasks\non time",
    "Fresh\nsentiment",
    "TTV\ndays",
)


def _money(minor: int) -> str:
    units = minor / 100
    if abs(units) >= 1_000_000:
        return f"{units / 1_000_000:.2f}M"
    if abs(units) >= 1_000:
        return f"{units / 1_000:.1f}k"
    return f"{units:.0f}"


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def _health(f: BookFigures) -> str:
    if f.health is None:
        return "-"
    change = "" if f.health_change is None else f" {f.health_change:+.1f}"
    return f"{f.health:.0f}{change}"


def _cells(label: str, f: BookFigures) -> list[str]:
    return [
        label,
        str(f.logos),
        _money(f.arr_minor),
        _health(f),
        f"{f.bands.red}/{f.bands.yellow}/{f.bands.green}",
        _number(f.grr, ".0%"),
        _number(f.nrr, ".0%"),
        _money(f.churned_arr_minor),
        _money(f.expanded_arr_minor),
        f"{f.renewals_won}/{f.renewals_lost}/{f.renewals_due}",
        f"{f.alerts_acknowledged}/{f.alerts_received}",
        _number(f.median_hours_to_acknowledge, ".1f"),
        f"{f.tasks_on_time}/{f.tasks_due}",
        _number(f.sentiment_freshness, ".0%"),
        _number(f.time_to_value_days, ".0f"),
    ]


def print_team_report(console: Console, report: TeamReport) -> None:
    """One row per CSM under its team's name, each team's total, and the total of all."""
    period = report.period
    table = Table(
        title=f"Team performance {period.label} ({period.start} to {period.end}), "
        f"money in {report.currency}",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
        show_edge=False,
    )
    table.add_column(COLUMNS[0], min_width=16)
    for name in COLUMNS[1:]:
        table.add_column(name, justify="right", no_wrap=True)
    for team in report.teams:
        if team.name == UNOWNED:
            table.add_row(*_cells(UNOWNED, team.total), end_section=True)
            continue
        table.add_row(f"[bold]{escape(team.name)}[/]")
        for csm in team.csms:
            table.add_row(*map(escape, _cells(f"  {csm.name}", csm.figures)))
        table.add_row(*_cells("  total", team.total), style="bold", end_section=True)
    table.add_row(*map(escape, _cells("All", report.total)), style="bold")
    console.print(table)
