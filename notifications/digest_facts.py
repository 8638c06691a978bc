"""What a team's weekly digest says: frozen dataclasses of facts, before any rendering.

`notifications.digest_queries.gather_facts` fills a `DigestFacts` from the store; the Slack
message (`digest_message`), the terminal preview (`digest_view`) and the chart
(`digest_chart`) only read it. Everything is point in time, as of the end of the week's last
day: "now" is then, "last week" is seven days earlier, and a score counts on a day when it is
the account's latest on or before it.

The book is the team's customers: accounts owned (by `owner_email`, without regard to case)
by a CSM of the team, that exist at the instant and are customers by the rule of the team
report (no subscriptions at all, or at least one alive).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from scoring.team import BookFigures, CsmPerformance, Period
from scoring.trend import Move

__all__ = [
    "AlertAcks",
    "BandCounts",
    "BandMove",
    "Decline",
    "DigestFacts",
    "DigestTeam",
    "Disagreement",
    "Money",
    "OverdueTask",
    "Renewal",
    "Scoreboard",
    "WeekBands",
]


@dataclass(frozen=True)
class DigestTeam:
    """A team and where its digest goes: its lead by DM and/or its Slack channel."""

    id: int
    name: str
    source: str
    external_id: str
    lead_email: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class BandCounts:
    """Customers by the band of their score; `unscored` have none yet."""

    green: int = 0
    yellow: int = 0
    red: int = 0
    unscored: int = 0

    @property
    def total(self) -> int:
        return self.green + self.yellow + self.red + self.unscored

    def of(self, band: str) -> int:
        """The count of `band` (`green`, `yellow`, `red` or `unscored`)."""
        return int(getattr(self, band))


@dataclass(frozen=True)
class WeekBands:
    """The team's band distribution at the end of one week."""

    week_ending: date
    bands: BandCounts


@dataclass(frozen=True)
class BandMove:
    """How many accounts went from one state to another over the week.

    A state is a band or `unscored`; None is "not a customer" (new this week as `before`,
    gone this week as `after`).
    """

    before: str | None
    after: str | None
    accounts: int


@dataclass(frozen=True)
class Money:
    """An amount in minor units of one currency."""

    currency: str
    minor: int


@dataclass(frozen=True)
class Decline:
    """An account whose score fell over the week, with the measures that moved it."""

    account_id: int
    name: str
    csm: str | None
    score: float
    band: str
    previous_score: float
    previous_band: str | None
    moves: tuple[Move, ...] = ()
    drivers: tuple[str, ...] = ()

    @property
    def change(self) -> float:
        return round(self.score - self.previous_score, 1)


@dataclass(frozen=True)
class Renewal:
    """An account renewing soon (the CRM's renewal date and ARR) with its health now."""

    account_id: int
    name: str
    csm: str | None
    renewal_date: date
    arr: Money
    score: float | None
    band: str | None


@dataclass(frozen=True)
class Disagreement:
    """The CSM's call and the data are two bands apart ("CSM says green, the data says red")."""

    account_id: int
    name: str
    csm: str | None
    text: str
    sentiment: str
    data_band: str
    arr: Money


@dataclass(frozen=True)
class OverdueTask:
    """A playbook task past its due day and not done by the end of the week."""

    title: str
    playbook: str
    account: str | None
    assignee: str | None
    due_on: date


@dataclass(frozen=True)
class AlertAcks:
    """The week's alerts to the team (not digests) and how many were acknowledged by its end."""

    sent: int = 0
    acknowledged: int = 0

    @property
    def share(self) -> float | None:
        return self.acknowledged / self.sent if self.sent else None


@dataclass(frozen=True)
class Scoreboard:
    """The team report's rows of the team's CSMs (those with customers, churn or tasks);
    money in `currency`, leaving out that of the `missing_rates` currencies."""

    period: Period
    currency: str
    csms: tuple[CsmPerformance, ...]
    total: BookFigures
    missing_rates: tuple[str, ...] = ()


@dataclass(frozen=True)
class DigestFacts:
    """Everything one team's digest for one week says."""

    team: DigestTeam
    week_ending: date
    history: tuple[WeekBands, ...]
    """The band distribution at the end of each week, oldest first; the last is now."""
    moves: tuple[BandMove, ...]
    arr: tuple[Money, ...]
    """ARR in the reporting currency, then amounts of currencies without a rate."""
    at_risk_arr: tuple[Money, ...]
    """ARR of the yellow and red customers, as `arr`."""
    at_risk_accounts: int
    renewals: tuple[Renewal, ...]
    """Renewal dates in the 90 days after the week, soonest first."""
    declines: tuple[Decline, ...]
    """The largest score declines over the week, largest first (five at most)."""
    declines_total: int
    disagreements: tuple[Disagreement, ...]
    overdue_tasks: tuple[OverdueTask, ...]
    alerts: AlertAcks
    scoreboard: Scoreboard | None
    scoreboard_note: str = ""
    """Why there is no scoreboard, when there is none."""
    money_note: str = ""
    """One line when money in a currency without an exchange rate was left out (partial)."""

    @property
    def week_start(self) -> date:
        return self.week_ending - timedelta(days=6)

    @property
    def bands(self) -> BandCounts:
        return self.history[-1].bands if self.history else BandCounts()

    @property
    def bands_before(self) -> BandCounts:
        return self.history[-2].bands if len(self.history) > 1 else BandCounts()

    @property
    def accounts(self) -> int:
        return self.bands.total
