"""The backtest's new figures: precision and recall, the riskiest tenth, each measure's AUC,
the verdict of a book with no red or yellow, and the charts, on hand-made sets and a store.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import Engine

from scoring import backtest_command
from scoring.backtest import backtest
from scoring.backtest_charts import Curve, calibration_figure, roc_figure, write_png
from scoring.backtest_command import snapshot_progress
from scoring.backtest_figures import (
    BandOutcome,
    auc,
    band_outcomes,
    flagging,
    riskiest_share,
    roc_points,
    signal_aucs,
)
from scoring.backtest_report import print_backtests
from scoring.backtest_result import Backtest
from tests.scoring.synthetic_book import TODAY, TWO_MEASURES, seed_book

PNG = b"\x89PNG\r\n\x1a\n"
LABELLED = [
    ("red", True),
    ("red", False),
    ("yellow", True),
    ("yellow", False),
    ("green", True),
    ("green", False),
    ("green", False),
    ("green", False),
]


def test_precision_and_recall_by_hand() -> None:
    red = flagging(LABELLED, ("red",))
    # 2 red, 1 churned; 3 churned in all
    assert (red.flagged, red.churned_flagged) == (2, 1)
    assert red.precision == pytest.approx(1 / 2)
    assert red.recall == pytest.approx(1 / 3)
    flagged = flagging(LABELLED, ("red", "yellow"))
    assert (flagged.flagged, flagged.churned_flagged) == (4, 2)
    assert flagged.precision == pytest.approx(2 / 4)
    assert flagged.recall == pytest.approx(2 / 3)
    nobody = flagging([("green", True), ("green", False)], ("red",))
    assert (nobody.precision, nobody.recall) == (None, 0.0)


def test_band_outcomes_and_their_lift() -> None:
    bands = {b.band: b for b in band_outcomes(LABELLED)}
    assert bands["green"].churn_rate == pytest.approx(1 / 4)
    assert bands["red"].lift == pytest.approx((1 / 2) / (3 / 8))


def test_riskiest_tenth_and_its_lift() -> None:
    scores = [float(s) for s in range(10, 210, 10)]  # 20 observations, 10 to 200
    churned = [s in (10.0, 30.0, 150.0) for s in scores]
    top = riskiest_share(scores, churned)
    # the 2 lowest (10, 20): one churned; overall 3 of 20
    assert (top.observations, top.churned) == (2, 1)
    assert top.churn_rate == pytest.approx(0.5)
    assert top.lift == pytest.approx(0.5 / (3 / 20))


def test_ties_at_the_cut_share_the_places() -> None:
    scores = [10.0, 20.0, 20.0, 20.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0]
    churned = [False, True, False, False, False, False, False, False, False, True]
    top = riskiest_share(scores, churned, share=0.2)
    # 2 places: 10 takes one; three tied at 20 (one churned) share the other: 1/3 churned
    assert top.observations == 2
    assert top.churned == pytest.approx(1 / 3)
    reordered = riskiest_share(list(reversed(scores)), list(reversed(churned)), share=0.2)
    assert reordered == top


def test_each_signal_has_its_own_auc_over_its_coverage() -> None:
    churned = [True, False, True, False]
    found = signal_aucs(
        {"sharp": [10.0, 90.0, 20.0, 80.0], "sparse": [None, 90.0, 10.0, None]}, churned
    )
    sharp, sparse = found
    assert (sharp.name, sharp.auc, sharp.coverage, sharp.churned) == ("sharp", 1.0, 1.0, 2)
    assert (sparse.observations, sparse.coverage, sparse.auc) == (2, 0.5, 1.0)
    assert signal_aucs({"none": [None, None]}, [True, False])[0].auc is None


def test_roc_points_run_from_origin_to_the_corner() -> None:
    xs, ys = roc_points([10.0, 20.0, 30.0, 40.0], [True, False, True, False])
    assert (xs[0], ys[0], xs[-1], ys[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert ys[1] == 0.5  # the lowest score, a churner, is flagged first
    assert auc([10.0, 20.0, 30.0, 40.0], [True, False, True, False]) == 0.75


def _all_green(**changes: object) -> Backtest:
    fields: dict[str, object] = {
        "scorecard_version": "x",
        "today": TODAY,
        "horizon_days": 90,
        "min_lead_days": 30,
        "snapshots": (TODAY,),
        "labelled_snapshots": 1,
        "observations": 10,
        "accounts": 10,
        "churned_observations": 2,
        "churners": 2,
        "auc": 0.75,
        "bands": (
            BandOutcome("red", 0, 0, None, None),
            BandOutcome("yellow", 0, 0, None, None),
            BandOutcome("green", 10, 2, 0.2, 1.0),
        ),
        "flagged_churners": 0,
        "median_lead_days": None,
        "thresholds": (70.0, 40.0),
    }
    fields.update(changes)
    return Backtest(**fields)  # type: ignore[arg-type]  # test data, checked by the dataclass


def test_a_book_with_no_red_or_yellow_says_the_thresholds_are_too_low() -> None:
    verdict = _all_green().verdict()
    assert "no observation was red or yellow" in verdict
    assert "every score was at least 40" in verdict
    assert "thresholds are too low for this book" in verdict
    assert "--fit" in verdict


def test_charts_are_png_files(tmp_path: Path) -> None:
    curve = Curve("scorecard t", [5.0, 15.0, 55.0, 95.0, 99.0], [True, True, False, False, True])
    other = Curve("fitted", [15.0, 5.0, 55.0, 95.0, 99.0], [True, True, False, False, True])
    paths = [
        write_png(calibration_figure(curve, horizon_days=90), tmp_path / "c" / "cal.png"),
        write_png(roc_figure([curve, other], title="ROC"), tmp_path / "roc.png"),
    ]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG)
        assert len(data) > 5_000


def test_per_measure_aucs_from_a_store(engine: Engine) -> None:
    seed_book(engine)
    result = backtest(engine, TWO_MEASURES, today=TODAY, months=12, horizon_days=60)
    measures = {m.name: m for m in result.measures}
    assert set(measures) == {"csm_sentiment", "csat"}
    signal, noise = measures["csm_sentiment"], measures["csat"]
    assert signal.auc is not None
    assert noise.auc is not None
    assert signal.auc > 0.8
    assert abs(noise.auc - 0.5) < 0.15
    assert 0 < noise.coverage <= 1
    assert result.red is not None
    assert result.flagged is not None
    assert result.riskiest is not None
    assert result.riskiest.lift is not None
    assert result.riskiest.lift > 1.5
    console = Console(record=True, width=160)
    print_backtests(console, [result])
    text = console.export_text()
    assert "Red: precision / recall" in text
    assert "Riskiest 10% of scores" in text
    assert "csm_sentiment" in text


def test_progress_off_a_terminal_is_plain_lines_once_it_takes_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console = Console(record=True, width=100)
    with snapshot_progress(console) as quick:
        quick(1, 3)  # well under the threshold: nothing printed
    assert console.export_text() == ""
    monkeypatch.setattr(backtest_command, "PLAIN_AFTER_SECONDS", 0.0)
    with snapshot_progress(console) as slow:
        slow(2, 3)
    assert console.export_text() == "scored snapshot 2 of 3\n"
