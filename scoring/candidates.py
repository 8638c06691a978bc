"""Which signals predict churn in this book? Every signal the store holds, ranked by AUC.

`candidate_scorecard` builds, from what the store holds (`scoring.signals.catalog`), one
measure per signal and aggregation: each usage metric's 30-day sum and active periods, its
28-day trend and its recency, its depth per active user; the breadth of every family of
metrics sharing a prefix (`feature_`); every trait (as a number, or as its words); tenure;
NPS, CSAT and CES as scores; the recency of tickets, CSM calls and survey answers; and the
preset measures. The backtest scores the book's snapshots with it (point in time, as any
scorecard), and `rank_candidates` then ranks each signal by how well its raw value alone
separates the accounts that churned within the horizon from those that stayed.

Direction is found, not assumed: a signal whose higher values go with churn (tickets, days
since the last login) is ranked by `1 - AUC` and said to be "higher is riskier". A word
(a category trait) is ranked by the churn rate of its word among the observations, so its
AUC is measured on the same observations it was learnt from: words seen fewer than
`MIN_WORD_OBSERVATIONS` times are pooled, which keeps that optimism small; read it as a
lead to try with `--fit`, not as a result. The ranking is exploration: it proposes
measures to declare, and each line carries the TOML to paste into a scorecard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from scoring.backtest import Observation
from scoring.backtest_figures import auc
from scoring.measures import MEASURES
from scoring.scorecard import Scorecard
from scoring.scorecard_toml import toml_value
from scoring.signals.catalog import store_catalog
from scoring.signals.usage import SNAPSHOT_METRICS
from store.models import AccountTrait, SurveyResponse

__all__ = [
    "MIN_WORD_OBSERVATIONS",
    "Candidate",
    "CandidateRank",
    "candidate_scorecard",
    "candidates",
    "rank_candidates",
]

MIN_WORD_OBSERVATIONS = 20
"""Words of a category trait seen fewer times than this are pooled as one."""
NUMERIC = {"kind": "percentile"}
WORDS = {"kind": "categories", "scores": {"any": 50}, "otherwise": 50}


def _named(text: str) -> str:
    """A measure name within the scorecard's 100 characters."""
    return text if len(text) <= 100 else text[:99] + "…"


@dataclass(frozen=True)
class Candidate:
    """One signal and aggregation to try: its measure name and its `signal` declaration."""

    name: str
    signal: dict[str, Any] | None
    """None for a preset measure."""
    categorical: bool = False

    def toml(self) -> str:
        """The measure's declaration, to paste into a scorecard's component."""
        if self.signal is None:
            return f"name = {toml_value(self.name)}  # a preset measure"
        return f"name = {toml_value(self.name)}\nsignal = {toml_value(self.signal)}"


def _prefixes(metrics: Sequence[str]) -> list[str]:
    """Prefixes (up to the first `_`) shared by two metrics or more: `feature_`."""
    counts = Counter(m.split("_", 1)[0] + "_" for m in metrics if "_" in m)
    return sorted(p for p, n in counts.items() if n >= 2)


def candidates(session: Session) -> list[Candidate]:
    """Every signal the store holds, each with the aggregations worth trying."""
    catalog = store_catalog(session)
    found = [Candidate(name, None, bool(spec.categories)) for name, spec in MEASURES.items()]
    metrics = sorted(catalog.metrics)
    for metric in metrics:
        found += [
            Candidate(
                _named(f"{metric} sum 30d"), {"kind": "metric", "metric": metric, "agg": "sum"}
            ),
            Candidate(
                _named(f"{metric} active periods 30d"),
                {"kind": "metric", "metric": metric, "agg": "days_active"},
            ),
            Candidate(_named(f"{metric} trend 28d"), {"kind": "trend", "metric": metric}),
            Candidate(
                _named(f"{metric} recency"), {"kind": "recency", "of": "metric", "metric": metric}
            ),
        ]
        if "active_users" in catalog.metrics and metric not in SNAPSHOT_METRICS:
            found.append(
                Candidate(
                    f"{metric} per active user 30d",
                    {"kind": "depth", "metric": metric, "per": "active_users"},
                )
            )
    for prefix in _prefixes(metrics):
        found.append(
            Candidate(_named(f"{prefix}* breadth 30d"), {"kind": "breadth", "prefix": prefix})
        )
    kinds = session.connection().execute(
        select(col(AccountTrait.name), col(AccountTrait.kind)).distinct()
    )
    for name, kind in sorted(set(kinds)):
        signal = {"kind": "trait", "trait": name}
        if kind in ("number", "date"):
            found.append(Candidate(_named(f"trait {name}"), signal))
        else:
            found.append(Candidate(_named(f"trait {name}"), signal, categorical=True))
    found.append(Candidate("tenure", {"kind": "tenure"}))
    surveys = {
        str(k).lower()
        for (k,) in session.connection().execute(select(col(SurveyResponse.kind)).distinct())
    }
    if "nps" in surveys:
        found.append(Candidate("nps score", {"kind": "survey", "survey": "nps", "stat": "nps"}))
    for kind in ("nps", "csat", "ces"):
        if kind in surveys:
            found.append(
                Candidate(
                    _named(f"{kind} mean"), {"kind": "survey", "survey": kind, "stat": "mean"}
                )
            )
    for event in ("ticket", "sentiment", "survey"):
        found.append(Candidate(_named(f"{event} recency"), {"kind": "recency", "of": event}))
    return found


def candidate_scorecard(found: Sequence[Candidate]) -> Scorecard:
    """One scorecard holding every candidate, so the backtest reads them all at each
    snapshot (its total score is of no interest: only the readings are ranked)."""
    measures = []
    for candidate in found:
        if candidate.signal is None:
            continue  # presets are read through a scorecard of their own (their labels)
        measures.append(
            {
                "name": candidate.name,
                "weight": 1.0,
                "signal": candidate.signal,
                "normalise": WORDS if candidate.categorical else NUMERIC,
                "label": candidate.name.replace("{", "{{").replace("}", "}}"),
            }
        )
    return Scorecard.model_validate(
        {
            "version": "candidates",
            "components": {"candidates": {"weight": 1.0, "measures": measures}},
        }
    )


@dataclass(frozen=True)
class CandidateRank:
    """How well one candidate alone separates churners, over the observations it covers."""

    candidate: Candidate
    auc: float | None
    """The strength of the separation, 0.5 (none) to 1.0, whatever the direction."""
    direction: str
    """`lower is riskier`, `higher is riskier`, or for words: the riskiest word."""
    observations: int
    coverage: float
    churned: int


def _number(value: float | str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _word_rates(pairs: Sequence[tuple[str, bool]]) -> dict[str, float]:
    seen = Counter(word for word, _ in pairs)
    pooled = [(w if seen[w] >= MIN_WORD_OBSERVATIONS else "(rare words)", c) for w, c in pairs]
    totals, churned = Counter(w for w, _ in pooled), Counter(w for w, c in pooled if c)
    return {w: churned[w] / totals[w] for w in totals}


def _rank_one(
    candidate: Candidate, observations: Sequence[Observation], value_of: str
) -> CandidateRank:
    total = len(observations)
    if candidate.categorical:
        pairs = [
            (str(o.readings[value_of].value), o.churned)
            for o in observations
            if value_of in o.readings
        ]
        rates = _word_rates(pairs)
        pooled_word = {w: (w if w in rates else "(rare words)") for w, _ in pairs}
        scores = [-rates[pooled_word[w]] for w, _ in pairs]
        labels = [c for _, c in pairs]
        found = auc(scores, labels)
        riskiest = max(rates, key=lambda w: rates[w]) if rates else "-"
        direction = f"riskiest: {riskiest}"
    else:
        numbers = [
            (_number(o.readings[value_of].value), o.churned)
            for o in observations
            if value_of in o.readings
        ]
        kept = [(v, c) for v, c in numbers if v is not None]
        labels = [c for _, c in kept]
        found = auc([v for v, _ in kept], labels)
        direction = "lower is riskier"
        if found is not None and found < 0.5:
            found, direction = 1.0 - found, "higher is riskier"
    return CandidateRank(
        candidate=candidate,
        auc=found,
        direction=direction,
        observations=len(labels),
        coverage=len(labels) / total if total else 0.0,
        churned=sum(labels),
    )


def rank_candidates(
    found: Sequence[Candidate],
    observations: Sequence[Observation],
    presets: Sequence[Observation] = (),
) -> list[CandidateRank]:
    """Each candidate's own separation of churners, strongest first (no data last).

    `observations` come from backtesting `candidate_scorecard(found)`; `presets` from a
    scorecard of the preset measures, on the same snapshots."""
    ranks = []
    for candidate in found:
        source = presets if candidate.signal is None else observations
        if source:
            ranks.append(_rank_one(candidate, source, candidate.name))
    return sorted(ranks, key=lambda r: (r.auc is None, -(r.auc or 0.0), r.candidate.name))
