"""`backtest --candidates`: every signal in the store ranked by its own AUC, on a seeded book
where logins and the contract type carry the churn and another metric is noise."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from typer.testing import CliRunner

from cli import app as cli_app
from scoring.candidates_report import candidates_json, run_candidates
from scoring.scorecard import load_scorecard
from store import session_scope
from store.models import Account, Subscription, UsageMetric
from store.traits import TraitValue, write_traits

TODAY = date(2026, 6, 1)


def _at(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def _book(engine: Engine, today: date = TODAY) -> None:
    r = random.Random(4)
    start = today - timedelta(days=400)
    with session_scope(engine) as s:
        traits: dict[int, dict[str, TraitValue]] = {}
        for n in range(60):
            churns = n % 3 == 0
            end = today - timedelta(days=30 + 4 * n) if churns else None
            account = Account(source="crm", external_id=f"a{n}", name=f"A{n}")
            s.add(account)
            s.flush()
            assert account.id is not None
            s.add(
                Subscription(
                    source="billing",
                    external_id=f"s{n}",
                    account_id=account.id,
                    status="canceled" if churns else "active",
                    started_at=_at(start),
                    canceled_at=_at(end) if end else None,
                    ended_at=_at(end) if end else None,
                    mrr_minor=10_000,
                )
            )
            last = end or today
            week = start
            while week + timedelta(days=7) <= last:
                fading = churns and (last - week).days < 120
                rows = {
                    "logins": (5 if fading else 40) + r.randint(0, 10),
                    "help_articles_read": r.randint(0, 20),
                }
                for metric, value in rows.items():
                    s.add(
                        UsageMetric(
                            source="product",
                            external_id=f"{n}:{week}:{metric}",
                            account_id=account.id,
                            day=week,
                            period_days=7,
                            metric=metric,
                            value=value,
                            recorded_at=_at(week + timedelta(days=7)),
                        )
                    )
                week += timedelta(days=7)
            contract = "monthly" if churns or n % 5 == 1 else "annual"
            traits[account.id] = {"contract_type": TraitValue.parse("category", contract)}
        write_traits(s, "crm", traits, _at(start))


def test_candidates_rank_the_signals_that_carry_churn_first(engine: Engine) -> None:
    _book(engine)
    ranks = run_candidates(
        engine, load_scorecard(), today=TODAY, months=8, horizon_days=90, weekly=False
    )
    by_name = {r.candidate.name: r for r in ranks}
    logins = by_name["logins sum 30d"]
    assert logins.auc is not None
    assert logins.auc > 0.9
    assert logins.direction == "lower is riskier"
    recency_of_noise = by_name["help_articles_read sum 30d"]
    assert recency_of_noise.auc is not None
    assert recency_of_noise.auc < logins.auc
    contract = by_name["trait contract_type"]
    assert contract.direction == "riskiest: monthly"
    assert contract.auc is not None
    assert contract.auc > 0.7
    assert ranks.index(logins) < ranks.index(recency_of_noise)
    payload = candidates_json(ranks)
    first = payload[0]
    assert set(first) >= {"name", "auc", "direction", "coverage", "toml"}
    snippet = next(p["toml"] for p in payload if p["name"] == "logins sum 30d")
    assert snippet == (
        'name = "logins sum 30d"\nsignal = { kind = "metric", metric = "logins", agg = "sum" }'
    )


def test_the_cli_ranks_candidates(db_url: str, engine: Engine, tmp_path: Path) -> None:
    _book(engine, date.today())
    env = {"DATABASE_URL": db_url}
    args = ["backtest", "--months", "8", "--candidates", "--charts", str(tmp_path), "--json"]
    shown = CliRunner().invoke(cli_app, args, env=env)
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.stdout)
    names = [c["name"] for c in payload["candidates"]]
    assert names.index("logins sum 30d") < names.index("help_articles_read sum 30d")
    table = CliRunner().invoke(cli_app, args[:-1], env=env)
    assert table.exit_code == 0, table.output
    assert "Which signals separate churners in this book" in table.output
