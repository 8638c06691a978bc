"""`gather_facts`: one team's `DigestFacts` for a week, from a fixed handful of queries.

The queries (`digest_queries`) read the team's book once; everything else is computed here
from their results: who is a customer at the end of each week, the band distribution and
its movement, at-risk ARR, renewals, the largest declines with the measures that moved them
(`scoring.trend.moves`), the CSM-versus-data signals of the latest scores, and the CSM
scoreboard, which is the team report (`scoring.team`) of the quarter to date.

Money is in the reporting currency (`store.money.Rates`), converted at the rates of the
week's last day: sums of ARR, and each account's ARR where its currency has a rate. An
amount in a currency without a rate is shown apart in its own currency, and `money_note`
says the figures are partial and how to add the rate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from notifications import digest_queries as queries
from notifications.digest_facts import (
    BandCounts,
    BandMove,
    Decline,
    DigestFacts,
    DigestTeam,
    Disagreement,
    Money,
    Renewal,
    Scoreboard,
    WeekBands,
)
from notifications.digest_queries import BookAccount
from scoring.measures import cutoff
from scoring.team import Period, TeamReportError, team_report
from scoring.trend import moves
from store.models import HealthScore
from store.money import Rates

__all__ = [
    "AT_RISK",
    "HISTORY_WEEKS",
    "RENEWAL_DAYS",
    "TOP_DECLINES",
    "gather_facts",
    "quarter_to_date",
    "week_ends",
]

HISTORY_WEEKS = 12
RENEWAL_DAYS = 90
TOP_DECLINES = 5
AT_RISK = ("yellow", "red")
SIGNAL_KIND = "sentiment_vs_data"
_STATE_ORDER = {"green": 0, "yellow": 1, "red": 2, "unscored": 3, None: 4}


def week_ends(week_ending: date, weeks: int = HISTORY_WEEKS) -> list[date]:
    """The last days of `weeks` weeks, oldest first, the last being `week_ending`."""
    return [week_ending - timedelta(weeks=k) for k in range(max(weeks, 2) - 1, -1, -1)]


def quarter_to_date(day: date) -> Period:
    """From the first day of `day`'s quarter to `day`."""
    quarter = (day.month - 1) // 3 + 1
    start = date(day.year, 3 * quarter - 2, 1)
    return Period(f"{day.year}-Q{quarter} to date", start, day)


@dataclass(frozen=True)
class _Book:
    """What the queries found about a team's book over the weeks of `days`."""

    days: Sequence[date]
    accounts: dict[int, BookAccount]
    people: dict[str, str]
    alive: dict[int, tuple[int, ...]]
    scores: dict[date, dict[int, tuple[float, str]]]

    def is_customer(self, account: BookAccount, week: int) -> bool:
        """An existing account with no subscription, or one alive, at the week's end."""
        counts = self.alive.get(account.id)
        alive = counts is None or counts[week] > 0
        return alive and account.exists_at(cutoff(self.days[week]))

    def customers(self, week: int) -> list[BookAccount]:
        return [a for a in self.accounts.values() if self.is_customer(a, week)]

    def state(self, account: BookAccount, week: int) -> str | None:
        """The account's band at the week's end, `unscored`, or None when no customer."""
        if not self.is_customer(account, week):
            return None
        found = self.scores[self.days[week]].get(account.id)
        return found[1] if found else "unscored"

    def csm(self, account: BookAccount) -> str | None:
        return self.people.get(account.owner_email)


def _read_book(session: Session, team: DigestTeam, days: Sequence[date]) -> _Book:
    end = cutoff(days[-1])
    people = queries.members(session, team, end)
    ids = queries.book_ids(people)
    accounts = queries.book(session, people, cutoff(days[0]), end)
    return _Book(
        days=days,
        accounts={a.id: a for a in accounts},
        people=people,
        alive=queries.alive_counts(session, ids, [cutoff(day) for day in days]),
        scores=queries.weekly_scores(session, ids, days),
    )


def _history(book: _Book) -> tuple[WeekBands, ...]:
    weeks = []
    for index, day in enumerate(book.days):
        counted = Counter(book.state(a, index) for a in book.accounts.values())
        counted.pop(None, None)
        weeks.append(WeekBands(day, BandCounts(**{str(k): n for k, n in counted.items()})))
    return tuple(weeks)


def _moves(book: _Book) -> tuple[BandMove, ...]:
    pairs = Counter(
        (book.state(account, -2), book.state(account, -1)) for account in book.accounts.values()
    )
    found = [BandMove(b, a, n) for (b, a), n in pairs.items() if b != a]
    return tuple(sorted(found, key=lambda m: (_STATE_ORDER[m.before], _STATE_ORDER[m.after])))


def _money(accounts: Iterable[BookAccount], rates: Rates, day: date) -> tuple[Money, ...]:
    """ARR in the reporting currency, then the amounts of currencies without a rate, largest
    first (none without ARR)."""
    total = rates.total(((a.currency, a.arr_minor) for a in accounts if a.arr_minor), day)
    converted = (Money(total.currency, total.minor),) if total.minor else ()
    return converted + tuple(Money(c, m) for c, m in total.left_out)


def _arr(account: BookAccount, rates: Rates, day: date) -> Money:
    """One account's ARR, in the reporting currency when its currency has a rate."""
    if not rates.can_convert(account.currency):
        return Money(account.currency, account.arr_minor)
    return Money(rates.reporting, rates.convert(account.arr_minor, account.currency, day))


def _renewals(book: _Book, now: list[BookAccount], days: int, rates: Rates) -> tuple[Renewal, ...]:
    last = book.days[-1]
    scores = book.scores[last]
    found = [
        Renewal(
            account_id=a.id,
            name=a.name,
            csm=book.csm(a),
            renewal_date=a.renewal_date,
            arr=_arr(a, rates, last),
            score=scores[a.id][0] if a.id in scores else None,
            band=scores[a.id][1] if a.id in scores else None,
        )
        for a in now
        if a.renewal_date is not None and last < a.renewal_date <= last + timedelta(days=days)
    ]
    return tuple(sorted(found, key=lambda r: (r.renewal_date, r.name.lower())))


def _declines(
    session: Session, book: _Book, now: list[BookAccount], rows: dict[int, HealthScore], top: int
) -> tuple[tuple[Decline, ...], int]:
    """The `top` largest falls of the score over the week (latest score on or before each
    end, as `scoring.trend.changes` counts them), and how many scores fell in all."""
    latest, before = book.scores[book.days[-1]], book.scores[book.days[-2]]
    fell = sorted(
        (
            (round(latest[a.id][0] - before[a.id][0], 1), a.name.lower(), a)
            for a in now
            if a.id in latest and a.id in before
        ),
        key=lambda entry: entry[:2],
    )
    fell = [entry for entry in fell if entry[0] < 0]
    chosen = [account for _, _, account in fell[:top]]
    baselines = queries.latest_rows(session, [a.id for a in chosen], book.days[-2])
    found = tuple(
        _decline(book, account, rows.get(account.id), baselines.get(account.id))
        for account in chosen
    )
    return found, len(fell)


def _decline(
    book: _Book, account: BookAccount, row: HealthScore | None, baseline: HealthScore | None
) -> Decline:
    (score, band), (previous, previous_band) = (
        book.scores[book.days[week]][account.id] for week in (-1, -2)
    )
    drivers = [d for d in (row.drivers if row else []) if d.get("direction") != "positive"]
    return Decline(
        account_id=account.id,
        name=account.name,
        csm=book.csm(account),
        score=score,
        band=band,
        previous_score=previous,
        previous_band=previous_band,
        moves=tuple(moves(row, baseline)) if row and baseline else (),
        drivers=tuple(str(d.get("text", "")) for d in drivers[:2]),
    )


def _disagreements(
    book: _Book, now: list[BookAccount], rows: dict[int, HealthScore], rates: Rates
) -> tuple[Disagreement, ...]:
    found = []
    for account in now:
        row = rows.get(account.id)
        for signal in (row.components.get("signals") or []) if row else []:
            if isinstance(signal, dict) and signal.get("kind") == SIGNAL_KIND:
                found.append(
                    Disagreement(
                        account_id=account.id,
                        name=account.name,
                        csm=book.csm(account),
                        text=str(signal.get("text", "")),
                        sentiment=str(signal.get("sentiment", "")),
                        data_band=str(signal.get("data_band", "")),
                        arr=_arr(account, rates, book.days[-1]),
                    )
                )
    # the CSM calling green what the data calls red comes first, then the largest accounts
    found.sort(key=lambda d: (d.sentiment != "green", -d.arr.minor, d.name.lower()))
    return tuple(found)


def _scoreboard(
    engine: Engine, team: DigestTeam, day: date, rates: Rates
) -> tuple[Scoreboard | None, str]:
    """The team report of the quarter to date, reduced to the team's CSMs with a book
    (customers, churn or tasks in the period)."""
    period = quarter_to_date(day)
    try:
        report = team_report(engine, period, team=team.external_id, rates=rates)
    except TeamReportError as exc:
        return None, str(exc)
    chosen = [t for t in report.teams if t.name == team.name] or list(report.teams)
    if not chosen:
        return None, "the team has no CSMs"
    found = chosen[0]
    # a lead who owns nothing is left out (the digests they receive count as their alerts)
    csms = tuple(
        c for c in found.csms if c.figures.logos or c.figures.churned_logos or c.figures.tasks_due
    )
    return Scoreboard(period, report.currency, csms, found.total, report.missing_rates), ""


def gather_facts(
    engine: Engine,
    team: DigestTeam,
    week_ending: date,
    *,
    weeks: int = HISTORY_WEEKS,
    renewal_days: int = RENEWAL_DAYS,
    top: int = TOP_DECLINES,
    rates: Rates | None = None,
) -> DigestFacts:
    """The digest of `team` for the week ending on `week_ending` (that day included), its
    money in `rates.reporting` (USD without `rates`)."""
    rates = rates or Rates()
    days = week_ends(week_ending, weeks)
    end = cutoff(week_ending)
    with Session(engine) as session:
        book = _read_book(session, team, days)
        now = book.customers(-1)
        rows = queries.latest_rows(session, [a.id for a in now], week_ending)
        declines, fell = _declines(session, book, now, rows, top)
        ids = queries.book_ids(book.people)
        alerts = queries.alert_acks(session, ids, book.people, cutoff(days[-2]), end)
        tasks = queries.overdue_tasks(session, ids, book.people, week_ending, end)
    at_risk = [a for a in now if book.state(a, -1) in AT_RISK]
    scoreboard, note = _scoreboard(engine, team, week_ending, rates)
    currencies = {a.currency for a in now if a.arr_minor}
    currencies |= set(scoreboard.missing_rates if scoreboard else ())
    return DigestFacts(
        team=team,
        week_ending=week_ending,
        history=_history(book),
        moves=_moves(book),
        arr=_money(now, rates, week_ending),
        at_risk_arr=_money(at_risk, rates, week_ending),
        at_risk_accounts=len(at_risk),
        renewals=_renewals(book, now, renewal_days, rates),
        declines=declines,
        declines_total=fell,
        disagreements=_disagreements(book, now, rows, rates),
        overdue_tasks=tuple(tasks),
        alerts=alerts,
        scoreboard=scoreboard,
        scoreboard_note=note,
        money_note=rates.missing_note(currencies),
    )
