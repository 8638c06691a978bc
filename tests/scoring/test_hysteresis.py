"""Bands with hysteresis: entering a band takes its threshold, leaving it takes a real drop."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from scoring import health, load_scorecard, score_accounts
from scoring.health import compute_score
from scoring.measures import Reading
from scoring.scorecard import Bands, Scorecard
from store.db import session_scope
from store.models import HealthScore
from tests.scoring import seed
from tests.scoring.seed import AS_OF

CARD = load_scorecard()


@pytest.mark.parametrize(
    ("score", "previous", "band"),
    [
        (71, None, "green"),
        (68, None, "yellow"),
        (68, "green", "green"),  # within 3 points of 70: held
        (67, "green", "green"),
        (66.9, "green", "yellow"),
        (68, "yellow", "yellow"),  # coming up, green takes the full 70
        (70, "yellow", "green"),
        (38, "yellow", "yellow"),
        (36, "yellow", "red"),
        (38, "green", "red"),  # a fall through two bands is not held
        (38, "red", "red"),
    ],
)
def test_a_band_is_held_within_hysteresis(score: float, previous: str | None, band: str) -> None:
    assert Bands(green=70, yellow=40, hysteresis=3).band(score, previous) == band


def test_no_hysteresis_is_the_plain_bands() -> None:
    assert Bands(hysteresis=0).band(69.9, "green") == "yellow"


def _usage(ratio: float) -> dict[str, Reading]:
    details = {"change": "", "recent_mean": 10 * ratio, "prior_mean": 10.0}
    return {
        "usage_trend": Reading(ratio, details),
        "subscription_state": Reading("active", {"state": "active"}),
    }


def test_a_cap_decides_the_band_whatever_came_before() -> None:
    capped = compute_score(
        CARD,
        {**_usage(1.0), "csm_sentiment": Reading("red", {"note": "", "ago": "", "days_ago": 1})},
        previous_band="green",
    )
    assert capped is not None
    assert capped.band == "yellow"


def test_scoring_passes_each_account_its_band_of_the_score_before(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(engine) as session:
        ids = [seed.account(session, name) for name in ("A", "B", "C")]
        for account_id in ids:
            seed.subscription(session, account_id)
        for account_id, band, days in ((ids[0], "green", 14), (ids[0], "yellow", 7)):
            session.add(
                HealthScore(
                    account_id=account_id,
                    as_of=AS_OF - timedelta(days=days),
                    score=50.0,
                    band=band,
                    scorecard_version="x",
                )
            )
        session.add(HealthScore(account_id=ids[1], as_of=AS_OF + timedelta(days=7), score=90.0,
                                band="green", scorecard_version="x"))  # fmt: skip
    seen: dict[int, str | None] = {}
    real = health.compute_score

    def spy(card: Scorecard, readings: Any, previous_band: str | None = None) -> Any:
        seen[len(seen)] = previous_band
        return real(card, readings, previous_band)

    monkeypatch.setattr(health, "compute_score", spy)
    score_accounts(engine, AS_OF, CARD)
    # the latest score before AS_OF, never one after it; none for a new account
    assert sorted(seen.values(), key=str) == sorted(["yellow", None, None], key=str)
