"""A year of a book's signals through `health-agent import`, scored by a scorecard that
declares a measure over each of them, on SQLite and PostgreSQL.

Accounts with extra columns (traits, with a change of contract during the year), a
long-form usage file with five feature metrics, NPS and CSAT surveys, subscriptions and an
invoices file, all dated over 12 months: `scorecard check` accepts the scorecard against
the store, `score` scores the book, `explain` says every declared measure in words, and
`score --as-of` a past date reads the traits and metrics known then.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from cli import app as cli_app
from store.models import HealthScore

TODAY = date.today()
FEATURES = ("reports", "dashboards", "exports", "alerts", "api")

SCORECARD = """
version = "signals-1"

[components.adoption]
weight = 0.5

[[components.adoption.measures]]
name = "modules"
weight = 0.5
signal = { kind = "breadth", prefix = "feature_", window_days = 30 }
normalise = { kind = "linear", good = 4, bad = 1 }

[[components.adoption.measures]]
name = "report_trend"
weight = 0.5
signal = { kind = "trend", metric = "feature_reports", window_days = 28 }
normalise = { kind = "linear", good = 1.0, bad = 0.5 }

[components.voice]
weight = 0.3

[[components.voice.measures]]
name = "nps"
weight = 0.5
signal = { kind = "survey", survey = "nps", stat = "nps", window_days = 365 }
normalise = { kind = "linear", good = 50, bad = -50 }

[[components.voice.measures]]
name = "csat_mean"
weight = 0.5
signal = { kind = "survey", survey = "csat", stat = "mean", scale = 10, window_days = 365 }
normalise = { kind = "linear", good = 9, bad = 6 }

[components.account]
weight = 0.2

[[components.account.measures]]
name = "contract"
weight = 0.4
signal = { kind = "trait", trait = "contract" }
normalise = { kind = "categories", scores = { monthly = 20, annual = 80 }, otherwise = 50 }

[[components.account.measures]]
name = "employees"
weight = 0.3
signal = { kind = "trait", trait = "employees" }
normalise = { kind = "linear", good = 500, bad = 10 }

[[components.account.measures]]
name = "tenure"
weight = 0.3
signal = { kind = "tenure" }
normalise = { kind = "linear", good = 730, bad = 30 }

[[components.account.measures]]
name = "failed_payments"
weight = 0.01
normalise = { kind = "thresholds", steps = [{ at_most = 0, score = 100 }], otherwise = 0 }
label = "{count} failed payment{s}"
"""


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _files(folder: Path) -> dict[str, Path]:
    year_ago = TODAY - timedelta(days=365)
    half_year = TODAY - timedelta(days=180)
    accounts = [
        ["A1", "Acme", "acme.test", "2024-01-15", year_ago, "annual", 400],
        ["A2", "Birch", "birch.test", "2025-06-01", year_ago, "annual", 40],
        ["A2", "Birch", "birch.test", "2025-06-01", half_year, "monthly", 40],
    ]
    usage: list[list[object]] = []
    for week in range(52):
        day = TODAY - timedelta(days=7 * (week + 1))
        for n, feature in enumerate(FEATURES):
            usage.append(["A1", day.isoformat(), f"feature_{feature}", 10 + n, "week"])
            if n < 2 and not (feature == "reports" and week < 4):
                usage.append(["A2", day.isoformat(), f"feature_{feature}", 6, "week"])
    surveys = [
        ["n1", "A1", "nps", 9, 10, TODAY - timedelta(days=40)],
        ["n2", "A2", "nps", 3, 10, TODAY - timedelta(days=40)],
        ["c1", "A1", "csat", 5, 5, TODAY - timedelta(days=20)],
        ["c2", "A2", "csat", 6, 10, TODAY - timedelta(days=20)],
    ]
    subscriptions = [
        ["s1", "A1", "active", 1000, "2024-01-15"],
        ["s2", "A2", "active", 300, "2025-06-01"],
    ]
    due = TODAY - timedelta(days=10)
    invoices = [
        ["i1", "A1", 1000, 1000, "paid", due, due],
        ["i2", "A2", 300, 0, "failed", due, ""],
    ]
    return {
        "accounts": _write(
            folder / "accounts.csv",
            ["id", "name", "domain", "created_at", "as_of", "contract", "employees"],
            accounts,
        ),
        "usage": _write(
            folder / "usage.csv", ["account_id", "date", "metric", "value", "period"], usage
        ),
        "surveys": _write(
            folder / "surveys.csv",
            ["id", "account_id", "kind", "score", "scale_max", "responded_at"],
            surveys,
        ),
        "subscriptions": _write(
            folder / "subscriptions.csv",
            ["id", "account_id", "status", "mrr", "started_at"],
            subscriptions,
        ),
        "invoices": _write(
            folder / "invoices.csv",
            ["id", "account_id", "amount_due", "amount_paid", "status", "due_at", "paid_at"],
            invoices,
        ),
    }


def test_a_year_of_signals_imported_checked_scored_and_explained(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    card = tmp_path / "signals.toml"
    card.write_text(SCORECARD, encoding="utf-8")
    env = {"DATABASE_URL": db_url, "SCORECARD_PATH": str(card), "COLUMNS": "200"}
    runner = CliRunner()
    for kind, path in _files(tmp_path).items():
        done = runner.invoke(cli_app, ["import", kind, str(path)], env=env)
        assert done.exit_code == 0, done.output
        assert "quarantined" not in done.output or " 0 quarantined" in done.output, done.output

    checked = runner.invoke(cli_app, ["scorecard", "check", str(card)], env=env)
    assert checked.exit_code == 0, checked.output
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(SCORECARD.replace('trait = "employees"', 'trait = "headcount"'))
    refused = runner.invoke(cli_app, ["scorecard", "check", str(wrong)], env=env)
    assert refused.exit_code == 1
    assert "unknown trait 'headcount'" in refused.output
    assert "contract, employees" in refused.output

    scored = runner.invoke(cli_app, ["score"], env=env)
    assert scored.exit_code == 0, scored.output
    explained = runner.invoke(cli_app, ["explain", "Birch"], env=env)
    assert explained.exit_code == 0, explained.output
    text = " ".join(explained.output.split())
    for sentence in (
        "2 of 5 features used in the last 30 days",
        "Feature reports down 100%",
        "NPS -100 (1 answer in the last 365 days)",
        "CSAT 6.0 of 10",
        "Contract: monthly",
        "Employees: 40",
        "1 failed payment",
    ):
        assert sentence in text, (sentence, explained.output)

    past = TODAY - timedelta(days=200)
    then = runner.invoke(cli_app, ["score", "--as-of", past.isoformat()], env=env)
    assert then.exit_code == 0, then.output
    with Session(engine) as session:
        rows = session.exec(select(HealthScore).where(col(HealthScore.as_of) == past)).all()
    by_version = {r.account_id: r for r in rows}
    assert len(by_version) == 2
    contracts = {
        r.components["account"]["measures"]["contract"]["value"] for r in by_version.values()
    }
    assert contracts == {"annual"}  # Birch went monthly only 180 days ago
    for row in by_version.values():
        reports = row.components["adoption"]["measures"]["report_trend"]
        assert reports["value"] == 1.0  # both used reports steadily then
        assert row.components["voice"]["score"] is None  # no survey answered yet


def test_traits_since_created_at_reach_back_to_the_start(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    card = tmp_path / "signals.toml"
    card.write_text(SCORECARD, encoding="utf-8")
    env = {"DATABASE_URL": db_url, "SCORECARD_PATH": str(card)}
    accounts = _write(
        tmp_path / "accounts.csv",
        ["id", "name", "created_at", "contract"],
        [["A1", "Acme", "2024-01-15", "annual"], ["A2", "Birch", "2025-06-01", "monthly"]],
    )
    runner = CliRunner()
    wrong = runner.invoke(
        cli_app, ["import", "accounts", str(accounts), "--traits-since", "signing"], env=env
    )
    assert wrong.exit_code == 1
    assert "choose import or created_at" in wrong.output
    assert "Traceback" not in wrong.output
    done = runner.invoke(
        cli_app, ["import", "accounts", str(accounts), "--traits-since", "created_at"], env=env
    )
    assert done.exit_code == 0, done.output
    past = date(2025, 9, 1)
    scored = runner.invoke(cli_app, ["score", "--as-of", past.isoformat()], env=env)
    assert scored.exit_code == 0, scored.output
    with Session(engine) as session:
        rows = session.exec(select(HealthScore).where(col(HealthScore.as_of) == past)).all()
    contracts = sorted(r.components["account"]["measures"]["contract"]["value"] for r in rows)
    assert contracts == ["annual", "monthly"]  # known since each account's start


def test_the_store_check_covers_sets_and_only_notes_what_the_default_leaves_out(
    db_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": db_url, "COLUMNS": "200"}
    runner = CliRunner()
    accounts = _write(tmp_path / "a.csv", ["id", "name", "plan"], [["A1", "Acme", "pro"]])
    assert runner.invoke(cli_app, ["import", "accounts", str(accounts)], env=env).exit_code == 0
    default = runner.invoke(cli_app, ["scorecard", "check"], env=env)
    assert default.exit_code == 0, default.output
    assert "note: default_scorecard.toml:" in default.output
    assert "unknown trait 'contract_type' in contract; the store holds: plan" in default.output
    card = tmp_path / "mine.toml"
    card.write_text(SCORECARD.replace('version = "signals-1"', 'version = "mine"'))
    sets = tmp_path / "set.toml"
    sets.write_text('[[scorecard]]\nfile = "mine.toml"\n')
    refused = runner.invoke(cli_app, ["scorecard", "check", str(sets)], env=env)
    assert refused.exit_code == 1
    assert f"{sets} (scorecard mine): components.account.measures[1]" in refused.output
    assert "unknown trait 'employees' in employees; the store holds: plan" in refused.output
