"""Score changes over 7, 30 and 90 days, and the measures that moved them most."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from scoring.trend import changes, moves, score_on_or_before
from store.db import session_scope
from store.models import HealthScore
from tests.scoring import seed
from tests.scoring.seed import AS_OF


def _components(usage: float, support: float, cap: float | None = None) -> dict[str, Any]:
    components: dict[str, Any] = {
        "usage": {"measures": {"usage_trend": {"score": usage, "effective_weight": 0.5}}},
        "support": {"measures": {"ticket_volume": {"score": support, "effective_weight": 0.5}}},
    }
    if cap is not None:
        uncapped = 0.5 * usage + 0.5 * support
        components["caps"] = {
            "score": cap,
            "uncapped": uncapped,
            "fired": [{"name": "usage_collapsing", "cap": cap, "lowered": True}],
        }
    return components


def _score(account_id: int, days_ago: int, score: float, **parts: Any) -> HealthScore:
    return HealthScore(
        account_id=account_id,
        as_of=AS_OF - timedelta(days=days_ago),
        score=score,
        band="green" if score >= 70 else "yellow" if score >= 40 else "red",
        components=_components(**parts),
        scorecard_version="t",
    )


def test_changes_compare_with_the_latest_score_on_or_before_each_window(engine: Engine) -> None:
    with session_scope(engine) as session:
        falling, steady, new = (seed.account(session, n) for n in ("Falling", "Steady", "New"))
        for days, score in ((0, 40.0), (7, 55.0), (35, 80.0), (91, 90.0)):
            session.add(_score(falling, days, score, usage=score, support=score))
        for days in (0, 14):
            session.add(_score(steady, days, 75.0, usage=75.0, support=75.0))
        session.add(_score(new, 0, 60.0, usage=60.0, support=60.0))
    with Session(engine) as session:
        moved = changes(session, AS_OF)
    assert moved[falling] == {7: -15.0, 30: -40.0, 90: -50.0}  # 30 d compares with day 35
    assert moved[steady] == {7: 0.0}  # day 14 is its latest score on or before 7 days ago
    assert new not in moved


def test_moves_name_the_measures_and_caps_behind_a_fall(engine: Engine) -> None:
    with session_scope(engine) as session:
        account_id = seed.account(session, "Falling")
        session.add(_score(account_id, 30, 90.0, usage=90.0, support=90.0))
        session.add(_score(account_id, 0, 35.0, usage=40.0, support=80.0, cap=35.0))
    with Session(engine) as session:
        latest = score_on_or_before(session, account_id, AS_OF)
        baseline = score_on_or_before(session, account_id, AS_OF - timedelta(days=30))
    assert latest is not None
    assert baseline is not None
    found = [(m.measure, m.points) for m in moves(latest, baseline)]
    assert found == [("usage_collapsing", -25.0), ("usage_trend", -25.0), ("ticket_volume", -5.0)]
    total = sum(m.points for m in moves(latest, baseline, limit=10))
    assert total == latest.score - baseline.score  # the moves add up to the change
