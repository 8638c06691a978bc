"""Scorecard sets: the first scorecard whose `when` fits an account scores it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session
from typer.testing import CliRunner

from cli import app
from scoring import score_accounts
from scoring.scorecard import ScorecardError
from scoring.selection import AccountTraits, Fit, ScorecardSet, load_scorecards
from store.db import session_scope
from store.models import HealthScore
from tests.scoring import seed
from tests.scoring.seed import MECHANICS

DEFAULT = MECHANICS.read_text()
AS_OF = date(2026, 3, 2)


def _traits(
    segment: str | None = None, stage: str | None = None, age: int | None = None
) -> AccountTraits:
    created = None
    if age is not None:
        day = date.fromordinal(AS_OF.toordinal() - age)
        created = datetime.combine(day, datetime.min.time(), UTC)
    return AccountTraits(segment=segment, lifecycle_stage=stage, created_at=created)


def test_a_fit_tests_segment_stage_and_age() -> None:
    young = Fit(age_days_at_most=90)
    assert young.holds(_traits(age=90), AS_OF)
    assert not young.holds(_traits(age=91), AS_OF)
    assert not young.holds(_traits(), AS_OF)  # unknown age is neither young nor old
    enterprise = Fit(segment=["Enterprise"], lifecycle_stage=["customer"])
    assert enterprise.holds(_traits(" enterprise ", "Customer"), AS_OF)
    assert not enterprise.holds(_traits("Enterprise", "lead"), AS_OF)
    assert not enterprise.holds(_traits(None, "customer"), AS_OF)
    assert Fit(age_days_over=365).holds(_traits(age=400), AS_OF)


def _write_set(tmp_path: Path, body: str) -> Path:
    for version in ("onboarding", "enterprise"):
        card = DEFAULT.replace('version = "2026.1"', f'version = "{version}"')
        (tmp_path / f"{version}.toml").write_text(card)
    path = tmp_path / "scorecards.toml"
    path.write_text(body)
    return path


SET = """
[[scorecard]]
file = "onboarding.toml"
when = { age_days_at_most = 90 }

[[scorecard]]
file = "enterprise.toml"
when = { segment = ["Enterprise"] }

[[scorecard]]
file = "default"
"""


def test_the_first_fitting_scorecard_wins_and_the_last_catches_the_rest(tmp_path: Path) -> None:
    cards = load_scorecards(_write_set(tmp_path, SET))
    assert [c.version for c in cards.scorecards] == ["onboarding", "enterprise", "2026.2"]
    assert cards.choose(_traits("Enterprise", age=30), AS_OF).version == "onboarding"
    assert cards.choose(_traits("Enterprise", age=300), AS_OF).version == "enterprise"
    assert cards.choose(_traits("SMB", age=300), AS_OF).version == "2026.2"
    every = {n for card in cards.scorecards for n in card.measure_names()}
    assert set(cards.measure_names()) == every


def test_a_single_scorecard_is_a_set_of_one(tmp_path: Path) -> None:
    path = tmp_path / "card.toml"
    path.write_text(DEFAULT)
    cards = load_scorecards(path)
    assert isinstance(cards, ScorecardSet)
    assert [c.version for c in cards.scorecards] == ["2026.1"]
    assert [c.version for c in load_scorecards(None).scorecards] == ["2026.2"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            SET.replace('file = "default"', 'file = "default"\nwhen = { segment = ["x"] }'),
            "the last [[scorecard]] needs no `when`",
        ),
        ('[[scorecard]]\nfile = "default"\n\n' + SET, "scorecard[0] has no `when` but is not last"),
        (SET.replace("age_days_at_most", "age_in_days"), "scorecard.0.when.age_in_days"),
        (SET.replace('"enterprise.toml"', '"onboarding.toml"'), "distinct versions"),
        (SET.replace('"enterprise.toml"', '"missing.toml"'), "cannot read the scorecard"),
    ],
)
def test_a_broken_set_names_the_problem(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ScorecardError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_scorecards(_write_set(tmp_path, body))


def test_each_account_is_scored_by_the_scorecard_that_fits_it(
    engine: Engine, tmp_path: Path
) -> None:
    cards = load_scorecards(_write_set(tmp_path, SET))
    with session_scope(engine) as session:
        young = seed.account(session, "Young", created_at=seed.ago(30), segment="Enterprise")
        big = seed.account(session, "Big", created_at=seed.ago(400), segment="Enterprise")
        small = seed.account(session, "Small", created_at=seed.ago(400), segment="SMB")
        for account_id in (young, big, small):
            seed.subscription(session, account_id)
    summary = score_accounts(engine, seed.AS_OF, cards)
    assert summary.scored == 3
    assert summary.scorecard_version == "onboarding, enterprise, 2026.2"
    with Session(engine) as session:
        versions = dict(
            session.execute(select(HealthScore.account_id, HealthScore.scorecard_version)).all()
        )
    assert versions == {young: "onboarding", big: "enterprise", small: "2026.2"}


def test_scorecard_check_shows_a_set(tmp_path: Path) -> None:
    path = _write_set(tmp_path, SET)
    shown = CliRunner().invoke(app, ["scorecard", "check", str(path)], env={"COLUMNS": "160"})
    assert shown.exit_code == 0, shown.output
    assert "The first scorecard that fits an account scores it." in shown.output
    assert "age_days_at_most 90" in shown.output
    assert "everyone else" in shown.output
    broken = _write_set(tmp_path, SET.replace('"enterprise.toml"', '"missing.toml"'))
    refused = CliRunner().invoke(app, ["scorecard", "check", str(broken)])
    assert refused.exit_code == 1
    assert "cannot read the scorecard" in refused.stderr
