"""Customer (logo) retention over a period: retention rate, churn rate, retention cost.

The textbook counts of a period are S, customers active at its start; E, customers active
at its end; N, customers acquired during it (first-time or returning, whether or not still
there at the end); and C, customers active at the start who are not at the end. Then
CRR = (E - N) / S and logo churn = C / S. Because N also counts customers won and lost
inside the period, CRR = 1 - churn exactly when there were none of those, and is lower
otherwise. Both are undefined (`None`) when nobody was active at the start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from scoring.metrics._checks import check_count, share

__all__ = [
    "CustomerCounts",
    "CustomerLifetime",
    "customer_counts",
    "customer_retention_cost",
    "customer_retention_rate",
    "logo_churn_rate",
]


@dataclass(frozen=True)
class CustomerLifetime:
    """A span during which `customer` was a customer: from `began` until before `ended`.

    `ended` is the first day no longer a customer (`None` while still one). A customer
    that churned and came back has one lifetime per stay.
    """

    customer: str
    began: date
    ended: date | None = None

    def __post_init__(self) -> None:
        if self.ended is not None and self.ended <= self.began:
            raise ValueError(f"{self.customer}: a lifetime must end after it begins")

    def active_on(self, day: date) -> bool:
        """Whether the customer was a customer on `day`."""
        return self.began <= day and (self.ended is None or day < self.ended)


@dataclass(frozen=True)
class CustomerCounts:
    """The customer counts of one period: S, E, N and C (see the module docstring)."""

    at_start: int
    at_end: int
    new: int
    churned: int

    def __post_init__(self) -> None:
        for name in ("at_start", "at_end", "new", "churned"):
            check_count(getattr(self, name), name)
        if self.churned > self.at_start:
            raise ValueError("more customers churned than were active at the start")
        if self.at_end < self.retained:
            raise ValueError("fewer customers at the end than retained from the start")
        if self.at_end - self.retained > self.new:
            raise ValueError("customers at the end are neither retained nor new")

    @property
    def retained(self) -> int:
        """Customers active at the start and still at the end: S - C."""
        return self.at_start - self.churned


def customer_counts(
    lifetimes: Iterable[CustomerLifetime], start: date, end: date
) -> CustomerCounts:
    """Count S, E, N and C for the period from `start` to `end` (both days included).

    A customer is active on a day when one of its lifetimes covers it. N counts the
    customers not active on `start` with a lifetime beginning after it, up to `end`.
    """
    if end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    spans = tuple(lifetimes)
    at_start = {span.customer for span in spans if span.active_on(start)}
    at_end = {span.customer for span in spans if span.active_on(end)}
    acquired = {span.customer for span in spans if start < span.began <= end} - at_start
    return CustomerCounts(
        at_start=len(at_start),
        at_end=len(at_end),
        new=len(acquired),
        churned=len(at_start - at_end),
    )


def customer_retention_rate(counts: CustomerCounts) -> float | None:
    """Customer retention rate: CRR = (E - N) / S."""
    return share(counts.at_end - counts.new, counts.at_start)


def logo_churn_rate(counts: CustomerCounts) -> float | None:
    """Logo churn rate: churn = C / S, customers lost among those active at the start."""
    return share(counts.churned, counts.at_start)


def customer_retention_cost(cs_cost_minor: int, retained_customers: int) -> float | None:
    """Customer retention cost: CRC = customer success cost / retained customers.

    The cost is what was spent on keeping customers over the period (in minor units); the
    result is minor units per retained customer, unrounded, `None` when none was retained.
    """
    check_count(cs_cost_minor, "customer success cost")
    check_count(retained_customers, "retained customers")
    return share(cs_cost_minor, retained_customers)
