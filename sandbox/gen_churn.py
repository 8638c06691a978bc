"""How churners and saved accounts behave over the year, so a backtest has something to find.

A book where every churner declines loudly and nobody else ever wobbles would make any
score look perfect. This module draws the year of the two archetypes that give the health
score its real test, with the noise customer success sees in practice:

- `churned` accounts (about one in ten: 8-15% annual logo churn) end their subscription at
  a renewal in the last year. How they get there is drawn from four kinds:
  `declining` (three in five): the classic slide, usage and seat utilisation falling for
  two to six months, tickets and urgent tickets climbing, unhappy ratings, sometimes a
  failed payment, the CSM usually worried; `late` (about one in seven): the signals start
  only five to eight weeks before the end; `billing` (about one in eight): involuntary
  churn after a failed payment on a monthly plan, usage barely moving; `silent` (about one
  in eight): nothing to see, an acquisition or a budget cut ends a healthy-looking account.
- `recovered` accounts had a rough patch some time in the year (usage dip, ticket spike,
  sometimes a late payment, a worried CSM) and were saved: they look at risk for a few
  weeks and do not churn.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

__all__ = ["ChurnPlan", "Patch", "plan_churn", "plan_patch"]

AddMonths = Callable[[datetime, int], datetime]
"""The calendar helper of `gen_accounts`, passed in so this module imports nothing of it."""
WeekOf = Callable[[datetime], int]
"""The timeline's week index of a moment."""
_KINDS = (("declining", 0.6), ("late", 0.75), ("billing", 0.87), ("silent", 1.0))
_WEEKS = 53


@dataclass(frozen=True)
class ChurnPlan:
    """A churner's year: when it churns, which kind it is, and its weekly signals."""

    kind: str
    churned_at: datetime
    contract_start: datetime
    interval: str
    adoption: tuple[float, ...]
    ticket_rate: tuple[float, ...]
    urgent_share: tuple[float, ...]
    bad_csat: float
    failing_payment: bool


@dataclass(frozen=True)
class Patch:
    """A saved account's rough patch, weeks `start` to `end`, and its weekly signals."""

    start: int
    end: int
    adoption: tuple[float, ...]
    ticket_rate: tuple[float, ...]
    urgent_share: tuple[float, ...]
    bad_csat: float


def _slide(base: float, floor: float, start: int, end: int, power: float) -> tuple[float, ...]:
    """Flat at `base`, then a fall to `floor` from week `start` to `end` (convex for
    `power` above 1), and `floor` after."""
    out = []
    for w in range(_WEEKS):
        progress = min(1.0, max(0.0, (w - start) / max(1, end - start)))
        out.append(base - (base - floor) * progress**power)
    return tuple(out)


def _ramp(start: int, end: int) -> list[float]:
    """0 before week `start`, rising linearly to 1 at week `end`, 1 after."""
    return [min(1.0, max(0.0, (w - start) / max(1, end - start))) for w in range(_WEEKS)]


def _kind(r: random.Random) -> str:
    roll = r.random()
    return next(kind for kind, limit in _KINDS if roll < limit)


def _contract_for(
    r: random.Random, churned_at: datetime, interval: str, add_months: AddMonths
) -> datetime:
    """A contract start whose renewal (yearly) or billing cycle (monthly) is `churned_at`."""
    months = 12 * r.randint(1, 3) if interval == "year" else r.randint(5, 30)
    return add_months(churned_at, -months)


def plan_churn(
    r: random.Random,
    now: datetime,
    week_of: WeekOf,
    interval: str,
    at: time,
    lam: float,
    add_months: AddMonths,
) -> ChurnPlan:
    """Draw a churner: its kind, churn day and weekly signals. The churn day is 15 to 300
    days ago: the book keeps a year of history, and a churn in its first two months would
    have no signals on record."""
    kind = _kind(r)
    if kind == "billing":
        interval = "month"
    day = (now - timedelta(days=r.randint(15, 300))).date()
    churned_at = datetime.combine(day, at, now.tzinfo)
    last = week_of(churned_at)
    base = r.uniform(0.5, 0.85) if kind == "declining" else r.uniform(0.65, 0.9)
    rate, urgent = [lam] * _WEEKS, [0.03] * _WEEKS
    adoption: tuple[float, ...] = (base,) * _WEEKS
    bad, failing = r.uniform(0.05, 0.2), False
    if kind == "declining":
        bottom = last - r.randint(0, 4)  # users stop before the contract does
        span = r.randint(8, 24)
        adoption = _slide(base, base * r.uniform(0.25, 0.55), bottom - span, bottom, 1.0)
        climb, rise = _ramp(last - r.randint(6, 14), last - 2), r.uniform(1.0, 3.0)
        rate = [lam * (1 + rise * c) for c in climb]
        urgent = [0.03 + 0.25 * c for c in climb]
        bad = r.uniform(0.3, 0.6)
        failing = interval == "month" and r.random() < 0.3
    elif kind == "late":
        start = last - r.randint(5, 8)
        adoption = _slide(base, base * r.uniform(0.45, 0.7), start, last - 1, 1.0)
        climb = _ramp(start, last - 1)
        rate = [lam * (1 + 1.5 * c) for c in climb]
        urgent = [0.03 + 0.15 * c for c in climb]
        bad = r.uniform(0.15, 0.35)
    elif kind == "billing":
        adoption = _slide(base, base * 0.85, last - 6, last, 1.0)
        failing = True
    return ChurnPlan(
        kind=kind,
        churned_at=churned_at,
        contract_start=_contract_for(r, churned_at, interval, add_months),
        interval=interval,
        adoption=adoption,
        ticket_rate=tuple(rate),
        urgent_share=tuple(urgent),
        bad_csat=bad,
        failing_payment=failing,
    )


def plan_patch(r: random.Random, base: float, lam: float) -> Patch:
    """Draw a saved account's rough patch: 6 to 12 weeks some time in the year."""
    start = r.randint(4, 38)
    end = start + r.randint(6, 12)
    middle = (start + end) // 2
    low = base * r.uniform(0.4, 0.65)
    adoption = tuple(
        min(
            _slide(base, low, start, middle, 1.0)[w],
            _slide(low, base, middle, end, 1.0)[w] if w >= middle else base,
        )
        for w in range(_WEEKS)
    )
    inside = [start <= w <= end for w in range(_WEEKS)]
    rise = r.uniform(1.5, 3.0)
    return Patch(
        start=start,
        end=end,
        adoption=adoption,
        ticket_rate=tuple(lam * (1 + rise) if i else lam for i in inside),
        urgent_share=tuple(0.2 if i else 0.03 for i in inside),
        bad_csat=r.uniform(0.2, 0.35),
    )
