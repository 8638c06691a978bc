"""The backtest: exact figures on a hand-made history, point in time, and the sandbox book.

The hand-made store has five accounts scored by a one-measure scorecard (CSM sentiment), so
every score is known in advance and the AUC and band churn rates can be worked out by hand.
The sandbox book is synced through the real connectors once per module; on it the default
scorecard must rank churners well (AUC at least 0.80).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import Engine
from sqlmodel import Session

from connectors.registry import sync_all
from demo import _sandbox_settings, _seed_sentiment
from sandbox.book import generate_book
from sandbox.hubspot import hubspot_app
from sandbox.ratelimit import Limits
from sandbox.server import serve_apps
from sandbox.stripe import stripe_app
from sandbox.usage_csv import write_usage_csv
from sandbox.zendesk import zendesk_app
from scoring import Scorecard, load_scorecard
from scoring.backtest import auc, backtest, compare, print_backtests, snapshot_days
from settings import Settings
from store.db import make_engine
from tests.scoring.seed import account, sentiment, subscription

TODAY = date(2026, 6, 30)
SENTIMENT_ONLY = Scorecard.model_validate(
    {
        "version": "sentiment-only",
        "components": {
            "sentiment": {
                "weight": 1.0,
                "measures": [
                    {
                        "name": "csm_sentiment",
                        "weight": 1.0,
                        "label": "CSM marked {value}",
                        "normalise": {
                            "kind": "categories",
                            "scores": {"green": 100, "yellow": 50, "red": 10},
                        },
                    }
                ],
            }
        },
    }
)


def _at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=hour)


@pytest.fixture
def history(sqlite_url: str) -> Iterator[Engine]:
    """Five customers since 2025; snapshots (monthly, 2 months back) on 04-30, 05-30, 06-30.

    With a 30-day horizon only 04-30 and 05-30 are labelled.
    - A: red on 04-20, churns 05-15 (within 30 days of 04-30).
    - B: yellow on 04-25, churns 06-20 (within 30 days of 05-30, when it was still yellow).
    - C: green throughout, churns 05-20 (a churner the score missed).
    - D: red on 04-28, never churns (a false alarm).
    - E: green throughout, never churns.
    """
    engine = make_engine(sqlite_url)
    start = _at(date(2025, 1, 1))
    with Session(engine) as session:
        ids = {name: account(session, name) for name in "ABCDE"}
        ends = {"A": date(2026, 5, 15), "B": date(2026, 6, 20), "C": date(2026, 5, 20)}
        for name, account_id in ids.items():
            end = ends.get(name)
            status = "canceled" if end else "active"
            subscription(
                session,
                account_id,
                status,
                started_at=start,
                ended_at=_at(end) if end else None,
                canceled_at=_at(end) if end else None,
            )
        marks = {"A": ("red", 20), "B": ("yellow", 25), "C": ("green", 20), "D": ("red", 28)}
        for name, (value, day) in marks.items():
            sentiment(session, ids[name], value, _at(date(2026, 4, day)))
        sentiment(session, ids["E"], "green", _at(date(2026, 4, 10)))
        session.commit()
    yield engine
    engine.dispose()


def test_auc_is_the_rank_formula() -> None:
    assert auc([10, 50, 100], [True, False, False]) == 1.0
    assert auc([100, 10], [True, False]) == 0.0
    assert auc([50, 50], [True, False]) == 0.5
    assert auc([10, 10, 100], [True, False, False]) == 0.75
    assert auc([10, 20], [False, False]) is None


def test_snapshots_step_back_by_month_and_week() -> None:
    assert snapshot_days(date(2026, 3, 31), 2) == (
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 3, 31),
    )
    assert len(snapshot_days(date(2026, 3, 31), 1, weekly=True)) == 5


def test_figures_match_a_hand_count(history: Engine) -> None:
    result = backtest(history, SENTIMENT_ONLY, today=TODAY, months=2, horizon_days=30)
    # 04-30: A red (churns), B yellow, C green (churns), D red, E green.
    # 05-30: B yellow (churns), D red, E green; A and C are gone.
    assert result.snapshots == (date(2026, 4, 30), date(2026, 5, 30), date(2026, 6, 30))
    assert result.labelled_snapshots == 2
    assert result.observations == 8
    assert result.accounts == 5
    assert result.churned_observations == 3
    # churned scores 10 (A), 100 (C), 50 (B) against retained 50, 10, 100, 10, 100 (B, D, E,
    # D, E): wins 4.5 + 0.5 + 2.5 = 7.5 of 15 pairs.
    assert result.auc == pytest.approx(7.5 / 15)
    rates = {b.band: (b.observations, b.churned, b.churn_rate) for b in result.bands}
    assert rates == {"red": (3, 1, 1 / 3), "yellow": (2, 1, 1 / 2), "green": (3, 1, 1 / 3)}
    lift = {b.band: b.lift for b in result.bands}
    assert lift["yellow"] == pytest.approx((1 / 2) / (3 / 8))
    # A: red at 04-30, churn 05-15 -> 15 days. B: yellow 04-30 and 05-30, churn 06-20 -> 51.
    # C: green before churn -> not warned.
    assert result.churners == 3
    assert result.median_lead_days == 33
    assert result.flagged_churners == 1


def test_a_changed_scorecard_is_compared_on_the_same_snapshots(history: Engine) -> None:
    blind = SENTIMENT_ONLY.model_copy(update={"version": "blind"})
    current, changed = compare(
        history, [SENTIMENT_ONLY, blind], today=TODAY, months=2, horizon_days=30
    )
    assert current.snapshots == changed.snapshots
    assert (current.scorecard_version, changed.scorecard_version) == ("sentiment-only", "blind")
    assert current.auc == changed.auc
    console = Console(record=True, width=120)
    print_backtests(console, [current, changed])
    text = console.export_text()
    assert "scorecard blind" in text
    assert "sentiment-only: The score" in text


def test_data_after_the_snapshot_never_changes_its_score(history: Engine) -> None:
    """A churner's last weeks (a red call after the snapshot, its cancellation) must not
    reach the snapshot's score: B's score on 04-30 is its yellow of 04-25, whatever follows."""
    before = backtest(history, SENTIMENT_ONLY, today=TODAY, months=2, horizon_days=30)
    with Session(history) as session:
        b_id = 2
        sentiment(session, b_id, "red", _at(date(2026, 5, 1)))  # the day after the snapshot
        sentiment(session, b_id, "red", _at(date(2026, 6, 19)))
        session.commit()
    after = backtest(history, SENTIMENT_ONLY, today=TODAY, months=2, horizon_days=30)
    first = {b.band: b.observations for b in before.bands}
    later = {b.band: b.observations for b in after.bands}
    # only the 05-30 observation of B moves (yellow -> red); 04-30 stays yellow
    assert later == {"red": first["red"] + 1, "yellow": first["yellow"] - 1, "green": 3}
    assert after.auc is not None
    assert before.auc is not None


def test_an_empty_store_has_nothing_to_test(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    result = backtest(engine, load_scorecard(), today=TODAY)
    engine.dispose()
    assert result.observations == 0
    assert result.auc is None
    assert result.verdict().startswith("No scored customers")


# ---- the sandbox book ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, date]]:
    """The 300-account sandbox book, synced into SQLite through the real connectors."""
    today = datetime.now(UTC).date()
    book = generate_book(seed=7, accounts=300, today=today)
    folder = tmp_path_factory.mktemp("backtest")
    engine = make_engine(f"sqlite:///{folder / 'store.db'}")
    from store.db import open_store

    open_store(f"sqlite:///{folder / 'store.db'}").dispose()
    limits = Limits.unlimited()
    apps = {
        "hubspot": hubspot_app(book, limits=limits),
        "zendesk": zendesk_app(book, limits=limits),
        "stripe": stripe_app(book, limits=limits),
    }
    usage = write_usage_csv(book, Path(folder) / "usage.csv")
    with serve_apps(apps) as base:
        settings = _sandbox_settings(Settings(_env_file=None), base, usage)  # type: ignore[call-arg]  # pydantic-settings init kwarg
        sync_all(engine, settings)
    _seed_sentiment(engine, book)
    yield engine, today
    engine.dispose()


def test_the_default_scorecard_predicts_sandbox_churn(sandbox_store: tuple[Engine, date]) -> None:
    engine, today = sandbox_store
    result = backtest(engine, load_scorecard(), today=today)
    assert 25 <= result.churners <= 45  # 8-15% annual logo churn on 300 accounts
    assert result.auc is not None
    assert result.auc >= 0.80
    rates = {b.band: b.churn_rate or 0.0 for b in result.bands}
    assert rates["yellow"] > 5 * rates["green"]
