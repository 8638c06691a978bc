"""A score taken apart: every measure's value, score, weight, points, change and freshness."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from scoring import explain, load_scorecard, score_accounts
from scoring.breakdown import STALE_AFTER, measure_lines
from store.db import session_scope
from store.models import SyncRun
from tests.scoring import seed
from tests.scoring.seed import AS_OF, END, MECHANICS, ago

CARD = load_scorecard(MECHANICS)


def _run(session: Session, source: str, stream: str, status: str, hours_ago: float) -> None:
    at = END - timedelta(hours=hours_ago)
    session.add(SyncRun(source=source, stream=stream, status=status, started_at=at, finished_at=at))


def test_every_measure_is_accounted_for_with_its_change_and_freshness(engine: Engine) -> None:
    with session_scope(engine) as session:
        account_id = seed.account(session, "Acme")
        seed.healthy(session, account_id)
        seed.sentiment(session, account_id, "green", ago(45))  # older than the seeded one
        _run(session, "helpdesk", "tickets", "ok", hours_ago=2)
        _run(session, "helpdesk", "tickets", "failed", hours_ago=1)  # failing now
        _run(session, "billing", "subscriptions", "ok", hours_ago=3)
        _run(session, "usage", "usage", "ok", hours_ago=STALE_AFTER.total_seconds() / 3600 + 5)
    score_accounts(engine, AS_OF - timedelta(days=7), CARD)
    with session_scope(engine) as session:  # a week of collapsing usage, then score again
        for n in range(4):
            seed.usage(session, account_id, seed.weeks_back(n), 2)
    score_accounts(engine, AS_OF, CARD)

    with Session(engine) as session:
        health = explain(session, account_id)
        assert health.latest is not None
        lines = measure_lines(session, health.latest, health.history[-2], now=END)
    by_name = {line.measure: line for line in lines}
    assert set(by_name) == {m.name for c in CARD.components.values() for m in c.measures}

    scored = [line for line in lines if line.score is not None]
    assert abs(sum(line.weight for line in scored) - 1.0) < 1e-3  # weights re-normalised
    for line in scored:
        assert line.points is not None
        assert abs(line.points - line.weight * line.score) < 0.06
    uncapped = health.latest.components.get("caps", {}).get("uncapped", health.latest.score)
    assert abs(sum(line.points or 0 for line in scored) - uncapped) < 0.5

    usage = by_name["seat_utilisation"]
    assert usage.change is not None
    assert usage.change < 0  # utilisation fell since the previous score
    assert usage.stale
    assert usage.data.startswith("usage 1 d ago: STALE")
    tickets = by_name["ticket_volume"]
    assert tickets.stale
    assert tickets.data == "helpdesk 2 h ago, failing (tickets): STALE"
    billing = by_name["subscription_state"]
    assert (billing.stale, billing.data) == (False, "billing 3 h ago")
    sentiment = by_name["csm_sentiment"]
    assert (sentiment.stale, sentiment.data) == (False, "entry 9 d old")


def test_a_measure_without_data_says_so(engine: Engine) -> None:
    with session_scope(engine) as session:
        account_id = seed.account(session, "Quiet")
        seed.subscription(session, account_id)
    score_accounts(engine, AS_OF, CARD)
    with Session(engine) as session:
        latest = explain(session, account_id).latest
        assert latest is not None
        lines = measure_lines(session, latest, None, now=END)
    by_name = {line.measure: line for line in lines}
    billing = [by_name["subscription_state"], by_name["mrr_trend"]]  # the only data
    assert sum(line.weight for line in billing) == 1.0
    assert billing[0].data == "billing (imported)"
    quiet = by_name["usage_trend"]
    assert (quiet.value, quiet.score, quiet.points, quiet.change) == (None, None, None, None)
    assert quiet.data == "no data from any source"
    assert by_name["csm_sentiment"].data == "no entry"
