"""Revenue metrics: MRR, ARR, MRR movements, revenue retention, ARPU and lifetime value.

A snapshot is the list of subscriptions alive at one instant, each with its MRR in integer
minor units; a customer's MRR is the sum of its subscriptions', and customers paying
nothing are not counted as paying. Every snapshot passed to one call must be in one
currency (`ValueError` otherwise): convert before, never here.

Movements follow ChartMogul's definitions, per customer between two snapshots:

- new: no MRR at the start and never any before; reactivation: no MRR at the start but
  some at an earlier time (a churned customer returning);
- expansion: MRR up; contraction: MRR down but not to zero (so cancelling one of several
  subscriptions is contraction); churn: MRR down to zero.

Amounts are integer minor units; averages and estimates (ARPU, lifetime value) are floats
in minor units, unrounded. Rates are floats, undefined (`None`) when nothing was paying at
the start.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

from scoring.metrics._checks import check_count, check_rate, share

__all__ = [
    "MovementKind",
    "MrrBreakdown",
    "MrrMovement",
    "SubscriptionSnapshot",
    "arpu",
    "arr",
    "customer_lifetime_value",
    "expansion_revenue",
    "gross_revenue_retention",
    "mrr",
    "mrr_by_customer",
    "mrr_movement_series",
    "mrr_movements",
    "net_revenue_retention",
]


@dataclass(frozen=True)
class SubscriptionSnapshot:
    """One subscription of `customer` alive at the snapshot's instant, with its MRR."""

    customer: str
    mrr_minor: int
    currency: str = "USD"

    def __post_init__(self) -> None:
        check_count(self.mrr_minor, "a subscription's MRR")


def _check_currency(*snapshots: Iterable[SubscriptionSnapshot]) -> None:
    currencies = {sub.currency for snapshot in snapshots for sub in snapshot}
    if len(currencies) > 1:
        raise ValueError(f"MRR in several currencies cannot be added: {sorted(currencies)}")


def mrr_by_customer(snapshot: Iterable[SubscriptionSnapshot]) -> dict[str, int]:
    """Each paying customer's MRR, the sum of its subscriptions' (customers at zero left out)."""
    subscriptions = tuple(snapshot)
    _check_currency(subscriptions)
    totals: dict[str, int] = {}
    for sub in subscriptions:
        totals[sub.customer] = totals.get(sub.customer, 0) + sub.mrr_minor
    return {customer: total for customer, total in totals.items() if total > 0}


def mrr(snapshot: Iterable[SubscriptionSnapshot]) -> int:
    """Monthly recurring revenue: MRR = sum of the subscriptions' MRR."""
    return sum(mrr_by_customer(snapshot).values())


def arr(snapshot: Iterable[SubscriptionSnapshot]) -> int:
    """Annual recurring revenue: ARR = 12 x MRR."""
    return 12 * mrr(snapshot)


def arpu(snapshot: Iterable[SubscriptionSnapshot]) -> float | None:
    """Average revenue per paying customer: ARPU = MRR / paying customers (per month)."""
    by_customer = mrr_by_customer(snapshot)
    return share(sum(by_customer.values()), len(by_customer))


class MovementKind(StrEnum):
    """The ways one customer's MRR changes between two snapshots."""

    NEW = "new"
    EXPANSION = "expansion"
    CONTRACTION = "contraction"
    CHURN = "churn"
    REACTIVATION = "reactivation"


@dataclass(frozen=True)
class MrrMovement:
    """One customer's MRR change; `amount_minor` is signed (end MRR - start MRR)."""

    customer: str
    kind: MovementKind
    amount_minor: int


@dataclass(frozen=True)
class MrrBreakdown:
    """MRR at two snapshots and the movements between them.

    New, expansion and reactivation are zero or more; contraction and churn are zero or
    less. They sum exactly to `end_mrr_minor - start_mrr_minor`.
    """

    start_mrr_minor: int
    end_mrr_minor: int
    new_minor: int
    expansion_minor: int
    contraction_minor: int
    churn_minor: int
    reactivation_minor: int
    movements: tuple[MrrMovement, ...]

    @property
    def net_new_minor(self) -> int:
        """Net new MRR = new + expansion + reactivation + contraction + churn."""
        return (
            self.new_minor
            + self.expansion_minor
            + self.reactivation_minor
            + self.contraction_minor
            + self.churn_minor
        )


def _kind(start: int, end: int, returning: bool) -> MovementKind | None:
    if start == 0:
        if end == 0:
            return None
        return MovementKind.REACTIVATION if returning else MovementKind.NEW
    if end == 0:
        return MovementKind.CHURN
    if end > start:
        return MovementKind.EXPANSION
    return MovementKind.CONTRACTION if end < start else None


def mrr_movements(
    start: Iterable[SubscriptionSnapshot],
    end: Iterable[SubscriptionSnapshot],
    *,
    previously_active: Collection[str] = frozenset(),
) -> MrrBreakdown:
    """Split end MRR - start MRR into new, expansion, contraction, churn and reactivation.

    `previously_active` names the customers that paid at some time before `start`; one of
    them paying nothing at `start` and something at `end` is a reactivation, not new.
    """
    start_subs, end_subs = tuple(start), tuple(end)
    _check_currency(start_subs, end_subs)
    before, after = mrr_by_customer(start_subs), mrr_by_customer(end_subs)
    totals = dict.fromkeys(MovementKind, 0)
    movements: list[MrrMovement] = []
    for customer in sorted(before.keys() | after.keys()):
        was, now = before.get(customer, 0), after.get(customer, 0)
        kind = _kind(was, now, customer in previously_active)
        if kind is not None:
            movements.append(MrrMovement(customer, kind, now - was))
            totals[kind] += now - was
    return MrrBreakdown(
        start_mrr_minor=sum(before.values()),
        end_mrr_minor=sum(after.values()),
        new_minor=totals[MovementKind.NEW],
        expansion_minor=totals[MovementKind.EXPANSION],
        contraction_minor=totals[MovementKind.CONTRACTION],
        churn_minor=totals[MovementKind.CHURN],
        reactivation_minor=totals[MovementKind.REACTIVATION],
        movements=tuple(movements),
    )


def mrr_movement_series(
    snapshots: Sequence[Iterable[SubscriptionSnapshot]],
    *,
    previously_active: Collection[str] = frozenset(),
) -> list[MrrBreakdown]:
    """The movements between each consecutive pair of a chronological series of snapshots.

    A customer that paid in any earlier snapshot of the series (or is in
    `previously_active`, for history before it) and returns after a gap is a reactivation.
    """
    series = [tuple(snapshot) for snapshot in snapshots]
    _check_currency(*series)
    seen = set(previously_active)
    breakdowns: list[MrrBreakdown] = []
    for earlier, later in pairwise(series):
        seen |= mrr_by_customer(earlier).keys()
        breakdowns.append(mrr_movements(earlier, later, previously_active=seen))
    return breakdowns


def expansion_revenue(
    start: Iterable[SubscriptionSnapshot], end: Iterable[SubscriptionSnapshot]
) -> int:
    """Expansion MRR: sum over customers paying at the start of max(end MRR - start MRR, 0)."""
    return mrr_movements(start, end).expansion_minor


def _retained(
    start: Iterable[SubscriptionSnapshot], end: Iterable[SubscriptionSnapshot]
) -> list[tuple[int, int]]:
    """`(start MRR, end MRR)` of each customer paying at the start."""
    start_subs, end_subs = tuple(start), tuple(end)
    _check_currency(start_subs, end_subs)
    after = mrr_by_customer(end_subs)
    return [(was, after.get(c, 0)) for c, was in mrr_by_customer(start_subs).items()]


def gross_revenue_retention(
    start: Iterable[SubscriptionSnapshot], end: Iterable[SubscriptionSnapshot]
) -> float | None:
    """GRR = sum(min(end MRR, start MRR)) / sum(start MRR), over customers paying at start.

    Expansion is capped away and new customers are excluded, so GRR is in [0, 1].
    """
    pairs = _retained(start, end)
    return share(sum(min(was, now) for was, now in pairs), sum(was for was, _ in pairs))


def net_revenue_retention(
    start: Iterable[SubscriptionSnapshot], end: Iterable[SubscriptionSnapshot]
) -> float | None:
    """NRR = sum(end MRR) / sum(start MRR), over customers paying at start (new excluded).

    Includes expansion, so it can exceed 1; it is never below GRR.
    """
    pairs = _retained(start, end)
    return share(sum(now for _, now in pairs), sum(was for was, _ in pairs))


def customer_lifetime_value(
    arpu_minor: float | None,
    churn_rate: float | None,
    *,
    max_lifetime_periods: float = 60.0,
) -> float | None:
    """CLV = ARPU / churn rate, the lifetime 1 / churn capped at `max_lifetime_periods`.

    ARPU and churn must be over the same period length (usually a month, so the default
    cap is five years). With zero churn the lifetime is the cap; capping every lifetime
    at it, not only that one, keeps CLV falling as churn rises. Undefined inputs give
    `None`.
    """
    if not max_lifetime_periods > 0 or math.isinf(max_lifetime_periods):
        raise ValueError(f"the lifetime cap must be positive and finite: {max_lifetime_periods}")
    if arpu_minor is None or churn_rate is None:
        return None
    if not arpu_minor >= 0 or math.isinf(arpu_minor):
        raise ValueError(f"ARPU must be zero or more and finite, got {arpu_minor}")
    check_rate(churn_rate, "churn rate")
    if churn_rate == 0 or 1 / churn_rate > max_lifetime_periods:
        return arpu_minor * max_lifetime_periods
    return arpu_minor / churn_rate
