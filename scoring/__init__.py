"""Health scoring: the scorecard, set-based measures, scores with drivers, sentiment.

Reads the store only; never imports connectors or notifications.
"""

from scoring.health import (
    AccountHealth,
    AccountScore,
    ScoreRunSummary,
    SentimentError,
    UnknownAccountError,
    backfill,
    compute_score,
    explain,
    record_sentiment,
    score_accounts,
)
from scoring.measures import MEASURES, Reading
from scoring.scorecard import BANDS, Scorecard, ScorecardError, band_rank, load_scorecard

__all__ = [
    "BANDS",
    "MEASURES",
    "AccountHealth",
    "AccountScore",
    "Reading",
    "ScoreRunSummary",
    "Scorecard",
    "ScorecardError",
    "SentimentError",
    "UnknownAccountError",
    "backfill",
    "band_rank",
    "compute_score",
    "explain",
    "load_scorecard",
    "record_sentiment",
    "score_accounts",
]
