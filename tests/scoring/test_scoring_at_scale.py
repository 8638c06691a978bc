"""What makes scoring fast changes no score: shared queries, SQL-side usage, chunked writes.

The usage measures aggregate in SQL; here they are checked against their plain definition
worked out in Python from every snapshot, on randomised weeks (gaps, several snapshots a
week, weeks not starting on Mondays, unknown seats, snapshots recorded too late, stale
accounts). On a small generated book (the scoring benchmark's), `read_measures` must give
what each measure's own query gives, and `score_accounts`, which writes a chunk of
accounts at a time, must store exactly the scores of one pass of `compute_score` over
every live account.
"""

from __future__ import annotations

import gc
import random
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

import scoring.health
from bench.scoring_bench import AS_OF as BOOK_AS_OF
from bench.scoring_bench import load_book
from scoring import compute_score, load_scorecard, score_accounts
from scoring.measures import MEASURES, Reading, Readings, cutoff, read_measures
from store import session_scope
from store.models import HealthScore, UsageSnapshot
from tests.scoring.seed import AS_OF, MECHANICS, account, later, usage, weeks_back

CARD = load_scorecard(MECHANICS)


def _change(ratio: float) -> str:
    percent = round((ratio - 1) * 100)
    return "unchanged" if percent == 0 else f"{'up' if percent > 0 else 'down'} {abs(percent)}%"


def _usage_by_definition(session: Session, as_of: date) -> tuple[Readings, Readings]:
    """Seat utilisation and usage trend worked out in Python from every snapshot."""
    weeks: dict[int, dict[date, list[int]]] = {}
    for snap in session.exec(select(UsageSnapshot)).all():
        known = snap.recorded_at < cutoff(as_of)
        complete = as_of - timedelta(weeks=17) < snap.period_start <= as_of - timedelta(days=6)
        if snap.account_id is None or not known or not complete:
            continue
        week = weeks.setdefault(snap.account_id, {}).setdefault(snap.period_start, [0, 0])
        week[0] += snap.active_users
        week[1] += snap.licensed_seats or 0
    utilisation: Readings = {}
    trends: Readings = {}
    for account_id, by_week in weeks.items():
        newest_first = sorted(by_week.items(), reverse=True)
        latest, (active, seats) = newest_first[0]
        if latest <= as_of - timedelta(weeks=5):
            continue  # stale
        if seats > 0:
            details = {"active": active, "seats": seats, "week": latest.isoformat()}
            utilisation[account_id] = Reading(round(active / seats, 3), details)
        split = latest - timedelta(weeks=4)
        recent = [users for week, (users, _) in newest_first if week > split]
        prior = [
            users for week, (users, _) in newest_first if split - timedelta(weeks=8) < week <= split
        ]
        if not prior or sum(prior) == 0:
            continue
        recent_mean, prior_mean = sum(recent) / len(recent), sum(prior) / len(prior)
        ratio = recent_mean / prior_mean
        details = {
            "change": _change(ratio),
            "recent_mean": round(recent_mean, 1),
            "prior_mean": round(prior_mean, 1),
        }
        trends[account_id] = Reading(round(ratio, 3), details)
    return utilisation, trends


def _random_usage(session: Session, r: random.Random, accounts: int) -> None:
    for n in range(accounts):
        a = account(session, f"Usage {n}")
        oldest_known = 6 if n % 7 == 0 else 0  # one in seven has gone quiet: stale
        for back in range(oldest_known, 22):
            if r.random() < 0.2:
                continue  # a gap
            start = weeks_back(back) + timedelta(days=r.choice((0, 0, 1, 2, -1)))
            for _ in range(r.choice((1, 1, 1, 2))):  # sometimes two sources report a week
                recorded = later(1) if r.random() < 0.05 else None
                seats = r.choice((None, 0, 12, 20, 20))
                usage(session, a, start, r.choice((0, r.randint(1, 25))), seats, recorded)


@pytest.mark.parametrize("days_after", [-30, 0, 3, 20])
def test_usage_measures_match_their_definition(engine: Engine, days_after: int) -> None:
    with session_scope(engine) as s:
        _random_usage(s, random.Random(days_after), accounts=40)
    as_of = AS_OF + timedelta(days=days_after)
    with session_scope(engine) as s:
        got = read_measures(s, as_of, ["seat_utilisation", "usage_trend"])
        utilisation, trends = _usage_by_definition(s, as_of)
    assert got["seat_utilisation"] == utilisation
    assert got["usage_trend"] == trends
    assert trends  # the book has enough history to have trends


@pytest.fixture
def book(engine: Engine) -> Engine:
    """The scoring benchmark's book, 150 accounts, in the test database."""
    load_book(engine.url.render_as_string(hide_password=False), accounts=150, seed=3)
    return engine


def test_read_measures_gives_what_each_measure_gives(book: Engine) -> None:
    with session_scope(book) as s:
        together = read_measures(s, BOOK_AS_OF, list(MEASURES))
        alone = {name: spec.query(s, BOOK_AS_OF) for name, spec in MEASURES.items()}
    assert together == alone
    assert all(together.values())  # the book has data for every measure


def test_chunked_scoring_stores_what_one_pass_computes(
    book: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Session(book) as s:
        accounts = scoring.health._live_account_ids(s, BOOK_AS_OF)
        readings = {name: MEASURES[name].query(s, BOOK_AS_OF) for name in CARD.measure_names()}
    expected = {
        a: compute_score(CARD, {n: r[a] for n, r in readings.items() if a in r}) for a in accounts
    }
    monkeypatch.setattr(scoring.health, "SCORE_CHUNK", 7)
    summary = score_accounts(book, BOOK_AS_OF, CARD)
    with Session(book) as s:
        stored = {h.account_id: h for h in s.exec(select(HealthScore)).all()}
    assert stored.keys() == {a for a, score in expected.items() if score is not None}
    for account_id, row in stored.items():
        want = expected[account_id]
        assert want is not None
        got = (row.score, row.band, row.confidence, row.components, row.weights, row.drivers)
        assert got == (
            want.score,
            want.band,
            want.confidence,
            want.components,
            want.weights,
            want.drivers,
        )
    scored = [s for s in expected.values() if s is not None]
    assert (summary.accounts, summary.scored) == (len(accounts), len(scored))
    assert summary.mean_confidence == round(sum(s.confidence for s in scored) / len(scored), 3)
    assert sum(summary.bands.values()) == len(scored)


def test_scoring_leaves_the_cycle_collector_as_it_found_it(engine: Engine) -> None:
    assert gc.isenabled()
    score_accounts(engine, AS_OF, CARD)
    assert gc.isenabled()
    gc.disable()
    try:
        score_accounts(engine, AS_OF, CARD)
        assert not gc.isenabled()
    finally:
        gc.enable()
