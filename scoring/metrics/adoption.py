"""Adoption metrics: seat adoption, feature adoption, breadth, depth, and time to value.

Feature usage is a list of `(subject, feature, events)` records over one period, where a
subject is whatever is being measured (a user, or an account). A subject is active when it
has at least one event. Shares are undefined (`None`) when there is nothing to divide by.

Time to value is a survival question: customers who have not reached value yet have not
failed to, they are still on the way. So it is the median of a Kaplan-Meier curve in which
they are censored at the time of measurement, not the median of those who got there.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from scoring.metrics._checks import check_count, share

__all__ = [
    "FeatureUsage",
    "ValueObservation",
    "feature_adoption",
    "feature_breadth",
    "product_adoption",
    "time_to_value",
    "usage_depth",
    "value_observation",
]


def product_adoption(active_users: int, licensed_seats: int) -> float | None:
    """Product adoption = active users / licensed seats.

    Above 1 when more people use the product than seats were bought, which is worth
    seeing (an expansion signal), so it is not capped. `None` without seats.
    """
    check_count(active_users, "active users")
    check_count(licensed_seats, "licensed seats")
    return share(active_users, licensed_seats)


@dataclass(frozen=True)
class FeatureUsage:
    """How many times `subject` (a user or an account) used `feature` in the period."""

    subject: str
    feature: str
    events: int = 1

    def __post_init__(self) -> None:
        check_count(self.events, "feature events")


def feature_adoption(
    usage: Iterable[FeatureUsage], feature: str, population: Collection[str]
) -> float | None:
    """Feature adoption = subjects of `population` that used `feature` / |population|.

    Usage by subjects outside the population is ignored, so the share is in [0, 1].
    """
    users = {u.subject for u in usage if u.feature == feature and u.events > 0}
    return share(len(users & set(population)), len(population))


def feature_breadth(usage: Iterable[FeatureUsage], available: Collection[str]) -> float | None:
    """Breadth = features of `available` used at least once / |available|, in [0, 1].

    Pass one subject's usage for its breadth (e.g. one account's).
    """
    used = {u.feature for u in usage if u.events > 0}
    return share(len(used & set(available)), len(available))


def usage_depth(usage: Iterable[FeatureUsage], feature: str | None = None) -> float | None:
    """Depth = events / active subjects, over one `feature` or all features.

    With users as subjects this is events per active user; `None` when nobody was active.
    """
    events = 0
    active: set[str] = set()
    for u in usage:
        if (feature is None or u.feature == feature) and u.events > 0:
            events += u.events
            active.add(u.subject)
    return share(events, len(active))


@dataclass(frozen=True)
class ValueObservation:
    """How long one customer has been followed, and whether it reached value by then.

    `duration` is in any unit (days, say) from the start (signature, kick-off) until value
    was reached, or until the time of measurement when `reached` is false (censored).
    """

    duration: float
    reached: bool

    def __post_init__(self) -> None:
        if not (self.duration >= 0 and math.isfinite(self.duration)):
            raise ValueError(f"a duration must be finite and zero or more, got {self.duration}")


def value_observation(
    started_at: datetime, reached_at: datetime | None, as_of: datetime
) -> ValueObservation:
    """The observation of one customer as of `as_of`, with its duration in days.

    A value moment after `as_of` was not known then, so the customer counts as censored.
    """
    if as_of < started_at:
        raise ValueError("a customer that starts after the time of measurement is not observed")
    if reached_at is not None and reached_at < started_at:
        raise ValueError("value cannot be reached before the start")
    reached = reached_at is not None and reached_at <= as_of
    until = reached_at if reached_at is not None and reached else as_of
    return ValueObservation((until - started_at) / timedelta(days=1), reached)


def time_to_value(observations: Iterable[ValueObservation]) -> float | None:
    """Median time to value: the first t where the Kaplan-Meier S(t) <= 0.5.

    `None` with no observations, or when the curve never falls to one half (too few have
    reached value yet for the median to be known). Without censoring it is the plain
    median for an odd count, and the lower of the middle two for an even one.
    """
    observed = tuple(observations)
    if not observed:
        return None
    # lifelines pulls in pandas, scipy and autograd (about a second); only this metric
    # needs it, so the rest of the metrics stay cheap to import.
    from lifelines import KaplanMeierFitter

    fitter = KaplanMeierFitter()
    fitter.fit(
        durations=[o.duration for o in observed],
        event_observed=[o.reached for o in observed],
    )
    median = float(fitter.median_survival_time_)
    return None if math.isinf(median) else median
