"""Account-level signals read for all accounts at once: traits, tenure, surveys and the
recency of tickets, CSM calls and survey answers, each one aggregate query.

Point in time like every measure: a trait's value is the latest seen before the end of the
day scored; a survey answer counts from its `responded_at`; a ticket from its creation; a
CSM call from when it was recorded; an account's start is its `created_at`, else its first
subscription's start, and counts only once it is past.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlmodel import col

from scoring.measures import Reading, Readings, cutoff
from scoring.signals.context import SignalContext
from scoring.signals.spec import RecencySignal, SurveySignal, TenureSignal, TraitSignal
from scoring.words import ago, plural
from store.models import Account, SentimentEntry, Subscription, SurveyResponse, Ticket
from store.traits import latest_traits

__all__ = ["read_recency_event", "read_survey", "read_tenure", "read_trait"]


def _day(moment: datetime | date | str) -> date:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).date() if moment.tzinfo else moment.date()
    if isinstance(moment, date):
        return moment
    return datetime.fromisoformat(str(moment)).date()


def read_trait(ctx: SignalContext, signal: TraitSignal, *, categorical: bool) -> Readings:
    """The trait's value as known then: a word for a categorical measure, else a number (a
    date as the days since it); a value of the other sort is left out as missing."""
    values = latest_traits(ctx.session, [signal.trait], cutoff(ctx.as_of)).get(signal.trait, {})
    readings: Readings = {}
    today = ctx.as_of.toordinal()
    for account_id, value in values.items():
        details: dict[str, Any] = {"trait": signal.trait.replace("_", " ")}
        if categorical:
            if value.kind not in ("category", "boolean") or value.text is None:
                continue
            readings[account_id] = Reading(value.text, {**details, "shown": value.text})
            continue
        if value.number is None:
            continue
        if value.kind == "date":
            days = float(today - int(value.number))
            shown = f"{value.text} ({ago(int(days))})"
            readings[account_id] = Reading(days, {**details, "shown": shown})
        elif value.kind == "number":
            readings[account_id] = Reading(value.number, {**details, "shown": f"{value.number:g}"})
    return readings


def read_tenure(ctx: SignalContext, _signal: TenureSignal) -> Readings:
    """Days from the account's start to the day scored, for accounts started by then."""
    end = cutoff(ctx.as_of)
    first_sub = (
        select(
            col(Subscription.account_id).label("account_id"),
            func.min(
                func.coalesce(col(Subscription.started_at), col(Subscription.created_at))
            ).label("started"),
        )
        .where(col(Subscription.account_id).is_not(None), col(Subscription.deleted_at).is_(None))
        .group_by(col(Subscription.account_id))
        .subquery()
    )
    stmt = select(col(Account.id), col(Account.created_at), first_sub.c.started).join_from(
        Account, first_sub, first_sub.c.account_id == col(Account.id), isouter=True
    )
    readings: Readings = {}
    for account_id, created, started in ctx.rows(stmt):
        since = created if created is not None else started
        if since is None:
            continue
        start = _day(since)
        if start >= end.date():
            continue
        days = (ctx.as_of - start).days
        details = {"since": start.isoformat(), "months": days * 12 // 365}
        readings[account_id] = Reading(float(days), details)
    return readings


NPS_PROMOTER, NPS_DETRACTOR = 9, 6
"""On the 0-10 scale: 9 and 10 promote, 0 to 6 detract."""


def read_survey(ctx: SignalContext, signal: SurveySignal) -> Readings:
    """The window's answers of the survey kind, each rescaled to the signal's scale, as a
    mean, a share at or above the bar (percent), or an NPS (-100 to 100)."""
    end = cutoff(ctx.as_of)
    scale = signal.on_scale
    rescaled = col(SurveyResponse.score) * float(scale) / col(SurveyResponse.scale_max)
    on_ten = col(SurveyResponse.score) * 10.0 / col(SurveyResponse.scale_max)
    stmt = (
        select(
            col(SurveyResponse.account_id),
            func.count(),
            func.sum(rescaled),
            func.sum(case((rescaled >= signal.bar - 1e-9, 1), else_=0)),
            func.sum(case((on_ten >= NPS_PROMOTER - 1e-9, 1), else_=0)),
            func.sum(case((on_ten <= NPS_DETRACTOR + 1e-9, 1), else_=0)),
        )
        .where(
            col(SurveyResponse.account_id).is_not(None),
            func.lower(col(SurveyResponse.kind)) == signal.survey,
            col(SurveyResponse.scale_max) > 0,
            col(SurveyResponse.responded_at) >= end - timedelta(days=signal.window_days),
            col(SurveyResponse.responded_at) < end,
        )
        .group_by(col(SurveyResponse.account_id))
    )
    readings: Readings = {}
    for account_id, count, total, at_bar, promoters, detractors in ctx.rows(stmt):
        n = int(count)
        value = {
            "mean": float(total) / n,
            "share": 100.0 * int(at_bar) / n,
            "nps": 100.0 * (int(promoters) - int(detractors)) / n,
        }[signal.stat]
        details = {"answers": n, "s": plural(n), "scale": scale, "survey": signal.survey.upper()}
        readings[account_id] = Reading(round(value, 2), details)
    return readings


def read_recency_event(ctx: SignalContext, signal: RecencySignal) -> Readings:
    """Days since the account's last ticket, CSM call or survey answer in the lookback."""
    end = cutoff(ctx.as_of)
    since = end - timedelta(days=signal.lookback_days)
    if signal.of == "ticket":
        account, moment = col(Ticket.account_id), col(Ticket.created_at)
        live = and_(col(Ticket.deleted_at).is_(None))
    elif signal.of == "sentiment":
        account, moment = col(SentimentEntry.account_id), col(SentimentEntry.recorded_at)
        live = and_(col(SentimentEntry.sentiment).is_not(None))
    else:
        account, moment = col(SurveyResponse.account_id), col(SurveyResponse.responded_at)
        live = and_(col(SurveyResponse.scale_max) > 0)
    stmt = (
        select(account, func.max(moment))
        .where(account.is_not(None), live, moment >= since, moment < end)
        .group_by(account)
    )
    readings: Readings = {}
    for account_id, last in ctx.rows(stmt):
        day = _day(last)
        days = (ctx.as_of - day).days
        details = {"last": day.isoformat(), "ago": ago(days), "never": False, "days_ago": days}
        readings[account_id] = Reading(float(days), details)
    return readings
