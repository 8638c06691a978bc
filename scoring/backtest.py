"""Does the score predict churn? A point-in-time backtest of a scorecard on synced history.

The backtest scores every account at regular snapshots (monthly by default) over a past
window, using only what was known at each snapshot (the measures' `as_of` rules), then
checks each score against what happened next. It never writes scores to the store, so a
changed scorecard can be tried without touching the real history, and several scorecards
can be compared on the same snapshots (`compare`).

What churn is. The store keeps no dated churn flag on accounts (a CRM lifecycle stage or a
soft delete is current state, with no date), so churn is read from billing, where it is
dated: an account is a customer while one of its subscriptions is alive (started, and not
ended: `ended_at`, or `canceled_at` for a canceled subscription without it, the same rule
as the `subscription_state` measure). The account churns when its last alive subscription
ends and no new one starts within `REACTIVATION_GRACE` (a plan change or a late renewal is
not churn); the churn day is that end. An account that came back later counts as churned
that time. Accounts without any subscription are left out: their churn cannot be seen.

What is measured. Each (account, snapshot) where the account was a customer at the end of
the snapshot day and had a score is one observation; it is labelled churned when the
account churned within `horizon_days` after the snapshot. Only snapshots whose whole
horizon lies before `today` are labelled (a later churn cannot be known yet). Then:

- ROC AUC, by the rank (Mann-Whitney) formula, with a lower score meaning a higher risk:
  the chance that a churned observation scores below a retained one, ties counting half.
  0.5 is chance, 1.0 a perfect ranking.
- The churn rate of each band: the share of observations in red, yellow and green that
  churned within the horizon, and its lift over the overall rate.
- Lead time, over the accounts that churned after the first snapshot and were scored
  before: the warning is the unbroken run of red or yellow snapshots that ends at the last
  snapshot before churn; its lead is the days from the run's first snapshot to churn. A
  churner is flagged in time when its lead is at least `min_lead_days`.
"""

from __future__ import annotations

import calendar
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, or_, select
from sqlmodel import Session, col

from scoring.health import compute_score
from scoring.measures import cutoff
from scoring.peers import percentile_measures, rank_readings, segments
from scoring.readings import read_readings
from scoring.scorecard import BANDS, Scorecard
from store.models import Account, Subscription

__all__ = [
    "REACTIVATION_GRACE",
    "Backtest",
    "BandOutcome",
    "ChurnHistory",
    "auc",
    "backtest",
    "compare",
    "load_churn",
    "print_backtests",
    "snapshot_days",
]

REACTIVATION_GRACE = timedelta(days=30)
"""A subscription starting within this long after the last one ended continues the stay."""


@dataclass(frozen=True)
class BandOutcome:
    """How the observations of one band turned out: how many churned within the horizon."""

    band: str
    observations: int
    churned: int
    churn_rate: float | None
    lift: float | None
    """The band's churn rate over the overall churn rate."""


@dataclass(frozen=True)
class Backtest:
    """The result of backtesting one scorecard; see the module docstring for each figure."""

    scorecard_version: str
    today: date
    horizon_days: int
    min_lead_days: int
    snapshots: tuple[date, ...]
    labelled_snapshots: int
    observations: int
    accounts: int
    churned_observations: int
    churners: int
    auc: float | None
    bands: tuple[BandOutcome, ...]
    flagged_churners: int
    median_lead_days: float | None

    @property
    def churn_rate(self) -> float | None:
        return self.churned_observations / self.observations if self.observations else None

    def verdict(self) -> str:
        """One line a CS lead can say out loud."""
        if not self.observations:
            return "No scored customers in the window: nothing to test."
        if not self.churned_observations or self.churned_observations == self.observations:
            return "No churn (or only churn) within the horizon: the score cannot be tested yet."
        assert self.auc is not None
        strength = (
            "strongly predicts"
            if self.auc >= 0.8
            else "predicts"
            if self.auc >= 0.7
            else "weakly predicts"
            if self.auc >= 0.6
            else "does not predict"
        )
        flagged = [b for b in self.bands if b.band != "green"]
        at_risk = sum(b.churned for b in flagged) / max(1, sum(b.observations for b in flagged))
        green = next((b.churn_rate for b in self.bands if b.band == "green"), None)
        versus = ""
        if green:
            versus = f"; red or yellow accounts churned {at_risk / green:.1f}x as often as green"
        elif green == 0:
            versus = "; no green account churned"
        return (
            f"The score {strength} churn within {self.horizon_days} days "
            f"(AUC {self.auc:.2f}){versus}; {self.flagged_churners} of {self.churners} "
            f"churners were red or yellow at least {self.min_lead_days} days before."
        )


# ---- churn -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChurnHistory:
    """When each account was a customer (stays from start to end) and when it churned."""

    stays: Mapping[int, tuple[tuple[datetime, datetime | None], ...]]
    churns: Mapping[int, tuple[date, ...]]

    def customer_at(self, account_id: int, instant: datetime) -> bool:
        return any(
            start < instant and (end is None or end >= instant)
            for start, end in self.stays.get(account_id, ())
        )

    def churned_within(self, account_id: int, day: date, horizon_days: int) -> bool:
        last = day + timedelta(days=horizon_days)
        return any(day < churn <= last for churn in self.churns.get(account_id, ()))


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def _stays(
    spans: Iterable[tuple[datetime, datetime | None]],
) -> tuple[tuple[datetime, datetime | None], ...]:
    """Merge subscription spans into stays, bridging gaps up to `REACTIVATION_GRACE`."""
    merged: list[tuple[datetime, datetime | None]] = []
    for start, end in sorted(spans, key=lambda s: s[0]):
        if merged:
            last_start, last_end = merged[-1]
            if last_end is None or start <= last_end + REACTIVATION_GRACE:
                longest = None if last_end is None or end is None else max(last_end, end)
                merged[-1] = (last_start, longest)
                continue
        merged.append((start, end))
    return tuple(merged)


def load_churn(session: Session, today: date) -> ChurnHistory:
    """Every account's stays and churn days up to `today`, from one query over all the
    subscriptions of live accounts."""
    stmt = (
        select(
            col(Subscription.account_id),
            func.coalesce(col(Subscription.started_at), col(Subscription.created_at)),
            col(Subscription.ended_at),
            col(Subscription.canceled_at),
            col(Subscription.status).in_(("canceled", "incomplete_expired")),
        )
        .join(Account, col(Account.id) == col(Subscription.account_id))
        .where(col(Subscription.deleted_at).is_(None), col(Account.deleted_at).is_(None))
    )
    spans: dict[int, list[tuple[datetime, datetime | None]]] = {}
    for account_id, started, ended_at, canceled_at, final in session.connection().execute(stmt):
        if account_id is None:
            continue
        finish = _aware(ended_at) or ((_aware(canceled_at) or _NEVER) if final else None)
        spans.setdefault(account_id, []).append((_aware(started) or _NEVER, finish))
    until = cutoff(today)
    stays = {a: _stays(s) for a, s in spans.items()}
    churns = {
        a: tuple(e.date() for _, e in s if e is not None and e < until) for a, s in stays.items()
    }
    return ChurnHistory(stays=stays, churns={a: c for a, c in churns.items() if c})


# ---- snapshots and scores --------------------------------------------------------------


def _months_back(day: date, months: int) -> date:
    total = day.year * 12 + day.month - 1 - months
    year, month = divmod(total, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def snapshot_days(today: date, months: int, *, weekly: bool = False) -> tuple[date, ...]:
    """The snapshot days of a window of `months` ending `today`, oldest first: `today`
    and every whole month (or week) before it, back to the window's start."""
    start = _months_back(today, months)
    days: list[date] = []
    step = 0
    while True:
        day = today - timedelta(weeks=step) if weekly else _months_back(today, step)
        if day < start:
            return tuple(reversed(days))
        days.append(day)
        step += 1


def _live_accounts(session: Session, day: date) -> list[int]:
    end = cutoff(day)
    stmt = select(col(Account.id)).where(
        or_(col(Account.deleted_at).is_(None), col(Account.deleted_at) >= end),
        or_(col(Account.created_at).is_(None), col(Account.created_at) < end),
    )
    return [a for (a,) in session.connection().execute(stmt) if a is not None]


Scores = dict[int, tuple[float, str]]
"""Account id -> (score, band) at one snapshot."""


def _always(card: Scorecard) -> Callable[[int], Scorecard]:
    return lambda _account_id: card


def _score_snapshot(
    session: Session, day: date, scorecards: Sequence[Scorecard], churn: ChurnHistory
) -> list[Scores]:
    """Each scorecard's scores of the customers at the end of `day`, from one run of each
    measure query over all accounts (shared by the scorecards)."""
    readings = read_readings(session, day, [m for card in scorecards for m in card.measures()])
    end = cutoff(day)
    customers = [a for a in _live_accounts(session, day) if churn.customer_at(a, end)]
    segment_of = segments(session) if any(map(percentile_measures, scorecards)) else {}
    results: list[Scores] = []
    for card in scorecards:
        mine = card.measure_names()
        ranked = readings
        if percentile_measures(card):
            ranked = rank_readings(readings, customers, _always(card), segment_of)
        scores: Scores = {}
        for account_id in customers:
            got = {n: ranked[n][account_id] for n in mine if account_id in ranked[n]}
            result = compute_score(card, got)
            if result is not None:
                scores[account_id] = (result.score, result.band)
        results.append(scores)
    return results


# ---- figures ---------------------------------------------------------------------------


def auc(scores: Sequence[float], churned: Sequence[bool]) -> float | None:
    """ROC AUC of `scores` for `churned`, a lower score meaning a higher risk: the
    Mann-Whitney rank formula with average ranks for ties. None without both classes."""
    positives = sum(churned)
    negatives = len(churned) - positives
    if not positives or not negatives:
        return None
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # riskiest ranks highest
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, c in zip(ranks, churned, strict=True) if c)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _band_outcomes(labelled: Sequence[tuple[str, bool]]) -> tuple[BandOutcome, ...]:
    overall = sum(c for _, c in labelled) / len(labelled) if labelled else 0.0
    outcomes = []
    for band in reversed(BANDS):
        mine = [c for b, c in labelled if b == band]
        rate = sum(mine) / len(mine) if mine else None
        lift = rate / overall if rate is not None and overall else None
        outcomes.append(BandOutcome(band, len(mine), sum(mine), rate, lift))
    return tuple(outcomes)


def _lead_days(
    history: Sequence[tuple[date, Scores]], account_id: int, churn_day: date
) -> int | None:
    """Days from the first snapshot of the red or yellow run ending at the last snapshot
    before `churn_day`, to `churn_day`; None when that last snapshot was green or absent."""
    before = [(day, s[account_id][1]) for day, s in history if day < churn_day and account_id in s]
    first: date | None = None
    for day, band in reversed(before):
        if band == "green":
            break
        first = day
    return (churn_day - first).days if first is not None else None


def _summarise(
    card: Scorecard,
    history: Sequence[tuple[date, Scores]],
    churn: ChurnHistory,
    today: date,
    horizon_days: int,
    min_lead_days: int,
) -> Backtest:
    last_labelled = today - timedelta(days=horizon_days)
    observed: list[tuple[int, float, str, bool]] = []
    for day, scores in history:
        if day > last_labelled:
            continue
        for account_id, (score, band) in scores.items():
            observed.append(
                (account_id, score, band, churn.churned_within(account_id, day, horizon_days))
            )
    first = history[0][0] if history else today
    leads: list[int | None] = []
    for account_id, days in churn.churns.items():
        for churn_day in days:
            if first < churn_day and any(d < churn_day and account_id in s for d, s in history):
                leads.append(_lead_days(history, account_id, churn_day))
    warned = [lead for lead in leads if lead is not None]
    return Backtest(
        scorecard_version=card.version,
        today=today,
        horizon_days=horizon_days,
        min_lead_days=min_lead_days,
        snapshots=tuple(day for day, _ in history),
        labelled_snapshots=sum(day <= last_labelled for day, _ in history),
        observations=len(observed),
        accounts=len({o[0] for o in observed}),
        churned_observations=sum(o[3] for o in observed),
        churners=len(leads),
        auc=auc([o[1] for o in observed], [o[3] for o in observed]),
        bands=_band_outcomes([(o[2], o[3]) for o in observed]),
        flagged_churners=sum(lead >= min_lead_days for lead in warned),
        median_lead_days=statistics.median(warned) if warned else None,
    )


def compare(
    engine: Engine,
    scorecards: Sequence[Scorecard],
    *,
    today: date,
    months: int = 12,
    horizon_days: int = 90,
    min_lead_days: int = 30,
    weekly: bool = False,
) -> tuple[Backtest, ...]:
    """Backtest several scorecards on the same snapshots, one result each, in order."""
    if months < 1 or horizon_days < 1:
        raise ValueError("months and horizon_days must be at least 1")
    days = snapshot_days(today, months, weekly=weekly)
    with Session(engine) as session:
        churn = load_churn(session, today)
        runs = [(day, _score_snapshot(session, day, scorecards, churn)) for day in days]
    return tuple(
        _summarise(
            card,
            [(day, scores[index]) for day, scores in runs],
            churn,
            today,
            horizon_days,
            min_lead_days,
        )
        for index, card in enumerate(scorecards)
    )


def backtest(
    engine: Engine,
    scorecard: Scorecard,
    *,
    today: date,
    months: int = 12,
    horizon_days: int = 90,
    min_lead_days: int = 30,
    weekly: bool = False,
) -> Backtest:
    """Backtest one scorecard over the `months` before `today` (see the module docstring)."""
    return compare(
        engine,
        [scorecard],
        today=today,
        months=months,
        horizon_days=horizon_days,
        min_lead_days=min_lead_days,
        weekly=weekly,
    )[0]


# ---- rendering -------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _rows(result: Backtest) -> list[tuple[str, str]]:
    rows = [
        ("ROC AUC (lower score = higher risk)", "-" if result.auc is None else f"{result.auc:.3f}"),
        (
            "Snapshots (with a full horizon)",
            f"{len(result.snapshots)} ({result.labelled_snapshots})",
        ),
        ("Observations (account x snapshot)", str(result.observations)),
        ("Accounts", str(result.accounts)),
        (
            f"Churned within {result.horizon_days} days",
            f"{result.churned_observations} ({_percent(result.churn_rate)})",
        ),
    ]
    for band in result.bands:
        lift = "" if band.lift is None else f", lift {band.lift:.1f}x"
        rows.append(
            (
                f"Churn rate of {band.band}",
                f"{_percent(band.churn_rate)} of {band.observations}{lift}",
            )
        )
    median = "-" if result.median_lead_days is None else f"{result.median_lead_days:.0f} days"
    rows += [
        ("Churners in the window", str(result.churners)),
        (f"Red or yellow {result.min_lead_days}+ days before churn", str(result.flagged_churners)),
        ("Median lead time (first warning to churn)", median),
    ]
    return rows


def print_backtests(console: Console, results: Sequence[Backtest]) -> None:
    """A table of the figures, one column per scorecard, and each one's verdict."""
    if not results:
        return
    first = results[0]
    window = f"{first.snapshots[0]} to {first.snapshots[-1]}" if first.snapshots else "-"
    table = Table(
        title=f"Backtest: does the score predict churn? Snapshots {window}",
        title_justify="left",
        header_style="bold",
    )
    table.add_column("Figure")
    for result in results:
        table.add_column(f"scorecard {result.scorecard_version}", justify="right")
    columns = [_rows(r) for r in results]
    for index, (label, _) in enumerate(columns[0]):
        table.add_row(label, *(column[index][1] for column in columns))
    console.print(table)
    for result in results:
        prefix = f"{result.scorecard_version}: " if len(results) > 1 else ""
        console.print(prefix + result.verdict(), highlight=False)
