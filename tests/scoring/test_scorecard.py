"""The scorecard file: the default loads, normalisations score, and mistakes are named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from scoring.scorecard import (
    CategoryNormalisation,
    LinearNormalisation,
    ScorecardError,
    ThresholdNormalisation,
    load_scorecard,
)
from tests.scoring.seed import MECHANICS

DEFAULT = MECHANICS.read_text()


def test_default_scorecard_loads() -> None:
    card = load_scorecard()
    assert card.version
    assert (card.bands.green, card.bands.yellow) == (75, 50)
    assert set(card.components) == {
        "adoption",
        "usage",
        "support",
        "voice",
        "billing",
        "lifecycle",
        "sentiment",
    }
    declared = [m.name for m in card.measures() if m.signal is not None]
    assert declared == [
        "feature_breadth",
        "login_trend",
        "login_recency",
        "nps",
        "tenure",
        "contract",
    ]
    assert len(card.measure_names()) == 15
    assert card.bands.band(75) == "green"
    assert card.bands.band(74.9) == "yellow"
    assert card.bands.band(49.9) == "red"


def test_linear_in_both_directions_and_clamped() -> None:
    higher_better = LinearNormalisation(kind="linear", good=0.8, bad=0.2)
    lower_better = LinearNormalisation(kind="linear", good=1.0, bad=3.0)
    assert higher_better.score(0.5) == pytest.approx(50)
    assert higher_better.score(1.5) == 100
    assert higher_better.score(0.0) == 0
    assert lower_better.score(2.0) == pytest.approx(50)
    assert lower_better.score(0.2) == 100
    assert lower_better.score(9) == 0


def test_thresholds_and_categories() -> None:
    at_most = ThresholdNormalisation.model_validate(
        {
            "kind": "thresholds",
            "steps": [{"at_most": 0, "score": 100}, {"at_most": 2, "score": 40}],
            "otherwise": 0,
        }
    )
    assert [at_most.score(v) for v in (0, 1, 2, 3)] == [100, 40, 40, 0]
    at_least = ThresholdNormalisation.model_validate(
        {
            "kind": "thresholds",
            "steps": [{"at_least": 90, "score": 100}, {"at_least": 60, "score": 50}],
            "otherwise": 10,
        }
    )
    assert [at_least.score(v) for v in (95, 60, 59)] == [100, 50, 10]
    categories = CategoryNormalisation(kind="categories", scores={"green": 100, "red": 10})
    assert categories.score("red") == 10


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    assert old in DEFAULT
    path = tmp_path / "card.toml"
    path.write_text(DEFAULT.replace(old, new, 1))
    return path


MEASURE = "[[components.support.measures]]"


@pytest.mark.parametrize(
    ("old", "new", "expected", "on_line"),
    [
        ("weight = 0.35", "weight = -1", "components.support.measures[0].weight", "weight = -1"),
        ('name = "ticket_volume"', 'name = "tickets"', "unknown measure 'tickets'", MEASURE),
        ("({recent} vs", "({recnet} vs", "does not fit ticket_volume", MEASURE),
        ("green = 70", "green = 30", "bands: yellow must be below green", "[bands]"),
        (
            "good = 1.0, bad = 3.0",
            "good = 1.0, bad = 1.0",
            "good and bad must differ",
            'normalise = { kind = "linear", good = 1.0, bad = 1.0 }',
        ),
        (
            "unpaid = 5, ",
            "",
            "categories normalisation lacks unpaid",
            "[[components.billing.measures]]",
        ),
        (
            "{ at_most = 1, score = 50 },",
            "{ at_most = 5, score = 50 },",
            "ascending order",
            'normalise = { kind = "thresholds", steps = [',
        ),
        (
            'version = "2026.1"',
            'version = "2026.1"\ncolour = "blue"',
            "colour: Extra inputs",
            'colour = "blue"',
        ),
    ],
)
def test_invalid_scorecards_name_file_line_and_field(
    tmp_path: Path, old: str, new: str, expected: str, on_line: str
) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(ScorecardError) as info:
        load_scorecard(path)
    message = str(info.value)
    located = re.match(rf"{re.escape(str(path))}:(\d+): ", message)
    assert located is not None, message
    assert path.read_text().splitlines()[int(located.group(1)) - 1] == on_line
    assert expected in message
    assert "\n" not in message
    assert info.value.__cause__ is None


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ScorecardError, match="cannot read the scorecard"):
        load_scorecard(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("version = \n")
    with pytest.raises(ScorecardError, match=r"bad\.toml: not valid TOML"):
        load_scorecard(bad)


def test_scorecard_check_lists_every_problem_with_its_line(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["scorecard", "check"], env={"COLUMNS": "160"})
    assert ok.exit_code == 0, ok.output
    assert "Scorecard 2026.2 (the default): valid" in ok.output
    assert "4 cap rules" in ok.output

    broken = tmp_path / "card.toml"
    broken.write_text(
        DEFAULT.replace("weight = 0.35", "weight = -1").replace("green = 70", "green = 30")
    )
    bad = runner.invoke(app, ["scorecard", "check", str(broken)])
    assert bad.exit_code == 1
    problems = bad.stderr.splitlines()
    assert len(problems) == 4
    lines = broken.read_text().splitlines()
    bands, weight = lines.index("[bands]") + 1, lines.index("weight = -1") + 1
    assert problems[0] == f"{broken}:{bands}: bands: yellow must be below green"
    assert problems[1].startswith(f"{broken}:{weight}: components.support.measures[0].weight: ")
