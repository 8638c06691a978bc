"""What a team report holds: frozen dataclasses of figures per CSM, per team and in all.

Each book (a CSM's, a team's, everyone's) has the same `BookFigures`; how each figure is
counted is in the `scoring.team` docstring. `UNOWNED` and `NO_TEAM` name the rows of
accounts without a known CSM and of CSMs without a known team.
"""

from __future__ import annotations

from dataclasses import dataclass

from scoring.team.periods import Period

__all__ = [
    "NO_TEAM",
    "UNOWNED",
    "Bands",
    "BookFigures",
    "CsmPerformance",
    "TeamPerformance",
    "TeamReport",
    "TeamReportError",
]

UNOWNED = "(unowned)"
NO_TEAM = "(no team)"


class TeamReportError(ValueError):
    """A report that cannot be made as asked: an unknown team."""


@dataclass(frozen=True)
class Bands:
    """Customers at the end of the period by the band of their latest score."""

    green: int = 0
    yellow: int = 0
    red: int = 0
    unscored: int = 0


@dataclass(frozen=True)
class BookFigures:
    """The figures of one book (a CSM's, a team's, everyone's); see the `scoring.team`
    docstring.

    Money is minor units of the report's (reporting) currency; rates are floats rounded to 4 places,
    health to one decimal; `None` is undefined (nothing to measure), never zero.
    """

    logos: int
    arr_minor: int
    health: float | None
    health_at_start: float | None
    health_change: float | None
    bands: Bands
    mrr_at_start_minor: int
    grr: float | None
    nrr: float | None
    churned_logos: int
    churned_arr_minor: int
    contracted_arr_minor: int
    expanded_arr_minor: int
    renewals_due: int
    renewals_won: int
    renewals_lost: int
    alerts_received: int
    alerts_acknowledged: int
    median_hours_to_acknowledge: float | None
    tasks_due: int
    tasks_on_time: int
    sentiment_fresh: int
    sentiment_freshness: float | None
    onboarding_accounts: int
    onboarding_reached_value: int
    time_to_value_days: float | None


@dataclass(frozen=True)
class CsmPerformance:
    """One CSM's figures; the "(unowned)" row has no email."""

    email: str | None
    name: str
    figures: BookFigures


@dataclass(frozen=True)
class TeamPerformance:
    """A team's CSMs and its total, computed over their books together."""

    name: str
    lead_email: str | None
    csms: tuple[CsmPerformance, ...]
    total: BookFigures


@dataclass(frozen=True)
class TeamReport:
    """Every team's performance over `period`; `accounts` counts the accounts that existed
    during it (zero: the store has nothing to report on). Money is in `currency`, the
    reporting currency; `missing_rates` names the currencies it has no exchange rate for,
    whose amounts are left out (the money figures are then partial)."""

    period: Period
    currency: str
    accounts: int
    teams: tuple[TeamPerformance, ...]
    total: BookFigures
    missing_rates: tuple[str, ...] = ()
