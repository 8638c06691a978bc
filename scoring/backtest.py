"""Does the score predict churn? A point-in-time backtest of a scorecard on synced history.

The backtest scores every account at regular snapshots (monthly by default) over a past
window, using only what was known at each snapshot (the measures' `as_of` rules), then
checks each score against what happened next. It never writes scores to the store, so a
changed scorecard can be tried without touching the real history, and several scorecards
can be compared on the same snapshots (`compare`). `collect` keeps every observation with
its readings, so a fit (`scoring.fit`) can re-score them without reading the store again.

What churn is: see `scoring.churn_history` (the last alive subscription ended, with no new
one within a grace period).

What is measured. Each (account, snapshot) where the account was a customer at the end of
the snapshot day and had a score is one observation; it is labelled churned when the
account churned within `horizon_days` after the snapshot. Only snapshots whose whole
horizon lies before `today` are labelled (a later churn cannot be known yet). Then
(the formulas are in `scoring.backtest_figures`):

- ROC AUC, with a lower score meaning a higher risk: the chance that a churned observation
  scores below a retained one, ties counting half. 0.5 is chance, 1.0 a perfect ranking.
- The churn rate of each band, and its lift over the overall rate.
- Precision and recall of the red band, and of red or yellow ("flagged").
- The churn rate and lift of the riskiest 10% of scores.
- Each measure's own AUC, from its 0-100 score at each observation, over the observations
  where it had data (its coverage): which signals separate churners in this book.
- Lead time, over the accounts that churned after the first snapshot and were scored
  before: the warning is the unbroken run of red or yellow snapshots that ends at the last
  snapshot before churn; its lead is the days from the run's first snapshot to churn. A
  churner is flagged in time when its lead is at least `min_lead_days`.
"""

from __future__ import annotations

import calendar
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Engine, or_, select
from sqlmodel import Session, col

from scoring.backtest_figures import (
    BandOutcome,
    auc,
    band_outcomes,
    flagging,
    riskiest_share,
    signal_aucs,
)
from scoring.backtest_report import print_backtests
from scoring.backtest_result import Backtest
from scoring.churn_history import REACTIVATION_GRACE, ChurnHistory, load_churn
from scoring.health import compute_score
from scoring.measures import Reading, cutoff
from scoring.peers import percentile_measures, rank_readings, segments
from scoring.readings import read_readings
from scoring.scorecard import Scorecard
from store.models import Account

__all__ = [
    "REACTIVATION_GRACE",
    "Backtest",
    "BacktestRun",
    "BandOutcome",
    "ChurnHistory",
    "Observation",
    "Scored",
    "auc",
    "backtest",
    "collect",
    "compare",
    "load_churn",
    "measure_scores",
    "print_backtests",
    "snapshot_days",
    "summarise",
]

Progress = Callable[[int, int], None]
"""Called after each snapshot with (snapshots done, snapshots in all)."""


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


@dataclass(frozen=True)
class Scored:
    """One account's score at one snapshot, with the readings it was computed from."""

    score: float
    band: str
    readings: Mapping[str, Reading]
    """The scorecard's measures with data, by name (percentile ranks already added)."""


Scores = dict[int, Scored]
"""Account id -> its score at one snapshot."""


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
        mine = [m.name for m in card.measures()]
        ranked = readings
        if percentile_measures(card):
            ranked = rank_readings(readings, customers, _always(card), segment_of)
        scores: Scores = {}
        for account_id in customers:
            got = {n: ranked[n][account_id] for n in mine if account_id in ranked.get(n, {})}
            result = compute_score(card, got)
            if result is not None:
                scores[account_id] = Scored(result.score, result.band, got)
        results.append(scores)
    return results


def measure_scores(card: Scorecard, readings: Mapping[str, Reading]) -> dict[str, float | None]:
    """Each measure's 0-100 score from one account's readings; None without data (or with
    a dated reading whose weight has faded away, which scoring leaves out too)."""
    scores: dict[str, float | None] = {}
    for measure in card.measures():
        reading = readings.get(measure.name)
        if reading is None or measure.freshness(reading.details) <= 0.0:
            scores[measure.name] = None
        else:
            scores[measure.name] = measure.score(reading.value, reading.details)
    return scores


# ---- one run over the snapshots --------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """One labelled (account, snapshot): its score and whether it churned within the horizon."""

    account_id: int
    day: date
    score: float
    band: str
    churned: bool
    readings: Mapping[str, Reading]


@dataclass(frozen=True)
class BacktestRun:
    """Every scorecard's scores at every snapshot, and the churn they are judged against."""

    scorecards: tuple[Scorecard, ...]
    snapshots: tuple[date, ...]
    scores: tuple[tuple[Scores, ...], ...]
    """Per scorecard, per snapshot (oldest first)."""
    churn: ChurnHistory
    today: date
    horizon_days: int
    min_lead_days: int

    @property
    def last_labelled(self) -> date:
        """The last snapshot whose whole horizon lies before `today`."""
        return self.today - timedelta(days=self.horizon_days)

    def history(self, index: int = 0) -> list[tuple[date, Scores]]:
        return list(zip(self.snapshots, self.scores[index], strict=True))

    def observations(self, index: int = 0) -> list[Observation]:
        """The labelled observations of scorecard `index`, oldest snapshot first."""
        found: list[Observation] = []
        for day, scores in self.history(index):
            if day > self.last_labelled:
                continue
            for account_id, got in scores.items():
                churned = self.churn.churned_within(account_id, day, self.horizon_days)
                found.append(
                    Observation(account_id, day, got.score, got.band, churned, got.readings)
                )
        return found


def collect(
    engine: Engine,
    scorecards: Sequence[Scorecard],
    *,
    today: date,
    months: int = 12,
    horizon_days: int = 90,
    min_lead_days: int = 30,
    weekly: bool = False,
    progress: Progress | None = None,
) -> BacktestRun:
    """Score every customer at every snapshot with each scorecard (nothing is written)."""
    if months < 1 or horizon_days < 1:
        raise ValueError("months and horizon_days must be at least 1")
    days = snapshot_days(today, months, weekly=weekly)
    runs: list[list[Scores]] = []
    with Session(engine) as session:
        churn = load_churn(session, today)
        for done, day in enumerate(days, start=1):
            runs.append(_score_snapshot(session, day, scorecards, churn))
            if progress is not None:
                progress(done, len(days))
    per_card = tuple(tuple(run[index] for run in runs) for index in range(len(scorecards)))
    return BacktestRun(tuple(scorecards), days, per_card, churn, today, horizon_days, min_lead_days)


# ---- figures of one scorecard ----------------------------------------------------------


def _lead_days(
    history: Sequence[tuple[date, Scores]], account_id: int, churn_day: date
) -> int | None:
    """Days from the first snapshot of the red or yellow run ending at the last snapshot
    before `churn_day`, to `churn_day`; None when that last snapshot was green or absent."""
    before = [
        (day, s[account_id].band) for day, s in history if day < churn_day and account_id in s
    ]
    first: date | None = None
    for day, band in reversed(before):
        if band == "green":
            break
        first = day
    return (churn_day - first).days if first is not None else None


def _leads(run: BacktestRun, index: int) -> list[int | None]:
    history = run.history(index)
    first = history[0][0] if history else run.today
    leads: list[int | None] = []
    for account_id, days in run.churn.churns.items():
        for churn_day in days:
            if first < churn_day and any(d < churn_day and account_id in s for d, s in history):
                leads.append(_lead_days(history, account_id, churn_day))
    return leads


def summarise(run: BacktestRun, index: int = 0) -> Backtest:
    """The figures of scorecard `index` of `run` (see the module docstring)."""
    card = run.scorecards[index]
    observed = run.observations(index)
    churned = [o.churned for o in observed]
    labelled = [(o.band, o.churned) for o in observed]
    per_measure = [measure_scores(card, o.readings) for o in observed]
    signals = {m.name: [s[m.name] for s in per_measure] for m in card.measures()}
    leads = _leads(run, index)
    warned = [lead for lead in leads if lead is not None]
    return Backtest(
        scorecard_version=card.version,
        today=run.today,
        horizon_days=run.horizon_days,
        min_lead_days=run.min_lead_days,
        snapshots=run.snapshots,
        labelled_snapshots=sum(day <= run.last_labelled for day in run.snapshots),
        observations=len(observed),
        accounts=len({o.account_id for o in observed}),
        churned_observations=sum(churned),
        churners=len(leads),
        auc=auc([o.score for o in observed], churned),
        bands=band_outcomes(labelled),
        flagged_churners=sum(lead >= run.min_lead_days for lead in warned),
        median_lead_days=statistics.median(warned) if warned else None,
        thresholds=(card.bands.green, card.bands.yellow),
        red=flagging(labelled, ("red",)),
        flagged=flagging(labelled, ("red", "yellow")),
        riskiest=riskiest_share([o.score for o in observed], churned),
        measures=signal_aucs(signals, churned),
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
    progress: Progress | None = None,
) -> tuple[Backtest, ...]:
    """Backtest several scorecards on the same snapshots, one result each, in order."""
    run = collect(
        engine,
        scorecards,
        today=today,
        months=months,
        horizon_days=horizon_days,
        min_lead_days=min_lead_days,
        weekly=weekly,
        progress=progress,
    )
    return tuple(summarise(run, index) for index in range(len(scorecards)))


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
