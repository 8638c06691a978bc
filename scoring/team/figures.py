"""From what the queries found to `BookFigures`: one account's facts, then a book's figures.

`account_book` reads one account's facts over the period (customer or not at the start and
the end, ARR, MRR, scores, renewals, onboarding); `book_figures` adds the facts, alerts and
tasks of a book up into its figures with the formulas of `scoring.metrics`. No queries here.

Money is converted into the reporting currency account by account, currency by currency, at
the rates of the period's last day, the start's amounts as the end's (constant currency: GRR
and NRR move with the business, not with the exchange rates). Amounts in a currency without
a rate count as nothing, and `missing_currencies` names those currencies.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

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
    time_to_value,
    value_observation,
)
from scoring.team.periods import Period
from scoring.team.queries import Billing
from scoring.team.results import Bands, BookFigures
from store.money import Rates, normalise_currency

__all__ = [
    "ONBOARDING_WINDOW",
    "AccountBook",
    "PeriodFacts",
    "account_book",
    "book_figures",
    "missing_currencies",
]

ONBOARDING_WINDOW = timedelta(days=365)
"""Time to value follows the accounts created this long before the end of the period."""


@dataclass(frozen=True)
class PeriodFacts:
    """What the period's queries found, by account id, and how its money converts:
    with `rates` on `day` into `rates.reporting`."""

    rates: Rates
    day: date
    billing: dict[int, Billing]
    scores_at_start: dict[int, tuple[float, str]]
    scores_at_end: dict[int, tuple[float, str]]
    fresh_sentiment: set[int]
    renewals: dict[int, tuple[int, int, int]]
    value_weeks: dict[int, list[datetime]]

    @property
    def currency(self) -> str:
        """The reporting currency: all money of the figures is in it."""
        return self.rates.reporting

    def in_reporting(self, amounts: Iterable[tuple[str, int]]) -> int:
        """The sum of (currency, minor units) amounts, converted; unconvertible ones left out."""
        return self.rates.total(amounts, self.day).minor


@dataclass(frozen=True)
class AccountBook:
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


def missing_currencies(
    accounts: Iterable[Any], billing: dict[int, Billing], rates: Rates
) -> tuple[str, ...]:
    """The currencies of the report's money that `rates` cannot convert, sorted."""
    seen: set[str] = set()
    for account in accounts:
        money = billing.get(account.id)
        if money is not None:
            seen |= set(money.mrr)
        elif account.arr_minor:
            seen.add(normalise_currency(account.currency))
    return rates.missing(seen)


def _arr(mrr_minor: int, currency: str) -> int:
    return arr([SubscriptionSnapshot("account", mrr_minor, currency)])


def account_book(account: Any, facts: PeriodFacts, period: Period) -> AccountBook:
    """One account's `AccountBook` from the results of the period's queries."""
    start, end, currency = cutoff(period.opening_day), cutoff(period.end), facts.currency
    money = facts.billing.get(account.id)

    def customer(at: datetime, alive: int) -> bool:
        created, deleted = account.created_at, account.deleted_at
        exists = (created is None or created < at) and (deleted is None or deleted >= at)
        return exists and (money is None or alive > 0)

    paid = money or Billing()
    crm_arr = facts.in_reporting([(account.currency, int(account.arr_minor or 0))])
    mrr_start = facts.in_reporting((code, mrr[0]) for code, mrr in paid.mrr.items())
    mrr_end = facts.in_reporting((code, mrr[1]) for code, mrr in paid.mrr.items())
    if paid.alive_start and not paid.alive_end and not mrr_start:
        mrr_start = round(crm_arr / 12)  # billing keeps no MRR on a canceled subscription
    scores_start, scores_end = facts.scores_at_start, facts.scores_at_end
    onboarding = None
    if account.created_at is not None and end - ONBOARDING_WINDOW <= account.created_at < end:
        reached = [t for t in facts.value_weeks.get(account.id, []) if t > account.created_at]
        onboarding = value_observation(account.created_at, min(reached, default=None), end)
    return AccountBook(
        account_id=account.id,
        customer_at_start=customer(start, paid.alive_start),
        customer_at_end=customer(end, paid.alive_end),
        arr_at_start=crm_arr if money is None else _arr(mrr_start, currency),
        arr_at_end=crm_arr if money is None else _arr(mrr_end, currency),
        mrr_at_start=mrr_start,
        mrr_at_end=mrr_end,
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


def book_figures(
    books: Sequence[AccountBook],
    alerts: Sequence[TicketTimes],
    tasks: Sequence[bool],
    currency: str,
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
