"""`backtest --fit`: the out-of-sample split, the fit on a seeded synthetic book (signal vs
noise), the proposed scorecard file, and the CLI end to end on both databases."""

from __future__ import annotations

import json
import tomllib
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import Engine
from typer.testing import CliRunner

from cli import app as cli_app
from scoring import load_scorecard
from scoring.backtest import collect
from scoring.fit import fit
from scoring.fit_report import fit_json, proposal_path, write_proposal
from scoring.fit_split import account_folds, forward_group_splits
from scoring.scorecard import Scorecard
from scoring.scorecard_toml import scorecard_toml
from tests.scoring.synthetic_book import TODAY, TWO_MEASURES, seed_book

HORIZON = 60


def _keys() -> tuple[list[tuple[int, date]], list[bool]]:
    days = [date(2026, 1, 1) + timedelta(days=30 * k) for k in range(8)]
    keys = [(account, day) for account in range(1, 31) for day in days]
    labels = [(account + day.month) % 5 == 0 for account, day in keys]
    return keys, labels


def test_no_account_is_on_both_sides_and_training_labels_were_known() -> None:
    keys, labels = _keys()
    splits = forward_group_splits(keys, labels, HORIZON, groups=5, min_training=10)
    assert splits
    judged_once: list[int] = []
    for split in splits:
        trained = {keys[i][0] for i in split.train}
        judged = {keys[i][0] for i in split.judged}
        assert not trained & judged
        assert all(keys[i][1] == split.judged_day for i in split.judged)
        assert all(keys[i][1] + timedelta(days=HORIZON) <= split.judged_day for i in split.train)
        judged_once += split.judged
    assert len(judged_once) == len(set(judged_once))
    # the first snapshots have no labelled past: never judged
    first = min(day for _, day in keys)
    assert all(keys[i][1] > first + timedelta(days=HORIZON - 1) for i in judged_once)


def test_accounts_are_dealt_into_folds_once() -> None:
    keys, _ = _keys()
    folds = account_folds([a for a, _ in keys], 5)
    assert set(folds.values()) == set(range(5))
    assert set(folds) == set(range(1, 31))


def test_a_split_needs_both_classes_in_training() -> None:
    keys, _ = _keys()
    assert forward_group_splits(keys, [False] * len(keys), HORIZON, min_training=1) == []


def test_the_fit_weights_the_signal_above_the_noise(engine: Engine, tmp_path: Path) -> None:
    seed_book(engine)
    run = collect(engine, [TWO_MEASURES], today=TODAY, months=12, horizon_days=HORIZON)
    result = fit(run)
    report = result.report
    shares = {m.name: m.new_share for m in report.measures}
    assert shares["csm_sentiment"] > shares["csat"]
    assert shares["csm_sentiment"] > 0.5
    judged = report.judged
    assert judged.observations > 0
    assert judged.current.auc is not None
    assert judged.fitted.auc is not None
    assert judged.fitted.auc > 0.7
    assert judged.observations < report.observations  # the earliest snapshots are never judged
    assert len(result.judged_fitted) == judged.observations
    green, yellow = report.proposed_thresholds
    assert 0 <= yellow < green <= 100
    path = write_proposal(result, tmp_path / "two.proposed.toml")
    card = load_scorecard(path)
    assert card.version == report.proposed_version
    assert {m.name for m in card.measures()} == {"csm_sentiment", "csat"}
    text = path.read_text()
    assert "coefficient" in text
    assert "Out of sample" in text
    assert f"fitted on {TODAY}" in text
    payload = json.loads(json.dumps(fit_json(result), default=str))
    assert payload["judged"]["fitted"]["auc"] == judged.fitted.auc
    assert {m["name"] for m in payload["measures"]} == {"csm_sentiment", "csat"}


def test_the_scorecard_writer_round_trips_the_default() -> None:
    card = load_scorecard()
    text = scorecard_toml(card, {"": "a comment", "measure.csat": "about csat"})
    assert text.startswith("# a comment\n")
    assert '# about csat\n[[components.voice.measures]]\nname = "csat"' in text
    assert Scorecard.model_validate(tomllib.loads(text)) == card


def test_the_proposal_sits_beside_the_live_scorecard() -> None:
    assert proposal_path(Path("/etc/ha/card.toml")) == Path("/etc/ha/card.proposed.toml")
    assert proposal_path(None) == Path("scorecard.proposed.toml")


def test_the_cli_fits_and_writes_a_proposal(db_url: str, engine: Engine, tmp_path: Path) -> None:
    seed_book(engine)
    live = tmp_path / "live.toml"
    live.write_text(scorecard_toml(TWO_MEASURES), encoding="utf-8")
    before = live.read_text()
    out, charts = tmp_path / "proposed.toml", tmp_path / "charts"
    env = {"DATABASE_URL": db_url, "SCORECARD_PATH": str(live)}
    args = ["backtest", "--horizon-days", str(HORIZON), "--fit", "--out", str(out)]
    args += ["--charts", str(charts)]
    runner = CliRunner()
    shown = runner.invoke(cli_app, args, env=env)
    assert shown.exit_code == 0, shown.output
    assert "ROC AUC, out of sample" in shown.output
    assert "Proposed scorecard written to" in shown.output
    assert load_scorecard(out).version.startswith("two-measures-fit-")
    assert live.read_text() == before
    assert sorted(p.name for p in charts.iterdir()) == [
        "calibration-fitted.png",
        "calibration-two-measures.png",
        "roc-fit.png",
        "roc.png",
    ]
    quick = ["backtest", "--horizon-days", str(HORIZON), "--charts", str(charts), "--json"]
    as_json = runner.invoke(cli_app, quick, env=env)
    assert as_json.exit_code == 0, as_json.output
    payload = json.loads(as_json.stdout)
    backtest = payload["backtests"][0]
    for key in ("auc", "red", "flagged", "riskiest", "measures", "verdict"):
        assert key in backtest
    assert "fit" not in payload
    refused = runner.invoke(cli_app, [*args[:-3], str(live)], env=env)
    assert refused.exit_code == 1
