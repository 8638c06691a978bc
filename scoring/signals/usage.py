"""Usage metric signals read for all accounts at once: window aggregates, breadth, depth,
trend and recency, each one aggregate query over the long-form `usage_metrics`.

Point in time: a period (a day or a week) counts once it is complete (its last day is the
day scored or earlier) and recorded before the end of that day. A window of N days holds
the periods that start in the N days up to the day scored. The weekly `usage_snapshots`
rows read as two metrics, `active_users` and `licensed_seats`, so books that deliver the
weekly shape need nothing else.

Zero or missing: an account *reports usage* when it has any long-form usage row (of any
metric) known from the 90 days before the day scored (for `active_users` and
`licensed_seats`, any weekly snapshot too). For such an account a metric it did not use in
the window is a real zero (a sum, a count of active periods, a breadth); an account that
reports no usage at all has no reading, so a missing feed is never read as an idle
customer; and a metric nobody in the book has in the window reads as missing for all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql import Subquery
from sqlmodel import col

from scoring.measures import Reading, Readings, cutoff
from scoring.signals.context import SignalContext
from scoring.signals.spec import (
    BreadthSignal,
    DepthSignal,
    MetricSignal,
    RecencySignal,
    TrendSignal,
)
from scoring.words import ago, change
from store.models import Account, UsageMetric, UsageSnapshot

__all__ = [
    "REPORTING_DAYS",
    "SNAPSHOT_METRICS",
    "read_breadth",
    "read_depth",
    "read_metric",
    "read_recency_metric",
    "read_trend",
    "reporting_accounts",
]

REPORTING_DAYS = 90
"""An account with a usage row from this many days before reports usage."""
SNAPSHOT_METRICS = {
    "active_users": col(UsageSnapshot.active_users),
    "licensed_seats": col(UsageSnapshot.licensed_seats),
}
"""The weekly snapshot columns that read as metrics."""


def _in_window(day: Any, period_days: Any, start: date, as_of: date) -> ColumnElement[bool]:
    """The period starting `day` ends from `start` to `as_of` (days and weeks only), so it
    is complete by the end of `as_of` and falls in the window."""
    week = timedelta(days=6)
    return or_(
        and_(period_days == 1, day >= start, day <= as_of),
        and_(period_days == 7, day >= start - week, day <= as_of - week),
    )


def _metric_filter(
    metrics: Sequence[str] | None, prefix: str | None, held: Sequence[str] | None = None
) -> ColumnElement[bool]:
    """The named metrics, or those starting with `prefix`; `held` (the names the book
    holds) turns a prefix into a list of names too, so the index on the metric is searched
    name by name instead of read whole (a prefix `LIKE` cannot search it)."""
    metric = col(UsageMetric.metric)
    if prefix is not None:
        like = metric.startswith(prefix, autoescape=True)
        if held is None:
            return like
        return and_(metric.in_(_maybe_prefixed(held, prefix)), like)
    return metric.in_(sorted(set(metrics or ())))


def _maybe_prefixed(held: Sequence[str], prefix: str) -> list[str]:
    """The names that may start with `prefix` as `LIKE` compares: in any case, as SQLite's
    does (the `LIKE` itself still decides)."""
    folded = prefix.casefold()
    return sorted(m for m in held if m.casefold().startswith(folded))


def held_metrics(ctx: SignalContext) -> list[str]:
    """Every metric name the long-form table holds, once per run: one search of the
    metric index per name (a recursive query stepping from each name to the next), not a
    read of the whole table."""

    def compute() -> list[str]:
        metric = col(UsageMetric.metric)
        names = select(func.min(metric).label("name")).cte("names", recursive=True)
        following = select(func.min(metric)).where(metric > names.c.name).scalar_subquery()
        names = names.union_all(select(following).where(names.c.name.is_not(None)))
        stmt = select(names.c.name).where(names.c.name.is_not(None))
        return sorted(str(name) for (name,) in ctx.rows(stmt))

    return ctx.cached("usage:metric-names", compute)


def metric_rows(
    as_of: date,
    start: date,
    *,
    metrics: Sequence[str] | None = None,
    prefix: str | None = None,
    held: Sequence[str] | None = None,
) -> Subquery:
    """`(account_id, metric, day, value, period_days)` of the known periods of the named
    metrics (or of those starting with `prefix`, among `held` when given) that end from
    `start` to `as_of`."""
    day = col(UsageMetric.day)
    long_form: Select[Any] = select(  # type: ignore[assignment]  # labelled columns
        col(UsageMetric.account_id).label("account_id"),
        col(UsageMetric.metric).label("metric"),
        day.label("day"),
        col(UsageMetric.value).label("value"),
        col(UsageMetric.period_days).label("period_days"),
    ).where(
        _metric_filter(metrics, prefix, held),
        col(UsageMetric.account_id).is_not(None),
        col(UsageMetric.recorded_at) < cutoff(as_of),
        # the days of both period lengths at once, a range the index can bound
        day >= start - timedelta(days=6),
        day <= as_of,
        _in_window(day, col(UsageMetric.period_days), start, as_of),
    )
    wanted = [] if prefix is not None else [m for m in (metrics or ()) if m in SNAPSHOT_METRICS]
    if not wanted:
        return long_form.subquery()
    week = col(UsageSnapshot.period_start)
    branches: list[Select[Any]] = [long_form]
    for name in wanted:
        value = SNAPSHOT_METRICS[name]
        branches.append(
            select(  # type: ignore[arg-type]  # a union of like columns
                col(UsageSnapshot.account_id),
                literal(name),
                week,
                value,
                literal(7),
            ).where(
                col(UsageSnapshot.account_id).is_not(None),
                value.is_not(None),
                col(UsageSnapshot.recorded_at) < cutoff(as_of),
                week >= start - timedelta(days=6),
                week <= as_of - timedelta(days=6),
            )
        )
    return branches[0].union_all(*branches[1:]).subquery()


def reporting_accounts(ctx: SignalContext, metrics: Sequence[str] = ()) -> frozenset[int]:
    """Accounts with any long-form usage row known from the `REPORTING_DAYS` before the day
    scored, and, when `metrics` names a weekly snapshot metric, any weekly snapshot."""
    start, end = ctx.as_of - timedelta(days=REPORTING_DAYS), cutoff(ctx.as_of)

    def long_form() -> frozenset[int]:
        held = held_metrics(ctx)
        if not held:
            return frozenset()
        # per account, a search of the metric index for a recent row of each name (it
        # stops at the first), instead of every usage row through the account index
        recent = (
            select(literal(1))
            .where(
                col(UsageMetric.metric).in_(held),
                col(UsageMetric.account_id) == col(Account.id),
                col(UsageMetric.day) > start,
                col(UsageMetric.recorded_at) < end,
            )
            .exists()
        )
        stmt = select(col(Account.id)).where(recent)
        return frozenset(a for (a,) in ctx.rows(stmt))

    def weekly() -> frozenset[int]:
        stmt = (
            select(col(UsageSnapshot.account_id))
            .where(
                col(UsageSnapshot.account_id).is_not(None),
                col(UsageSnapshot.recorded_at) < end,
                col(UsageSnapshot.period_start) > start,
            )
            .distinct()
        )
        return frozenset(a for (a,) in ctx.rows(stmt))

    accounts = ctx.cached("usage:reporting", long_form)
    if any(m in SNAPSHOT_METRICS for m in metrics):
        accounts |= ctx.cached("usage:reporting-weekly", weekly)
    return accounts


def _window_start(as_of: date, days: int) -> date:
    return as_of - timedelta(days=days - 1)


def read_metric(ctx: SignalContext, signal: MetricSignal) -> Readings:
    """The metric aggregated over the window, per account reporting usage."""
    rows = metric_rows(
        ctx.as_of, _window_start(ctx.as_of, signal.window_days), metrics=[signal.metric]
    )
    ranked = func.row_number().over(partition_by=rows.c.account_id, order_by=rows.c.day.desc())
    inner = select(rows.c.account_id, rows.c.day, rows.c.value, ranked.label("rn")).subquery()
    stmt = select(
        inner.c.account_id,
        func.sum(inner.c.value),
        func.count(),
        func.max(inner.c.value),
        func.sum(case((inner.c.value > 0, 1), else_=0)),
        func.sum(case((inner.c.rn == 1, inner.c.value), else_=0)),
    ).group_by(inner.c.account_id)
    found = {a: rest for a, *rest in ctx.rows(stmt)}
    if not found:  # nobody has the metric: the book does not hold it (yet)
        return {}
    readings: Readings = {}
    base = {"metric": signal.metric.replace("_", " "), "window_days": signal.window_days}
    for account_id in reporting_accounts(ctx, [signal.metric]) | found.keys():
        total, periods, top, active, latest = found.get(account_id, (0.0, 0, 0.0, 0, 0.0))
        if signal.agg == "latest" and not periods:
            continue
        value = {
            "sum": float(total),
            "mean": float(total) / periods if periods else 0.0,
            "max": float(top),
            "latest": float(latest),
            "days_active": float(active),
        }[signal.agg]
        readings[account_id] = Reading(round(value, 4), {**base, "periods": int(periods)})
    return readings


def _names(signal: BreadthSignal) -> list[str] | None:
    return list(signal.metrics_) if signal.metrics_ is not None else None


def read_breadth(ctx: SignalContext, signal: BreadthSignal) -> Readings:
    """How many of the metrics each account used (above zero) in the window."""
    start = _window_start(ctx.as_of, signal.window_days)
    held = held_metrics(ctx) if signal.prefix is not None else None
    rows = metric_rows(ctx.as_of, start, metrics=_names(signal), prefix=signal.prefix, held=held)
    stmt = (
        select(rows.c.account_id, rows.c.metric)
        .where(rows.c.value > 0)
        .group_by(rows.c.account_id, rows.c.metric)
    )
    used: dict[int, set[str]] = {}
    for account_id, metric in ctx.rows(stmt):
        used.setdefault(account_id, set()).add(metric)
    every = sorted(signal.metrics_) if signal.metrics_ is not None else _book_metrics(ctx, signal)
    if not every or not used:
        return {}
    readings: Readings = {}
    for account_id in reporting_accounts(ctx) | used.keys():
        mine = used.get(account_id, set())
        unused = [m.removeprefix(signal.prefix or "") for m in every if m not in mine]
        details = {
            "used": len(mine),
            "of": len(every),
            "unused": ", ".join(unused) or "none",
            "window_days": signal.window_days,
        }
        value = len(mine) / len(every) if signal.share else float(len(mine))
        readings[account_id] = Reading(round(value, 4), details)
    return readings


def _book_metrics(ctx: SignalContext, signal: BreadthSignal) -> list[str]:
    """Every metric with the signal's prefix the book holds, known as of the day scored:
    of the names held, those with a row known then (one index search each)."""
    names = _maybe_prefixed(held_metrics(ctx), signal.prefix or "")
    if not names:
        return []
    branches = [
        select(literal(name)).where(
            select(literal(1))
            .where(
                col(UsageMetric.metric) == name,
                _metric_filter(None, signal.prefix),
                col(UsageMetric.recorded_at) < cutoff(ctx.as_of),
                col(UsageMetric.day) <= ctx.as_of,
            )
            .exists()
        )
        for name in names
    ]
    stmt = branches[0] if len(branches) == 1 else union_all(*branches)
    return sorted(m for (m,) in ctx.rows(stmt))


def read_depth(ctx: SignalContext, signal: DepthSignal) -> Readings:
    """The metric's sum over the window per unit of `per` (its mean over the window)."""
    start = _window_start(ctx.as_of, signal.window_days)
    rows = metric_rows(ctx.as_of, start, metrics=[signal.metric, signal.per])
    is_per = rows.c.metric == signal.per
    stmt = select(
        rows.c.account_id,
        func.sum(case((is_per, 0.0), else_=rows.c.value)),
        func.sum(case((is_per, rows.c.value), else_=0.0)),
        func.sum(case((is_per, 1), else_=0)),
    ).group_by(rows.c.account_id)
    readings: Readings = {}
    for account_id, total, per_total, per_periods in ctx.rows(stmt):
        if not per_periods or not per_total or float(per_total) <= 0:
            continue
        per_mean = float(per_total) / int(per_periods)
        details = {
            "total": round(float(total), 1),
            "per_mean": round(per_mean, 1),
            "metric": signal.metric.replace("_", " "),
            "per": signal.per.replace("_", " "),
        }
        readings[account_id] = Reading(round(float(total) / per_mean, 4), details)
    return readings


def read_trend(ctx: SignalContext, signal: TrendSignal) -> Readings:
    """The metric's sum over the last window over its sum in the window before."""
    window = signal.window_days
    split = _window_start(ctx.as_of, window)
    rows = metric_rows(ctx.as_of, split - timedelta(days=window), metrics=[signal.metric])
    recent = _in_window(rows.c.day, rows.c.period_days, split, ctx.as_of)
    stmt = select(
        rows.c.account_id,
        func.sum(case((recent, rows.c.value), else_=0.0)),
        func.sum(case((recent, 0.0), else_=rows.c.value)),
        func.sum(case((recent, 0), else_=1)),
    ).group_by(rows.c.account_id)
    readings: Readings = {}
    for account_id, now, before, before_periods in ctx.rows(stmt):
        if not before_periods or float(before) <= 0:
            continue
        ratio = float(now) / float(before)
        details = {
            "change": change(ratio),
            "recent": round(float(now), 1),
            "before": round(float(before), 1),
            "metric": signal.metric.replace("_", " "),
        }
        readings[account_id] = Reading(round(ratio, 4), details)
    return readings


def read_recency_metric(ctx: SignalContext, signal: RecencySignal) -> Readings:
    """Days since the last period with the metric above zero; accounts reporting usage
    without one in the lookback read as the lookback."""
    start = _window_start(ctx.as_of, signal.lookback_days)
    rows = metric_rows(ctx.as_of, start, metrics=[str(signal.metric)])
    stmt = (
        select(rows.c.account_id, func.max(rows.c.day))
        .where(rows.c.value > 0)
        .group_by(rows.c.account_id)
    )
    last = {account_id: day for account_id, day in ctx.rows(stmt)}
    if not last:
        return {}
    readings: Readings = {}
    for account_id in reporting_accounts(ctx, [str(signal.metric)]) | last.keys():
        day = last.get(account_id)
        if day is None:
            days = signal.lookback_days
            details = {"last": "never", "ago": f"over {days} days ago", "never": True}
        else:
            days = (ctx.as_of - _as_date(day)).days
            details = {"last": _as_date(day).isoformat(), "ago": ago(days), "never": False}
        readings[account_id] = Reading(float(days), details)
    return readings


def _as_date(value: Any) -> date:
    """A date from a row: SQLite hands back text from a union's date column."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
