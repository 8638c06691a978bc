"""The scorecard file: the default loads, normalisations score, and mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring.scorecard import (
    CategoryNormalisation,
    LinearNormalisation,
    ScorecardError,
    ThresholdNormalisation,
    load_scorecard,
)

DEFAULT = (Path(__file__).parents[2] / "scoring" / "default_scorecard.toml").read_text()


def test_default_scorecard_loads() -> None:
    card = load_scorecard()
    assert card.version
    assert (card.bands.green, card.bands.yellow) == (70, 40)
    assert set(card.components) == {"support", "billing", "usage", "sentiment"}
    assert len(card.measure_names()) == 9
    assert card.bands.band(70) == "green"
    assert card.bands.band(69.9) == "yellow"
    assert card.bands.band(39.9) == "red"


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


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("weight = 0.35", "weight = -1", "components.support.measures[0].weight"),
        ('name = "ticket_volume"', 'name = "tickets"', "unknown measure 'tickets'"),
        ("({recent} vs", "({recnet} vs", "does not fit ticket_volume"),
        ("green = 70", "green = 30", "bands: yellow must be below green"),
        ("good = 1.0, bad = 3.0", "good = 1.0, bad = 1.0", "good and bad must differ"),
        ("unpaid = 5, ", "", "categories normalisation lacks unpaid"),
        ("{ at_most = 1, score = 50 },", "{ at_most = 5, score = 50 },", "ascending order"),
        ('version = "2026.1"', 'version = "2026.1"\ncolour = "blue"', "colour: Extra inputs"),
    ],
)
def test_invalid_scorecards_name_file_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(ScorecardError) as info:
        load_scorecard(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
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
