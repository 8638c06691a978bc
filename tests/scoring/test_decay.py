"""A CSM's call fades with age: full weight while fresh, then less, then missing, not neutral."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from scoring import explain, load_scorecard, score_accounts
from scoring.health import compute_score
from scoring.measures import Reading
from scoring.scorecard import Decay
from store.db import session_scope
from tests.scoring import seed
from tests.scoring.seed import AS_OF, ago

CARD = load_scorecard()


def _red(days: int) -> dict[str, Reading]:
    return {
        "subscription_state": Reading("active", {"state": "active"}),
        "csm_sentiment": Reading("red", {"note": "", "ago": f"{days} days ago", "days_ago": days}),
    }


def test_decay_is_full_then_linear_then_gone() -> None:
    decay = Decay(full_days=30, zero_days=90)
    assert [decay.factor(d) for d in (0, 30, 60, 90, 120)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    with pytest.raises(ValidationError, match="zero_days must be after full_days"):
        Decay(full_days=30, zero_days=30)


def test_an_aging_red_call_weighs_less_and_an_expired_one_is_missing() -> None:
    fresh = compute_score(CARD, _red(10))
    aging = compute_score(CARD, _red(60))
    expired = compute_score(CARD, _red(95))
    assert fresh is not None
    assert aging is not None
    assert expired is not None
    sentiment_weight = {
        label: result.components["sentiment"]["measures"]["csm_sentiment"].get("effective_weight")
        for label, result in (("fresh", fresh), ("aging", aging))
    }
    assert sentiment_weight["aging"] < sentiment_weight["fresh"]
    assert aging.components["sentiment"]["measures"]["csm_sentiment"]["freshness"] == 0.5
    assert aging.confidence < fresh.confidence
    assert fresh.band == aging.band == "yellow"  # a red call, fresh or aging, still caps
    gone = expired.components["sentiment"]
    assert gone["score"] is None
    assert gone["measures"]["csm_sentiment"]["freshness"] == 0.0
    assert expired.band == "green"  # the expired call neither caps nor counts as neutral
    assert expired.score == 100.0


def test_scoring_an_account_fades_its_old_sentiment(engine: Engine) -> None:
    with session_scope(engine) as session:
        account_id = seed.account(session, "Acme")
        seed.subscription(session, account_id)
        seed.sentiment(session, account_id, "yellow", ago(61))
        seed.sentiment(session, account_id, "green", ago(60))  # the latest call, two months old
    score_accounts(engine, AS_OF, CARD)
    with Session(engine) as session:
        latest = explain(session, account_id).latest
    assert latest is not None
    entry = latest.components["sentiment"]["measures"]["csm_sentiment"]
    assert entry["value"] == "green"
    assert 0.45 < entry["freshness"] < 0.55
