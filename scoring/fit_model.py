"""Fit a scorecard's weights, ranges and band thresholds to labelled observations.

`propose(card, observations)` returns a new scorecard with the same measures, labels and
caps, and three things fitted to the observations it is given (always a training set: how
good the result is must be judged on other observations, see `scoring.fit`):

1. **Ranges.** A linear measure's `good`/`bad` move to the 90th/10th percentiles of its
   values here (in its direction) when that helps: when the measure's own AUC over these
   observations rises by at least 0.01 (a range that clamps fewer values to 0 or 100 keeps
   apart churners and stayers the old one tied). Measures a cap tests, or whose component
   a cap tests, are left alone (the cap's `score_at_most` is written against their present
   range), and so are thresholds, categories and percentiles.
2. **Weights.** A logistic regression of churn on every measure's 0-100 score (L2, as
   scikit-learn's default). A missing measure is imputed by the weighted mean of the
   observation's present measures of its component (of the whole score when the component
   has none), which is what the scorecard's re-normalisation of weights amounts to. A lower
   score means more risk, so a measure's strength is minus its coefficient; its weight
   share is its strength over the sum of strengths, so the weighted mean is proportional
   to the fitted log-odds. A measure whose strength is zero or negative (given the others
   it predicts the wrong way, or nothing) gets the smallest weight, `MIN_SHARE`, and is
   flagged; never a negative weight. A component's weight is the sum of its measures'.
3. **Bands.** Observations are ranked by the fitted score and cut into tenths, riskiest
   first. Red is the riskiest tenths in a row whose churn rate is at least twice the
   overall rate (at least one tenth, at most three); yellow the tenths after it whose
   churn rate is above the overall rate (at least one, up to six tenths in all); green the
   rest. Thresholds sit at the score quantiles between those tenths: the red band holds a
   meaningful riskiest share, and the lines fall where the churn rate jumps.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression

from scoring.backtest_figures import auc
from scoring.health import compute_score
from scoring.measures import Reading
from scoring.scorecard import Bands, Component, LinearNormalisation, Measure, Scorecard

__all__ = ["MIN_SHARE", "MeasureFit", "Proposal", "Sample", "fitted_scores", "propose"]

MIN_SHARE = 0.01
"""The weight share (of the whole score) of a measure the fit found predicting the wrong way."""
_HELPS_AUC = 0.01


@dataclass(frozen=True)
class Sample:
    """One labelled observation as the fit sees it: the readings and whether it churned."""

    readings: Mapping[str, Reading]
    churned: bool
    scores: Mapping[str, float | None] = field(default_factory=dict)
    """Each measure's 0-100 score under the scorecard being fitted, when already known
    (`scoring.backtest.measure_scores`); measures missing here are scored from `readings`."""


@dataclass(frozen=True)
class MeasureFit:
    """What the fit did to one measure."""

    name: str
    component: str
    coefficient: float
    """Change in log-odds of churn per point of the measure's 0-100 score."""
    old_share: float
    new_share: float
    """The measure's share of the whole score, before and after."""
    wrong_way: bool
    """Given the others it predicts the wrong way (or nothing): the smallest weight."""
    old_range: tuple[float, float] | None = None
    new_range: tuple[float, float] | None = None
    """(good, bad) of a linear measure whose range the fit moved."""


@dataclass(frozen=True)
class Proposal:
    """A fitted scorecard and what changed per measure."""

    scorecard: Scorecard
    measures: tuple[MeasureFit, ...]


def _score(measure: Measure, reading: Reading | None) -> float | None:
    if reading is None or measure.freshness(reading.details) <= 0.0:
        return None
    return measure.score(reading.value, reading.details)


def _shares(card: Scorecard) -> dict[str, float]:
    total = sum(c.weight for c in card.components.values())
    shares: dict[str, float] = {}
    for component in card.components.values():
        inner = sum(m.weight for m in component.measures)
        for m in component.measures:
            shares[m.name] = component.weight / total * m.weight / inner
    return shares


def _matrix(card: Scorecard, samples: Sequence[Sample], moved: Collection[str]) -> np.ndarray:
    """Every measure's 0-100 score per sample, missing ones imputed (module docstring);
    a measure in `moved` (its range changed) is scored afresh from the readings."""
    shares = _shares(card)
    rows = []
    for sample in samples:
        row: list[float | None] = []
        mine = {
            m.name: (
                sample.scores[m.name]
                if m.name in sample.scores and m.name not in moved
                else _score(m, sample.readings.get(m.name))
            )
            for m in card.measures()
        }
        everything = [(shares[n], s) for n, s in mine.items() if s is not None]
        weight = sum(w for w, _ in everything)
        whole = sum(w * s for w, s in everything) / weight if weight else 50.0
        for component in card.components.values():
            got = [(m, mine[m.name]) for m in component.measures]
            present = [(m.weight, s) for m, s in got if s is not None]
            mean = sum(w * s for w, s in present) / sum(w for w, _ in present) if present else whole
            row += [mean if s is None else s for _, s in got]
        rows.append(row)
    return np.array(rows, dtype=float)


def _linear_values(measure: Measure, samples: Sequence[Sample]) -> list[tuple[float, bool]]:
    values = []
    for sample in samples:
        reading = sample.readings.get(measure.name)
        if reading is not None and isinstance(reading.value, int | float):
            values.append((float(reading.value), sample.churned))
    return values


def _refit_range(measure: Measure, samples: Sequence[Sample]) -> LinearNormalisation | None:
    """A linear measure's range at its values' 10th/90th percentiles, when that helps."""
    norm = measure.normalise
    values = _linear_values(measure, samples)
    if not isinstance(norm, LinearNormalisation) or len(values) < 10:
        return None
    low, high = (float(q) for q in np.percentile([v for v, _ in values], [10, 90]))
    if high - low < 1e-9:
        return None
    good, bad = (high, low) if norm.good > norm.bad else (low, high)
    if round(good, 4) == round(bad, 4):
        return None
    new = LinearNormalisation(kind="linear", good=round(good, 4), bad=round(bad, 4))
    labels = [c for _, c in values]
    old_scores = [norm.score(v) for v, _ in values]
    new_scores = [new.score(v) for v, _ in values]
    old_auc, new_auc = auc(old_scores, labels), auc(new_scores, labels)
    if old_auc is None or new_auc is None:
        return None
    return new if new_auc >= old_auc + _HELPS_AUC else None


def _capped_measures(card: Scorecard) -> set[str]:
    """The measures a cap tests, directly or through their component's score."""
    tested = {c.measure for rule in card.caps for c in rule.when if c.measure is not None}
    for rule in card.caps:
        for condition in rule.when:
            if condition.component in card.components:
                tested.update(m.name for m in card.components[condition.component].measures)
    return tested


def _with_ranges(
    card: Scorecard, samples: Sequence[Sample]
) -> tuple[Scorecard, dict[str, tuple[LinearNormalisation, LinearNormalisation]]]:
    moved: dict[str, tuple[LinearNormalisation, LinearNormalisation]] = {}
    components: dict[str, Component] = {}
    tested = _capped_measures(card)
    for cname, component in card.components.items():
        measures = []
        for measure in component.measures:
            new = None if measure.name in tested else _refit_range(measure, samples)
            if new is not None and isinstance(measure.normalise, LinearNormalisation):
                moved[measure.name] = (measure.normalise, new)
                measure = measure.model_copy(update={"normalise": new})
            measures.append(measure)
        components[cname] = component.model_copy(update={"measures": measures})
    return card.model_copy(update={"components": components}), moved


def _coefficients(
    card: Scorecard, samples: Sequence[Sample], moved: Collection[str]
) -> list[float]:
    x = _matrix(card, samples, moved) / 100.0
    y = np.array([s.churned for s in samples], dtype=int)
    model = LogisticRegression(max_iter=2000)
    model.fit(x, y)
    return [float(c) / 100.0 for c in model.coef_[0]]


def _weights(card: Scorecard, coefficients: Sequence[float]) -> dict[str, float]:
    """Each measure's new share of the score (module docstring, step 2)."""
    names = [m.name for m in card.measures()]
    strengths = [max(0.0, -c) for c in coefficients]
    if not sum(strengths):
        return _shares(card)  # nothing predicts churn here: keep the weights
    wrong = sum(s <= 0.0 for s in strengths)
    room = 1.0 - MIN_SHARE * wrong
    total = sum(strengths)
    return {
        n: (room * s / total if s > 0.0 else MIN_SHARE)
        for n, s in zip(names, strengths, strict=True)
    }


def _reweighted(card: Scorecard, shares: Mapping[str, float]) -> Scorecard:
    components: dict[str, Component] = {}
    for cname, component in card.components.items():
        weight = sum(shares[m.name] for m in component.measures)
        measures = [
            m.model_copy(update={"weight": max(0.001, round(shares[m.name] / weight, 3))})
            for m in component.measures
        ]
        components[cname] = component.model_copy(
            update={"weight": max(0.001, round(weight, 3)), "measures": measures}
        )
    return card.model_copy(update={"components": components})


def fitted_scores(card: Scorecard, samples: Sequence[Sample]) -> list[float | None]:
    """Each sample's score under `card` (None when it has no data for this scorecard)."""
    scored = [compute_score(card, s.readings) for s in samples]
    return [None if r is None else r.score for r in scored]


def choose_bands(card: Scorecard, scores: Sequence[float], churned: Sequence[bool]) -> Bands:
    """Green and yellow thresholds where the churn rate jumps (module docstring, step 3)."""
    if not scores or not any(churned):
        return card.bands
    cuts = [float(q) for q in np.quantile(scores, [k / 10 for k in range(1, 10)])]
    overall = sum(churned) / len(churned)
    edges = [-1.0, *cuts, 101.0]

    def rate(tenth: int) -> float:
        inside = [
            c for s, c in zip(scores, churned, strict=True) if edges[tenth] <= s < edges[tenth + 1]
        ]
        return sum(inside) / len(inside) if inside else 0.0

    red = 1
    while red < 3 and rate(red) >= 2 * overall:
        red += 1
    yellow = red + 1
    while yellow < 6 and rate(yellow) > overall:
        yellow += 1
    low = min(99.0, round(cuts[red - 1], 1))
    high = min(100.0, max(round(cuts[yellow - 1], 1), low + 1.0))
    return card.bands.model_copy(update={"yellow": low, "green": high})


def propose(card: Scorecard, samples: Sequence[Sample], *, version: str | None = None) -> Proposal:
    """The scorecard fitted to `samples` (see the module docstring)."""
    ranged, moved = _with_ranges(card, samples)
    coefficients = _coefficients(ranged, samples, set(moved))
    old, new = _shares(card), _weights(ranged, coefficients)
    fitted = _reweighted(ranged, new)
    scores = fitted_scores(fitted, samples)
    pairs = [(s, x.churned) for s, x in zip(scores, samples, strict=True) if s is not None]
    bands = choose_bands(fitted, [s for s, _ in pairs], [c for _, c in pairs])
    update: dict[str, object] = {"bands": bands}
    if version is not None:
        update["version"] = version
    fitted = Scorecard.model_validate(fitted.model_copy(update=update).model_dump())
    component_of = {m.name: c for c, comp in card.components.items() for m in comp.measures}
    fits = []
    for measure, coefficient in zip(card.measures(), coefficients, strict=True):
        ranges = moved.get(measure.name)
        fits.append(
            MeasureFit(
                name=measure.name,
                component=component_of[measure.name],
                coefficient=coefficient,
                old_share=old[measure.name],
                new_share=_shares(fitted)[measure.name],
                wrong_way=-coefficient <= 0.0,
                old_range=None if ranges is None else (ranges[0].good, ranges[0].bad),
                new_range=None if ranges is None else (ranges[1].good, ranges[1].bad),
            )
        )
    return Proposal(fitted, tuple(fits))
