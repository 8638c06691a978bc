"""The backtest's figures, as pure functions of scores and churn labels.

Nothing here reads the store: every function takes per-observation scores (a lower score
meaning a higher risk) and whether each observation churned within the horizon, so the same
figures serve the scorecard's total score, each of its measures, a fitted scorecard judged
out of sample, or any other signal ranked against churn.

- `auc`: ROC AUC by the rank (Mann-Whitney) formula, ties counting half.
- `band_outcomes`: each band's churn rate and its lift over the overall rate.
- `flagging`: precision and recall of a set of bands taken as "flagged" (red; red or
  yellow): precision is the share of flagged observations that churned, recall the share of
  churned observations that were flagged.
- `riskiest_share`: the churn rate and lift of the riskiest share (10%) of observations, the
  lowest scores. Ties at the cut are handled deterministically, without an order among
  them: the observations tied at the cut score fill the remaining places in proportion, so
  the churned count may be fractional.
- `signal_aucs`: the AUC of each named signal (a measure's 0-100 score) over the
  observations where it has a value, with its coverage.
- `roc_points`: the ROC curve's points, for the chart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from scoring.scorecard import BANDS

__all__ = [
    "RISKIEST_SHARE",
    "BandOutcome",
    "Flagging",
    "RiskiestShare",
    "SignalAuc",
    "auc",
    "band_outcomes",
    "flagging",
    "riskiest_share",
    "roc_points",
    "signal_aucs",
]

RISKIEST_SHARE = 0.10
"""The share of lowest scores whose churn rate and lift the backtest reports."""


@dataclass(frozen=True)
class BandOutcome:
    """How the observations of one band turned out: how many churned within the horizon."""

    band: str
    observations: int
    churned: int
    churn_rate: float | None
    lift: float | None
    """The band's churn rate over the overall churn rate."""


@dataclass(frozen=True)
class Flagging:
    """Precision and recall of treating the observations in `bands` as flagged."""

    bands: tuple[str, ...]
    flagged: int
    churned_flagged: int
    precision: float | None
    """The share of flagged observations that churned (None when nothing was flagged)."""
    recall: float | None
    """The share of churned observations that were flagged (None without churn)."""


@dataclass(frozen=True)
class RiskiestShare:
    """The churn of the riskiest `share` of observations (the lowest scores)."""

    share: float
    observations: int
    churned: float
    """Churned observations among them; fractional when ties at the cut share the places."""
    churn_rate: float | None
    lift: float | None


@dataclass(frozen=True)
class SignalAuc:
    """How well one signal (a measure's 0-100 score) alone separates churners."""

    name: str
    auc: float | None
    observations: int
    """Observations where the signal had a value; the others are left out of its AUC."""
    coverage: float
    """`observations` over all the labelled observations (0 to 1)."""
    churned: int


def auc(scores: Sequence[float], churned: Sequence[bool]) -> float | None:
    """ROC AUC of `scores` for `churned`, a lower score meaning a higher risk: the
    Mann-Whitney rank formula with average ranks for ties. None without both classes."""
    positives = sum(churned)
    negatives = len(churned) - positives
    if not positives or not negatives:
        return None
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # riskiest ranks highest
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, c in zip(ranks, churned, strict=True) if c)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _rate(churned: float, total: int) -> float | None:
    return churned / total if total else None


def band_outcomes(labelled: Sequence[tuple[str, bool]]) -> tuple[BandOutcome, ...]:
    """Each band's observations, churned count, churn rate and lift, red first."""
    overall = sum(c for _, c in labelled) / len(labelled) if labelled else 0.0
    outcomes = []
    for band in reversed(BANDS):
        mine = [c for b, c in labelled if b == band]
        rate = _rate(sum(mine), len(mine))
        lift = rate / overall if rate is not None and overall else None
        outcomes.append(BandOutcome(band, len(mine), sum(mine), rate, lift))
    return tuple(outcomes)


def flagging(labelled: Sequence[tuple[str, bool]], bands: Iterable[str]) -> Flagging:
    """Precision and recall of flagging the observations whose band is in `bands`."""
    chosen = tuple(bands)
    flagged = [c for b, c in labelled if b in chosen]
    churned = sum(c for _, c in labelled)
    hits = sum(flagged)
    return Flagging(chosen, len(flagged), hits, _rate(hits, len(flagged)), _rate(hits, churned))


def riskiest_share(
    scores: Sequence[float], churned: Sequence[bool], share: float = RISKIEST_SHARE
) -> RiskiestShare:
    """The churn rate and lift of the `share` of observations with the lowest scores.

    The riskiest `ceil(share x n)` places are taken; observations tied at the cut score
    share the places left at the cut in proportion (each counts `left / tied`), so the
    figure does not depend on the order of tied observations.
    """
    total = len(scores)
    places = math.ceil(share * total - 1e-9) if total else 0
    if not places:
        return RiskiestShare(share, 0, 0.0, None, None)
    cut = sorted(scores)[places - 1]
    below = [c for s, c in zip(scores, churned, strict=True) if s < cut]
    tied = [c for s, c in zip(scores, churned, strict=True) if s == cut]
    left = places - len(below)
    hits = sum(below) + left * sum(tied) / len(tied)
    rate = hits / places
    overall = sum(churned) / total
    return RiskiestShare(share, places, hits, rate, rate / overall if overall else None)


def signal_aucs(
    signals: Mapping[str, Sequence[float | None]], churned: Sequence[bool]
) -> tuple[SignalAuc, ...]:
    """Each signal's own AUC (lower = riskier) over the observations where it has a value.

    `signals` maps a name to one value per observation (None when the signal had no data
    there), aligned with `churned`. The order of `signals` is kept.
    """
    total = len(churned)
    results = []
    for name, values in signals.items():
        pairs = [(v, c) for v, c in zip(values, churned, strict=True) if v is not None]
        labels = [c for _, c in pairs]
        results.append(
            SignalAuc(
                name=name,
                auc=auc([v for v, _ in pairs], labels),
                observations=len(pairs),
                coverage=len(pairs) / total if total else 0.0,
                churned=sum(labels),
            )
        )
    return tuple(results)


def roc_points(scores: Sequence[float], churned: Sequence[bool]) -> tuple[list[float], list[float]]:
    """The ROC curve (false positive rates, true positive rates) from flagging every
    observation at or below each distinct score, riskiest first, from (0, 0) to (1, 1)."""
    positives = sum(churned)
    negatives = len(churned) - positives
    xs, ys = [0.0], [0.0]
    if not positives or not negatives:
        return xs, ys
    by_score: dict[float, list[bool]] = {}
    for score, label in zip(scores, churned, strict=True):
        by_score.setdefault(score, []).append(label)
    hits = misses = 0
    for score in sorted(by_score):
        labels = by_score[score]
        hits += sum(labels)
        misses += len(labels) - sum(labels)
        xs.append(misses / negatives)
        ys.append(hits / positives)
    return xs, ys
