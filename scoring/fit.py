"""`health-agent backtest --fit`: propose a scorecard fitted to this book, judged out of sample.

The backtest's labelled observations (every customer's readings at every snapshot, and
whether it churned within the horizon) are split by `scoring.fit_split`: grouped by account
and forward in time. For every split a scorecard is fitted on the training observations
only (`scoring.fit_model.propose`: ranges, weights, band thresholds) and scores the judged
ones; the current scorecard scores the same judged ones. The figures reported, AUC, band
churn rates, precision and recall, the riskiest tenth, are all of those judged
observations, pooled over the splits: a fit is never judged on what it was fitted on.

The proposed scorecard is then fitted once more on every labelled observation (the most
data for the weights), and is what `write_proposal` writes beside the current scorecard for
a person to read, test and adopt, or not. The live scorecard is never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from scoring.backtest import BacktestRun, Observation, measure_scores
from scoring.backtest_figures import (
    BandOutcome,
    Flagging,
    RiskiestShare,
    auc,
    band_outcomes,
    flagging,
    riskiest_share,
)
from scoring.backtest_result import FITTED_MARK
from scoring.fit_model import MeasureFit, Sample, propose
from scoring.fit_split import GROUPS, forward_group_splits
from scoring.health import compute_score
from scoring.scorecard import Scorecard

__all__ = ["Fit", "FitReport", "Judged", "Verdict", "fit"]


@dataclass(frozen=True)
class Verdict:
    """One scorecard's figures on the judged observations."""

    auc: float | None
    bands: tuple[BandOutcome, ...]
    red: Flagging
    flagged: Flagging
    riskiest: RiskiestShare


@dataclass(frozen=True)
class Judged:
    """The current and the fitted scorecard on the same out-of-sample observations."""

    observations: int
    accounts: int
    churned: int
    splits: int
    groups: int
    first_day: date | None
    current: Verdict
    fitted: Verdict


@dataclass(frozen=True)
class FitReport:
    """What the fit proposes and how it did out of sample (plain data, for `--json`)."""

    fitted_on: date
    horizon_days: int
    current_version: str
    proposed_version: str
    observations: int
    """Labelled observations the proposal is fitted on (all of them)."""
    accounts: int
    churned: int
    judged: Judged
    measures: tuple[MeasureFit, ...]
    components: tuple[tuple[str, float, float], ...]
    """(component, old share of the score, new share)."""
    current_thresholds: tuple[float, float]
    proposed_thresholds: tuple[float, float]
    """(green, yellow)."""


@dataclass(frozen=True)
class Fit:
    """The report, the proposed scorecard, and the judged scores for the ROC chart."""

    report: FitReport
    proposal: Scorecard
    judged_current: tuple[float, ...]
    judged_fitted: tuple[float, ...]
    judged_churned: tuple[bool, ...]


def _verdict(scores: Sequence[float], bands: Sequence[str], churned: Sequence[bool]) -> Verdict:
    labelled = list(zip(bands, churned, strict=True))
    return Verdict(
        auc=auc(scores, churned),
        bands=band_outcomes(labelled),
        red=flagging(labelled, ("red",)),
        flagged=flagging(labelled, ("red", "yellow")),
        riskiest=riskiest_share(scores, churned),
    )


def _samples(card: Scorecard, observations: Sequence[Observation]) -> list[Sample]:
    return [Sample(o.readings, o.churned, measure_scores(card, o.readings)) for o in observations]


def _component_shares(card: Scorecard) -> dict[str, float]:
    total = sum(c.weight for c in card.components.values())
    return {name: c.weight / total for name, c in card.components.items()}


def fit(run: BacktestRun, *, groups: int = GROUPS) -> Fit:
    """Fit the first scorecard of `run` to its labelled observations, judged out of sample."""
    card = run.scorecards[0]
    observed = run.observations(0)
    samples = _samples(card, observed)
    splits = forward_group_splits(
        [(o.account_id, o.day) for o in observed],
        [o.churned for o in observed],
        run.horizon_days,
        groups=groups,
    )
    judged: list[tuple[Observation, float, str]] = []
    for split in splits:
        proposal = propose(card, [samples[i] for i in split.train]).scorecard
        for index in split.judged:
            result = compute_score(proposal, observed[index].readings)
            if result is not None:
                judged.append((observed[index], result.score, result.band))
    churned = [o.churned for o, _, _ in judged]
    version = f"{card.version}{FITTED_MARK}{run.today.isoformat()}"
    final = propose(card, samples, version=version)
    old, new = _component_shares(card), _component_shares(final.scorecard)
    report = FitReport(
        fitted_on=run.today,
        horizon_days=run.horizon_days,
        current_version=card.version,
        proposed_version=version,
        observations=len(observed),
        accounts=len({o.account_id for o in observed}),
        churned=sum(o.churned for o in observed),
        judged=Judged(
            observations=len(judged),
            accounts=len({o.account_id for o, _, _ in judged}),
            churned=sum(churned),
            splits=len(splits),
            groups=groups,
            first_day=min((o.day for o, _, _ in judged), default=None),
            current=_verdict(
                [o.score for o, _, _ in judged], [o.band for o, _, _ in judged], churned
            ),
            fitted=_verdict([s for _, s, _ in judged], [b for _, _, b in judged], churned),
        ),
        measures=final.measures,
        components=tuple((name, old[name], new[name]) for name in card.components),
        current_thresholds=(card.bands.green, card.bands.yellow),
        proposed_thresholds=(final.scorecard.bands.green, final.scorecard.bands.yellow),
    )
    return Fit(
        report=report,
        proposal=final.scorecard,
        judged_current=tuple(o.score for o, _, _ in judged),
        judged_fitted=tuple(s for _, s, _ in judged),
        judged_churned=tuple(churned),
    )
