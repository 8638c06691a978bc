"""A seeded synthetic book for backtest and fit tests: one measure carries the signal, one
is noise.

80 customers for the last 18 months, dated back from today (the CLI backtests as of
today). A quarter churn, on days spread over the year before
`TODAY`; a churner's CSM marks it red in the two months before it leaves (green before),
a staying account is mostly green (some yellow, a few false-alarm reds). Every account
answers a monthly satisfaction survey at random, whatever it is about to do: CSAT is noise.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from scoring import Scorecard
from tests.scoring.seed import account, sentiment, subscription, survey

TODAY = date.today()
START = datetime.combine(TODAY - timedelta(days=540), datetime.min.time(), UTC)

TWO_MEASURES = Scorecard.model_validate(
    {
        "version": "two-measures",
        "components": {
            "sentiment": {
                "weight": 0.5,
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
            },
            "support": {
                "weight": 0.5,
                "measures": [
                    {
                        "name": "csat",
                        "weight": 1.0,
                        "label": "CSAT {value:.0f}%",
                        "normalise": {"kind": "linear", "good": 90, "bad": 50},
                    }
                ],
            },
        },
    }
)


def _at(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)


def seed_book(engine: Engine, *, accounts: int = 80, seed: int = 5) -> None:
    """Write the book into `engine`'s store."""
    rng = random.Random(seed)
    with Session(engine) as session:
        for n in range(accounts):
            account_id = account(session, f"Synthetic {n}")
            churn: date | None = None
            if n % 4 == 0:
                churn = TODAY - timedelta(days=20 + (n * 97) % 330)
            subscription(
                session,
                account_id,
                "canceled" if churn else "active",
                started_at=START,
                ended_at=_at(churn) if churn else None,
                canceled_at=_at(churn) if churn else None,
            )
            day = TODAY - timedelta(days=385 - n % 7)
            while day <= TODAY and (churn is None or day < churn):
                if churn is not None and (churn - day).days <= 60:
                    mark = "red"
                else:
                    roll = rng.random()
                    mark = "red" if roll < 0.03 else "yellow" if roll < 0.15 else "green"
                sentiment(session, account_id, mark, _at(day))
                survey(session, account_id, _at(day + timedelta(days=3)), int(rng.random() < 0.7))
                day += timedelta(days=30)
        session.commit()
