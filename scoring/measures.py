"""Measures: set-based aggregate queries over every account at once, as of a day.

Each measure function takes a session and an `as_of` date and returns a `Reading` per
account that has data for it; an account with no data is simply absent (missing is not
zero). Measures that read the same rows share one query (`SHARED_QUERIES`: ticket volume
and urgent tickets, subscription state and MRR trend, seat utilisation and usage trend),
and `read_measures` runs each query once for a whole scoring run. Everything is point in
time: "as of" a day means as of the end of that day (UTC), and only rows known by then
count, so scores can be recomputed for past days. Rows with no account (unmatched by
identity) and deleted rows are ignored.

Point-in-time rules, where the store keeps only the latest state of a record:

- A ticket is solved at `solved_at`; a solved or closed ticket without one counts as solved
  at its `updated_at`. A ticket's satisfaction rating counts once the ticket was last
  updated (the rating time itself is not stored).
- A subscription is alive at an instant when it had started (`started_at`, else
  `created_at`; undated ones count as started) and had not ended (`ended_at`; a canceled
  one without it ended at `canceled_at`, or is taken as ended already when undated).
  A subscription alive then but canceled since counts as active then. Its stored
  `past_due`/`unpaid` status is believed only while one of the account's invoices was
  failed at that instant, since the status history is not stored. MRR uses each
  subscription's stored `mrr_minor`.
- An invoice is failed at an instant when it was created before, had a payment attempt,
  and was either still open and unpaid (`paid_at` empty, amount remaining) or paid only
  later after more than one attempt. Void and uncollectible invoices never count.
- A usage week counts once recorded and complete (its seventh day is `as_of` or before);
  an account whose latest such week started more than 5 weeks earlier has no usage data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    Row,
    Select,
    and_,
    case,
    cast,
    distinct,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, SQLModel, col

from scoring.words import ago, change, plural
from store.models import Invoice, SentimentEntry, Subscription, SurveyResponse, Ticket
from store.models import UsageSnapshot as Usage

__all__ = [
    "MEASURES",
    "SHARED_QUERIES",
    "MeasureSpec",
    "Reading",
    "Readings",
    "SharedQuery",
    "cutoff",
    "read_measures",
    "subscription_alive_at",
]


@dataclass(frozen=True, slots=True)
class Reading:
    """One account's raw value for a measure, with the details its driver sentence uses."""

    value: float | str
    details: dict[str, Any] = field(default_factory=dict)


Readings = dict[int, Reading]


def cutoff(as_of: date) -> datetime:
    """The first instant after `as_of` (UTC): rows stamped before it were known as of then."""
    return datetime.combine(as_of + timedelta(days=1), time(), UTC)


def _rows(session: Session, stmt: Select[*tuple[Any, ...]]) -> Sequence[Row[*tuple[Any, ...]]]:
    return session.connection().execute(stmt).all()


# ---- support ---------------------------------------------------------------------------

_TICKET_LIVE = and_(col(Ticket.account_id).is_not(None), col(Ticket.deleted_at).is_(None))


def _ticket_solved_at() -> ColumnElement[datetime]:
    solved_status = col(Ticket.status).in_(("solved", "closed"))
    return func.coalesce(col(Ticket.solved_at), case((solved_status, col(Ticket.updated_at))))


def _ticket_load(session: Session, as_of: date) -> dict[str, Readings]:
    """`ticket_volume` and `urgent_open_tickets` from one pass over the tickets."""
    end = cutoff(as_of)
    recent_from, base_from = end - timedelta(days=30), end - timedelta(days=210)
    created = col(Ticket.created_at)
    solved = _ticket_solved_at()
    urgent_open = and_(
        func.lower(col(Ticket.priority)).in_(("urgent", "high")),
        or_(solved.is_(None), solved >= end),
    )
    stmt = (
        select(
            col(Ticket.account_id),
            func.sum(case((created >= recent_from, 1), else_=0)),
            func.sum(case((and_(created >= base_from, created < recent_from), 1), else_=0)),
            func.sum(case((urgent_open, 1), else_=0)),
        )
        .where(_TICKET_LIVE, created < end)
        .group_by(col(Ticket.account_id))
    )
    volume: Readings = {}
    urgent: Readings = {}
    for account_id, recent, base, count in _rows(session, stmt):
        baseline = int(base) / 6
        ratio = int(recent) / max(baseline, 1.0)
        details = {"recent": int(recent), "baseline": round(baseline, 1)}
        volume[account_id] = Reading(round(ratio, 2), details)
        urgent[account_id] = Reading(float(count), {"count": int(count), "s": plural(int(count))})
    return {"ticket_volume": volume, "urgent_open_tickets": urgent}


def ticket_volume(session: Session, as_of: date) -> Readings:
    """Tickets opened in the last 30 days over the account's usual 30-day volume.

    The usual volume is the mean per 30 days over the 180 days before, floored at one
    ticket, so a quiet account's first tickets read as a few times usual, not infinite.
    """
    return _ticket_load(session, as_of)["ticket_volume"]


def urgent_open_tickets(session: Session, as_of: date) -> Readings:
    """Urgent or high-priority tickets open at the end of `as_of`."""
    return _ticket_load(session, as_of)["urgent_open_tickets"]


def csat(session: Session, as_of: date) -> Readings:
    """Mean satisfaction of the last 90 days' CSAT answers, as a share of their scale (0-100).

    Each survey answer of kind `csat` counts as its score over its scale (8 of 10 is 80, 4
    of 5 is 80, 1 of 1 is 100), so the difference between 8, 9 and 10 out of 10 is kept
    rather than folded into "satisfied or not". Accounts without survey answers fall back
    to ticket ratings (good is 100, bad is 0: their share of good ratings).
    """
    end = cutoff(as_of)
    start = end - timedelta(days=90)
    surveys: Select[*tuple[Any, ...]] = select(
        col(SurveyResponse.account_id).label("account_id"),
        (cast(col(SurveyResponse.score), Float) * 100.0 / col(SurveyResponse.scale_max)).label(
            "satisfied"
        ),
        literal(1).label("survey"),
    ).where(
        col(SurveyResponse.account_id).is_not(None),
        col(SurveyResponse.kind) == "csat",
        col(SurveyResponse.scale_max) > 0,
        col(SurveyResponse.responded_at) >= start,
        col(SurveyResponse.responded_at) < end,
    )
    ratings = select(
        col(Ticket.account_id).label("account_id"),
        case((col(Ticket.satisfaction) == "good", 100.0), else_=0.0).label("satisfied"),
        literal(0).label("survey"),
    ).where(
        _TICKET_LIVE,
        col(Ticket.satisfaction).in_(("good", "bad")),
        col(Ticket.updated_at) >= start,
        col(Ticket.updated_at) < end,
    )
    both = union_all(surveys, ratings).subquery()
    is_survey = both.c.survey == 1
    stmt = select(
        both.c.account_id,
        func.sum(case((is_survey, both.c.satisfied), else_=0.0)),
        func.sum(case((is_survey, 1), else_=0)),
        func.sum(case((is_survey, 0.0), else_=both.c.satisfied)),
        func.sum(case((is_survey, 0), else_=1)),
    ).group_by(both.c.account_id)
    readings: Readings = {}
    for account_id, s_good, s_total, t_good, t_total in _rows(session, stmt):
        good, total, source = (
            (s_good, s_total, "surveys") if s_total else (t_good, t_total, "ticket ratings")
        )
        details = {"ratings": int(total), "source": source}
        readings[account_id] = Reading(round(float(good) / int(total), 1), details)
    return readings


# ---- billing ---------------------------------------------------------------------------

SUBSCRIPTION_STATES = ("active", "trialing", "incomplete", "paused", "past_due", "unpaid")
"""Effective subscription states, best to worst; an account takes its worst alive one."""
STATE_WORDS = {
    "active": "active",
    "trialing": "in trial",
    "incomplete": "incomplete",
    "paused": "paused",
    "past_due": "past due",
    "unpaid": "unpaid after failed payments",
    "churned": "canceled (every subscription has ended)",
}


def _invoice_failed_at(instant: datetime) -> ColumnElement[bool]:
    paid = col(Invoice.paid_at)
    still_unpaid = and_(
        col(Invoice.status) == "open", col(Invoice.amount_remaining_minor) > 0, paid.is_(None)
    )
    paid_later = and_(paid.is_not(None), paid >= instant, col(Invoice.attempt_count) > 1)
    return and_(
        col(Invoice.created_at) < instant,
        col(Invoice.attempt_count) > 0,
        col(Invoice.status).not_in(("void", "uncollectible")),
        or_(still_unpaid, paid_later),
    )


_INVOICE_LIVE = and_(col(Invoice.account_id).is_not(None), col(Invoice.deleted_at).is_(None))
_SUB_LIVE = and_(col(Subscription.account_id).is_not(None), col(Subscription.deleted_at).is_(None))


def _sub_started_by(instant: datetime) -> ColumnElement[bool]:
    start = func.coalesce(col(Subscription.started_at), col(Subscription.created_at))
    return or_(start.is_(None), start < instant)


def subscription_alive_at(instant: datetime) -> ColumnElement[bool]:
    """A subscription alive at `instant` (the rule in this module's docstring)."""
    ended, canceled = col(Subscription.ended_at), col(Subscription.canceled_at)
    final = col(Subscription.status).in_(("canceled", "incomplete_expired"))
    ended_by = or_(
        and_(ended.is_not(None), ended < instant),
        and_(ended.is_(None), final, or_(canceled.is_(None), canceled < instant)),
    )
    return and_(_sub_started_by(instant), ~ended_by)


def _subscriptions(session: Session, as_of: date) -> dict[str, Readings]:
    """`subscription_state` and `mrr_trend` from one pass over the subscriptions."""
    end = cutoff(as_of)
    status = col(Subscription.status)
    failing = select(col(Invoice.account_id)).where(_INVOICE_LIVE, _invoice_failed_at(end))
    dated_delinquency = col(Subscription.account_id).in_(failing)
    rank = case(
        (status.in_(("active", "canceled", "incomplete_expired")), 0),
        (status == "trialing", 1),
        (and_(status.in_(("past_due", "unpaid")), ~dated_delinquency), 0),
        (status == "past_due", 4),
        (status == "unpaid", 5),
        (status == "paused", 3),
        else_=2,
    )
    alive = subscription_alive_at(end)
    mrr = col(Subscription.mrr_minor)
    stmt = (
        select(
            col(Subscription.account_id),
            func.sum(case((_sub_started_by(end), 1), else_=0)),
            func.sum(case((alive, 1), else_=0)),
            func.max(case((alive, rank))),
            func.sum(case((alive, mrr), else_=0)),
            func.sum(case((subscription_alive_at(end - timedelta(days=90)), mrr), else_=0)),
        )
        .where(_SUB_LIVE)
        .group_by(col(Subscription.account_id))
    )
    states: Readings = {}
    trends: Readings = {}
    for account_id, started, alive_count, worst, now, before in _rows(session, stmt):
        if started:
            state = "churned" if not alive_count else SUBSCRIPTION_STATES[int(worst)]
            states[account_id] = Reading(state, {"state": STATE_WORDS[state]})
        if before and int(before) > 0:
            ratio = int(now) / int(before)
            details = {"change": change(ratio), "mrr_minor": int(now), "before_minor": int(before)}
            trends[account_id] = Reading(round(ratio, 3), details)
    return {"subscription_state": states, "mrr_trend": trends}


def subscription_state(session: Session, as_of: date) -> Readings:
    """The account's worst alive subscription state, or `churned` when all have ended."""
    return _subscriptions(session, as_of)["subscription_state"]


def failed_payments(session: Session, as_of: date) -> Readings:
    """Invoices created in the last 60 days whose payment had failed as of the day."""
    end = cutoff(as_of)
    created = col(Invoice.created_at)
    recent_failure = and_(created >= end - timedelta(days=60), _invoice_failed_at(end))
    stmt = (
        select(
            col(Invoice.account_id),
            func.sum(case((recent_failure, 1), else_=0)),
            func.max(case((recent_failure, created))),
        )
        .where(_INVOICE_LIVE, created < end)
        .group_by(col(Invoice.account_id))
    )
    readings: Readings = {}
    for account_id, count, latest in _rows(session, stmt):
        days = (as_of - latest.date()).days if latest is not None else None
        details = {
            "count": int(count),
            "s": plural(int(count)),
            "days_ago": days,
            "ago": ago(days) if days is not None else "never",
        }
        readings[account_id] = Reading(float(count), details)
    return readings


def mrr_trend(session: Session, as_of: date) -> Readings:
    """MRR alive at the end of `as_of` over MRR alive 90 days before (needs MRR then)."""
    return _subscriptions(session, as_of)["mrr_trend"]


# ---- usage -----------------------------------------------------------------------------


class _DaysBefore(FunctionElement[date]):
    """`day - days` as a date: `date(day, '-N days')` on SQLite, `day - N` on PostgreSQL."""

    type = Date()
    inherit_cache = True


@compiles(_DaysBefore, "sqlite")
def _days_before_sqlite(element: _DaysBefore, compiler: SQLCompiler, **kw: Any) -> str:
    day, days = element.clauses
    return f"date({compiler.process(day, **kw)}, '-' || {compiler.process(days, **kw)} || ' days')"


@compiles(_DaysBefore, "postgresql")
def _days_before_postgresql(element: _DaysBefore, compiler: SQLCompiler, **kw: Any) -> str:
    day, days = element.clauses
    return f"({compiler.process(day, **kw)} - {compiler.process(days, **kw)})"


def _usage_weeks(session: Session, as_of: date) -> Sequence[Row[*tuple[Any, ...]]]:
    """Per account, its latest complete week of the 17 before `as_of`, that week's active
    users and licensed seats, and the active users and number of weeks of the 4 weeks up to
    it and of the 8 weeks before those; accounts whose latest complete week started more
    than 5 weeks before `as_of` are left out as stale. A week is complete when its seventh
    day is `as_of` or earlier, and known once recorded. Several snapshots of one week add
    up: the week's active users and seats are their sums."""
    week, active = col(Usage.period_start), col(Usage.active_users)
    known = and_(
        col(Usage.account_id).is_not(None),
        col(Usage.recorded_at) < cutoff(as_of),
        week <= as_of - timedelta(days=6),
        week > as_of - timedelta(weeks=17),
    )
    newest = func.max(week)
    latest = (
        select(
            col(Usage.account_id).label("account_id"),
            newest.label("week"),
            _DaysBefore(newest, literal(28)).label("split"),
            _DaysBefore(newest, literal(84)).label("since"),
        )
        .where(known, week > as_of - timedelta(weeks=5))
        .group_by(col(Usage.account_id))
        .subquery()
    )
    is_latest, recent = week == latest.c.week, week > latest.c.split
    stmt = (
        select(
            latest.c.account_id,
            latest.c.week,
            func.sum(case((is_latest, active))),
            func.coalesce(func.sum(case((is_latest, col(Usage.licensed_seats)))), 0),
            func.sum(case((recent, active), else_=0)),
            func.count(distinct(case((recent, week)))),
            func.sum(case((recent, 0), else_=active)),
            func.count(distinct(case((recent, None), else_=week))),
        )
        .join_from(
            latest,
            Usage,
            and_(col(Usage.account_id) == latest.c.account_id, known, week > latest.c.since),
        )
        .group_by(latest.c.account_id, latest.c.week)
    )
    return _rows(session, stmt)


def _usage(session: Session, as_of: date) -> dict[str, Readings]:
    """`seat_utilisation` and `usage_trend` from one aggregate of the weekly usage."""
    utilisation: Readings = {}
    trends: Readings = {}
    rows = _usage_weeks(session, as_of)
    for account_id, week, active, seats, recent, recent_weeks, prior, prior_weeks in rows:
        if seats > 0:
            details = {"active": int(active), "seats": int(seats), "week": week.isoformat()}
            utilisation[account_id] = Reading(round(int(active) / int(seats), 3), details)
        if not prior_weeks or not prior:
            continue
        recent_mean, prior_mean = int(recent) / recent_weeks, int(prior) / prior_weeks
        ratio = recent_mean / prior_mean
        details = {
            "change": change(ratio),
            "recent_mean": round(recent_mean, 1),
            "prior_mean": round(prior_mean, 1),
        }
        trends[account_id] = Reading(round(ratio, 3), details)
    return {"seat_utilisation": utilisation, "usage_trend": trends}


def seat_utilisation(session: Session, as_of: date) -> Readings:
    """Active users over licensed seats in the latest complete week."""
    return _usage(session, as_of)["seat_utilisation"]


def usage_trend(session: Session, as_of: date) -> Readings:
    """Mean weekly active users of the latest 4 weeks over the mean of the 8 weeks before."""
    return _usage(session, as_of)["usage_trend"]


# ---- sentiment -------------------------------------------------------------------------

SENTIMENTS = ("green", "yellow", "red")


def csm_sentiment(session: Session, as_of: date) -> Readings:
    """The CSM's latest green/yellow/red entry of the last 90 days; older ones are ignored."""
    end = cutoff(as_of)
    recorded = col(SentimentEntry.recorded_at)
    ranked = (
        select(
            col(SentimentEntry.account_id).label("account_id"),
            col(SentimentEntry.sentiment).label("sentiment"),
            col(SentimentEntry.note).label("note"),
            recorded.label("recorded_at"),
            func.row_number()
            .over(
                partition_by=col(SentimentEntry.account_id),
                order_by=(recorded.desc(), col(SentimentEntry.id).desc()),
            )
            .label("rn"),
        )
        .where(
            recorded >= end - timedelta(days=90),
            recorded < end,
            col(SentimentEntry.sentiment).in_(SENTIMENTS),
        )
        .subquery()
    )
    stmt = select(
        ranked.c.account_id, ranked.c.sentiment, ranked.c.note, ranked.c.recorded_at
    ).where(ranked.c.rn == 1)
    readings: Readings = {}
    for account_id, sentiment, note, recorded_at in _rows(session, stmt):
        days = (as_of - recorded_at.date()).days
        details = {"note": f": {note}" if note else "", "ago": ago(days), "days_ago": days}
        readings[account_id] = Reading(sentiment, details)
    return readings


# ---- registry --------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasureSpec:
    """A measure query with what its driver labels may use: the value and these details."""

    query: Callable[[Session, date], Readings]
    example_value: float | str
    example_details: Mapping[str, Any]
    categories: tuple[str, ...] = ()
    reads: tuple[type[SQLModel], ...] = ()
    """The tables the query reads, so `explain` can say how fresh their sources are."""


MEASURES: dict[str, MeasureSpec] = {
    "ticket_volume": MeasureSpec(
        ticket_volume, 3.1, {"recent": 12, "baseline": 3.9}, reads=(Ticket,)
    ),
    "urgent_open_tickets": MeasureSpec(
        urgent_open_tickets, 2.0, {"count": 2, "s": "s"}, reads=(Ticket,)
    ),
    "csat": MeasureSpec(
        csat, 72.5, {"ratings": 11, "source": "surveys"}, reads=(SurveyResponse, Ticket)
    ),
    "subscription_state": MeasureSpec(
        subscription_state,
        "past_due",
        {"state": "past due"},
        categories=(*SUBSCRIPTION_STATES, "churned"),
        reads=(Subscription,),
    ),
    "failed_payments": MeasureSpec(
        failed_payments,
        1.0,
        {"count": 1, "s": "", "ago": "4 days ago", "days_ago": 4},
        reads=(Invoice,),
    ),
    "mrr_trend": MeasureSpec(
        mrr_trend,
        0.75,
        {"change": "down 25%", "mrr_minor": 75000, "before_minor": 100000},
        reads=(Subscription,),
    ),
    "seat_utilisation": MeasureSpec(
        seat_utilisation, 0.4, {"active": 8, "seats": 20, "week": "2026-01-05"}, reads=(Usage,)
    ),
    "usage_trend": MeasureSpec(
        usage_trend,
        0.6,
        {"change": "down 40%", "recent_mean": 6.0, "prior_mean": 10.0},
        reads=(Usage,),
    ),
    "csm_sentiment": MeasureSpec(
        csm_sentiment,
        "red",
        {"note": ": exec sponsor left", "ago": "4 days ago", "days_ago": 4},
        categories=SENTIMENTS,
    ),
}
"""Every measure a scorecard may name."""


@dataclass(frozen=True)
class SharedQuery:
    """Measures read by one aggregate query: `read` returns each one's readings."""

    measures: tuple[str, ...]
    read: Callable[[Session, date], dict[str, Readings]]


SHARED_QUERIES: dict[str, SharedQuery] = {
    "tickets": SharedQuery(("ticket_volume", "urgent_open_tickets"), _ticket_load),
    "subscriptions": SharedQuery(("subscription_state", "mrr_trend"), _subscriptions),
    "usage": SharedQuery(("seat_utilisation", "usage_trend"), _usage),
}
"""Measures that come from the same rows, each group read by one query."""


def read_measures(session: Session, as_of: date, names: Iterable[str]) -> dict[str, Readings]:
    """The readings of each named measure as of `as_of`, running every query once: a query
    shared by several measures (`SHARED_QUERIES`) serves all of them."""
    readings: dict[str, Readings] = {}
    wanted = list(names)
    for name in wanted:
        if name in readings:
            continue
        shared = next((q for q in SHARED_QUERIES.values() if name in q.measures), None)
        if shared is None:
            readings[name] = MEASURES[name].query(session, as_of)
        else:
            readings.update(shared.read(session, as_of))
    return {name: readings[name] for name in wanted}
