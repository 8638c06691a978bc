"""Scoring all accounts: renormalised weights, point in time, idempotent, explained."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, event, func
from sqlmodel import Session, col, select

from scoring import (
    SentimentError,
    UnknownAccountError,
    backfill,
    compute_score,
    explain,
    load_scorecard,
    record_sentiment,
    score_accounts,
)
from scoring.measures import MEASURES, Reading
from store import session_scope
from store.models import HealthScore
from tests.scoring.seed import (
    AS_OF,
    MECHANICS,
    account,
    ago,
    healthy,
    invoice,
    later,
    sentiment,
    subscription,
    ticket,
    usage,
    weeks_back,
)

CARD = load_scorecard(MECHANICS)


def _scores(engine: Engine) -> dict[int, HealthScore]:
    with Session(engine) as s:
        rows = s.exec(select(HealthScore)).all()
    return {row.account_id: row for row in rows}


def _declining(s: Session, account_id: int) -> None:
    """Steady history, then a month of many tickets and half the active users."""
    healthy(s, account_id, usage_users=16, recent_users=8)
    for k in range(7):
        ticket(s, account_id, ago(2 + 3 * k), status="solved", solved_at=ago(1 + 3 * k))
    ticket(s, account_id, ago(3), priority="urgent")


def test_falling_usage_and_rising_tickets_score_lower(engine: Engine) -> None:
    with session_scope(engine) as s:
        steady, declining = account(s, "Steady Co"), account(s, "Acme Robotics")
        healthy(s, steady)
        _declining(s, declining)
    summary = score_accounts(engine, AS_OF, CARD)
    assert (summary.accounts, summary.scored, summary.unscored) == (2, 2, 0)
    scores = _scores(engine)
    assert scores[steady].score == 100.0
    assert scores[steady].band == "green"
    assert scores[steady].confidence == 1.0
    assert scores[declining].score == pytest.approx(63.4, abs=0.1)
    assert scores[declining].band == "yellow"
    assert [d["text"] for d in scores[declining].drivers] == [
        "Weekly active users down 50% (last 4 weeks vs the 8 before)",
        "Tickets 9.0x the usual volume in the last 30 days (9 vs about 1)",
        "8 of 20 seats active last week (40%)",
    ]
    assert all(d["direction"] == "negative" for d in scores[declining].drivers)
    impacts = [d["impact"] for d in scores[declining].drivers]
    assert impacts == sorted(impacts)
    support = scores[declining].components["support"]
    assert support["score"] == pytest.approx(47.5)
    assert support["measures"]["urgent_open_tickets"]["value"] == 1
    assert support["measures"]["urgent_open_tickets"]["score"] == 50
    # green accounts say what holds them up, in plain words
    positives = scores[steady].drivers
    assert positives
    assert all(d["direction"] == "positive" for d in positives)
    for driver in positives + scores[declining].drivers:
        assert "{" not in driver["text"]
        assert "_" not in driver["text"]


def test_missing_data_renormalises_and_lowers_confidence(engine: Engine) -> None:
    with session_scope(engine) as s:
        only_sentiment, only_billing, nothing = (account(s, n) for n in ("S", "B", "N"))
        sentiment(s, only_sentiment, "yellow", ago(3))
        subscription(s, only_billing, "active")
    summary = score_accounts(engine, AS_OF, CARD)
    assert (summary.scored, summary.unscored) == (2, 1)
    scores = _scores(engine)
    assert nothing not in scores
    s_row = scores[only_sentiment]
    assert s_row.score == 50.0  # not dragged to 0 by the missing components
    assert s_row.confidence == 0.15
    assert s_row.components["support"]["score"] is None
    assert s_row.components["support"]["measures"]["csat"]["value"] is None
    assert s_row.weights == {"support": 0, "billing": 0, "usage": 0, "sentiment": 1.0}
    b_row = scores[only_billing]
    assert b_row.score == 100.0
    assert b_row.confidence == pytest.approx(0.3 * (0.40 + 0.25))
    assert b_row.components["billing"]["measures"]["failed_payments"]["score"] is None


def test_without_caps_red_sentiment_only_pulls_its_component_down(engine: Engine) -> None:
    with session_scope(engine) as s:
        a = account(s, "A")
        healthy(s, a)
        sentiment(s, a, "red", ago(2), note="exec sponsor left")
    score_accounts(engine, AS_OF, CARD.model_copy(update={"caps": []}))
    row = _scores(engine)[a]
    assert row.components["sentiment"]["score"] == 10
    assert row.score == pytest.approx(86.5)
    assert row.band == "green"
    assert row.drivers[0]["text"] == "CSM marked red: exec sponsor left"
    assert row.drivers[0]["direction"] == "negative"
    assert "caps" not in row.components


def test_rows_after_as_of_change_nothing(engine: Engine) -> None:
    with session_scope(engine) as s:
        a = account(s, "A")
        healthy(s, a)
    score_accounts(engine, AS_OF, CARD)
    before = _scores(engine)[a]
    with session_scope(engine) as s:
        for k in range(10):
            ticket(s, a, later(0.1 + k / 10), priority="urgent")
        sentiment(s, a, "red", later(1), note="too late")
        invoice(s, a, later(1), status="open", attempt_count=3, amount_remaining_minor=100)
        subscription(s, a, "past_due", started_at=later(1), mrr_minor=999_00)
        usage(s, a, weeks_back(1), 1000, recorded=later(1))
        account(s, "Born later", created_at=later(1))
    score_accounts(engine, AS_OF, CARD)
    after = _scores(engine)
    assert len(after) == 1
    assert (after[a].score, after[a].components, after[a].drivers) == (
        before.score,
        before.components,
        before.drivers,
    )
    score_accounts(engine, AS_OF + timedelta(days=7), CARD)
    with Session(engine) as s:
        week_later = s.exec(
            select(HealthScore).where(col(HealthScore.as_of) == AS_OF + timedelta(days=7))
        )
        assert {row.account_id: row.band for row in week_later}[a] != "green"


def test_rescoring_the_same_day_replaces(engine: Engine) -> None:
    with session_scope(engine) as s:
        a, b = account(s, "A"), account(s, "B")
        healthy(s, a)
        healthy(s, b)
    score_accounts(engine, AS_OF, CARD)
    score_accounts(engine, AS_OF, CARD)
    with session_scope(engine) as s:
        sentiment(s, a, "red", ago(1))
    score_accounts(engine, AS_OF, CARD)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(HealthScore)) == 2
    assert _scores(engine)[a].components["sentiment"]["score"] == 10


def test_query_count_does_not_grow_with_accounts(engine: Engine) -> None:
    def run(n: int) -> int:
        with session_scope(engine) as s:
            for i in range(n):
                healthy(s, account(s, f"Acct {n}-{i}"))
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])

        event.listen(engine, "before_cursor_execute", count)
        try:
            score_accounts(engine, AS_OF, CARD)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    assert run(2) == run(25)


def test_backfill_and_explain(engine: Engine) -> None:
    with session_scope(engine) as s:
        a = account(s, "A")
        healthy(s, a)
    summaries = backfill(engine, weeks=3, today=AS_OF, scorecard=CARD)
    assert [x.as_of for x in summaries] == [AS_OF - timedelta(weeks=k) for k in (2, 1, 0)]
    with Session(engine) as s:
        health = explain(s, a)
        assert health.account.name == "A"
        assert health.latest is not None
        assert health.latest.as_of == AS_OF
        assert [h.as_of for h in health.history] == [x.as_of for x in summaries]
        assert explain(s, a, history=1).history[0].as_of == AS_OF - timedelta(weeks=1)
        with pytest.raises(UnknownAccountError):
            explain(s, 999_999)


def test_record_sentiment(engine: Engine) -> None:
    with session_scope(engine) as s:
        a, gone = account(s, "A"), account(s, "Gone", deleted_at=ago(5))
    entry = record_sentiment(engine, a, " RED ", "renewal at risk", author_email="csm@x.test")
    assert (entry.sentiment, entry.note, entry.origin) == ("red", "renewal at risk", "cli")
    assert entry.id is not None
    with pytest.raises(SentimentError, match="green, yellow or red"):
        record_sentiment(engine, a, "purple")
    with pytest.raises(UnknownAccountError):
        record_sentiment(engine, gone, "green")


_values: dict[str, st.SearchStrategy[Any]] = {
    name: (
        st.sampled_from(spec.categories)
        if spec.categories
        else st.floats(min_value=0, max_value=50, allow_nan=False)
    )
    for name, spec in MEASURES.items()
}


@given(
    st.fixed_dictionaries(
        {}, optional={n: v.map(lambda x: Reading(x, {})) for n, v in _values.items()}
    )
)
def test_score_and_confidence_stay_in_range(readings: dict[str, Reading]) -> None:
    details = {n: Reading(r.value, dict(MEASURES[n].example_details)) for n, r in readings.items()}
    result = compute_score(CARD, details)
    if not readings:
        assert result is None
        return
    assert result is not None
    assert 0 <= result.score <= 100
    assert 0 < result.confidence <= 1
    assert sum(result.weights.values()) == pytest.approx(1, abs=1e-3)
    assert len([d for d in result.drivers if d["direction"] == "negative"]) <= 3
