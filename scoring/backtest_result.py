"""The result of backtesting one scorecard, and the verdict a CS lead can say out loud.

A `Backtest` holds plain numbers and small frozen records only (no observations), so
`dataclasses.asdict` turns it into the `--json` output as it is. What each figure means is
told in `scoring.backtest` and `scoring.backtest_figures`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from scoring.backtest_figures import BandOutcome, Flagging, RiskiestShare, SignalAuc

__all__ = ["FITTED_MARK", "Backtest"]

FITTED_MARK = "-fit-"
"""In the version of a scorecard `backtest --fit` proposed: `2026.1-fit-2026-12-08`."""


def _strength(value: float) -> str:
    if value >= 0.8:
        return "strongly predicts"
    if value >= 0.7:
        return "predicts"
    if value >= 0.6:
        return "weakly predicts"
    return "does not predict"


@dataclass(frozen=True)
class Backtest:
    """The result of backtesting one scorecard; see `scoring.backtest` for each figure."""

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
    thresholds: tuple[float, float] = (70.0, 40.0)
    """The scorecard's green and yellow thresholds."""
    red: Flagging | None = None
    """Precision and recall of the red band."""
    flagged: Flagging | None = None
    """Precision and recall of red or yellow taken together."""
    riskiest: RiskiestShare | None = None
    """The churn rate and lift of the riskiest 10% of scores."""
    measures: tuple[SignalAuc, ...] = ()
    """Each measure's own AUC, from its 0-100 score, over the observations it had data."""

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
        head = f"The score {_strength(self.auc)} churn within {self.horizon_days} days "
        head += f"(AUC {self.auc:.2f})"
        if self.riskiest is not None and self.riskiest.lift is not None:
            head += (
                f"; the riskiest {self.riskiest.share:.0%} of scores churned "
                f"{self.riskiest.lift:.1f}x as often as the book"
            )
        warned = [b for b in self.bands if b.band != "green"]
        if not sum(b.observations for b in warned):
            yellow = self.thresholds[1]
            return (
                f"{head}; but no observation was red or yellow: every score was at least "
                f"{yellow:g}, so the bands flagged nobody and cannot warn of churn. The band "
                "thresholds are too low for this book; `health-agent backtest --fit` proposes "
                "thresholds fitted to it."
            )
        at_risk = sum(b.churned for b in warned) / sum(b.observations for b in warned)
        green_rate = next((b.churn_rate for b in self.bands if b.band == "green"), None)
        versus = ""
        if green_rate:
            versus = (
                f"; red or yellow accounts churned {at_risk / green_rate:.1f}x as often as green"
            )
        elif green_rate == 0:
            versus = "; no green account churned"
        return (
            f"{head}{versus}; {self.flagged_churners} of {self.churners} "
            f"churners were red or yellow at least {self.min_lead_days} days before."
        )
