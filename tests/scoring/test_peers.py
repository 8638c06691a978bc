"""Percentile measures: an account ranked among the accounts it is compared with."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from scoring import explain, load_scorecard, score_accounts
from scoring.measures import Reading
from scoring.peers import rank_readings
from scoring.scorecard import PercentileNormalisation, ScorecardError
from store.db import session_scope
from tests.scoring import seed
from tests.scoring.seed import MECHANICS

DEFAULT = MECHANICS.read_text()
LINEAR = 'normalise = { kind = "linear", good = 0.8, bad = 0.2 }'


def test_a_rank_is_the_share_doing_worse_with_ties_counting_half() -> None:
    norm = PercentileNormalisation(kind="percentile", min_peers=2)
    peers = [1.0, 2.0, 3.0, 3.0, 5.0]
    assert norm.rank(3.0, peers) == 60.0  # 2 below, 2 equal: (2 + 1) / 5
    assert norm.rank(1.0, peers) == 10.0
    assert norm.rank(5.0, peers) == 90.0
    lower = PercentileNormalisation(kind="percentile", higher_is_better=False, min_peers=2)
    assert lower.rank(1.0, peers) == 90.0


def _card(tmp_path: Path, min_peers: int) -> Path:
    text = DEFAULT.replace(
        LINEAR, f'normalise = {{ kind = "percentile", min_peers = {min_peers} }}'
    )
    assert text != DEFAULT, "the seat utilisation measure moved: update the test"
    path = tmp_path / "card.toml"
    path.write_text(text)
    return path


def test_peers_are_the_segment_or_everyone_when_the_segment_is_small(tmp_path: Path) -> None:
    card = load_scorecard(_card(tmp_path, min_peers=3))
    values = {1: 0.9, 2: 0.5, 3: 0.1, 4: 0.7, 5: 0.3}
    readings = {"seat_utilisation": {a: Reading(v, {}) for a, v in values.items()}}
    segment_of = {1: "ent", 2: "ent", 3: "ent", 4: "smb", 5: None}
    ranked = rank_readings(readings, values, lambda _a: card, segment_of)["seat_utilisation"]
    assert ranked[1].details["percentile"] == pytest.approx(100 * 2.5 / 3, abs=0.05)
    assert (ranked[1].details["peers"], ranked[1].details["peer_group"]) == (3, "ent")
    assert ranked[4].details["peer_group"] == "all"  # one SMB account: compared with everyone
    assert ranked[4].details["percentile"] == 70.0
    assert readings["seat_utilisation"][1].details == {}  # the input is left as it was


def test_too_few_peers_leave_the_measure_without_data(tmp_path: Path) -> None:
    card = load_scorecard(_card(tmp_path, min_peers=10))
    readings = {"seat_utilisation": {1: Reading(0.5, {}), 2: Reading(0.6, {})}}
    ranked = rank_readings(readings, [1, 2], lambda _a: card, {})
    assert ranked["seat_utilisation"] == {}


def test_scoring_ranks_percentile_measures(engine: Engine, tmp_path: Path) -> None:
    card = load_scorecard(_card(tmp_path, min_peers=2))
    with session_scope(engine) as session:
        ids = [seed.account(session, f"A{n}", segment="Enterprise") for n in range(3)]
        for n, account_id in enumerate(ids):
            seed.subscription(session, account_id)
            for week in range(1, 13):
                seed.usage(session, account_id, seed.weeks_back(week), 4 + 6 * n)
    score_accounts(engine, seed.AS_OF, card)
    with Session(engine) as session:
        entries = [
            explain(session, a).latest.components["usage"]["measures"]["seat_utilisation"]  # type: ignore[union-attr]
            for a in ids
        ]
    assert [e["score"] for e in entries] == pytest.approx([100 / 6, 50.0, 500 / 6], abs=0.1)
    assert {e["details"]["peer_group"] for e in entries} == {"enterprise"}


def test_a_category_measure_cannot_be_a_percentile(tmp_path: Path) -> None:
    text = DEFAULT.replace(
        'normalise = { kind = "categories", scores = { green = 100, yellow = 50, red = 10 } }',
        'normalise = { kind = "percentile" }',
    )
    path = tmp_path / "card.toml"
    path.write_text(text)
    with pytest.raises(ScorecardError, match="csm_sentiment takes a categories normalisation"):
        load_scorecard(path)
