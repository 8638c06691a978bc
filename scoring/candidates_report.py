"""`health-agent backtest --candidates`: rank every signal in the store against churn.

Scores the book's snapshots with the live scorecard (for the preset measures) and with the
candidate scorecard of `scoring.candidates` (every other signal), in one pass over the
snapshots, then prints the ranking: each signal's AUC, which way it points, how many
observations it covers, and the declaration to paste into a scorecard.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlmodel import Session

from scoring.backtest import Progress, collect
from scoring.candidates import CandidateRank, candidate_scorecard, candidates, rank_candidates
from scoring.scorecard import Scorecard

__all__ = ["SHOWN", "candidates_json", "print_candidates", "run_candidates"]

SHOWN = 30
"""Candidates printed at most (all of them go to `--json`)."""


def run_candidates(
    engine: Engine,
    live: Scorecard,
    *,
    today: date,
    months: int,
    horizon_days: int,
    weekly: bool,
    progress: Progress | None = None,
) -> list[CandidateRank]:
    """Every signal in the store ranked by its own separation of churners."""
    with Session(engine) as session:
        found = candidates(session)
    run = collect(
        engine,
        [live, candidate_scorecard(found)],
        today=today,
        months=months,
        horizon_days=horizon_days,
        weekly=weekly,
        progress=progress,
    )
    return rank_candidates(found, run.observations(1), run.observations(0))


def _strength(value: float | None) -> str:
    if value is None:
        return "-"
    return (
        "strong"
        if value >= 0.75
        else "useful"
        if value >= 0.65
        else "weak"
        if value >= 0.55
        else "none"
    )


def print_candidates(console: Console, ranks: Sequence[CandidateRank], shown: int = SHOWN) -> None:
    """The ranking as a table, strongest first, and how to use it."""
    table = Table(
        title="Which signals separate churners in this book (each alone)",
        title_justify="left",
        header_style="bold",
    )
    for column, justify in (
        ("#", "right"),
        ("Signal", "left"),
        ("AUC", "right"),
        ("", "left"),
        ("Direction", "left"),
        ("Coverage", "right"),
        ("Churned obs.", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]  # literal above
    for index, rank in enumerate(ranks[:shown], start=1):
        table.add_row(
            str(index),
            rank.candidate.name,
            "-" if rank.auc is None else f"{rank.auc:.3f}",
            _strength(rank.auc),
            rank.direction,
            f"{rank.coverage:.0%}",
            str(rank.churned),
        )
    console.print(table)
    if len(ranks) > shown:
        console.print(f"... and {len(ranks) - shown} more (all of them with --json).")
    console.print(
        "AUC 0.5 is chance, 1.0 a perfect separation. A word trait's AUC is measured on the "
        "churn rates it was learnt from: a lead for --fit, not a result. Declare a signal "
        "in a scorecard with the TOML that --json gives for it.",
        highlight=False,
    )


def candidates_json(ranks: Sequence[CandidateRank]) -> list[dict[str, Any]]:
    """The ranking as plain data, with each candidate's declaration."""
    return [
        {
            "name": rank.candidate.name,
            "auc": None if rank.auc is None else round(rank.auc, 4),
            "direction": rank.direction,
            "observations": rank.observations,
            "coverage": round(rank.coverage, 4),
            "churned": rank.churned,
            "signal": rank.candidate.signal,
            "toml": rank.candidate.toml(),
        }
        for rank in ranks
    ]
