"""`health-agent backtest`, step by step: score the snapshots (with progress), print the
figures, draw the charts, with `--fit` fit, judge and write a proposed scorecard, and with
`--candidates` rank every signal in the store against churn.

The CLI hands over its options; this module decides the order and what is printed. With
`quiet` (the CLI's `--json`) nothing but progress goes to the terminal and the caller gets
every figure back as plain data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from scoring.backtest import BacktestRun, collect, summarise
from scoring.backtest import Progress as OnSnapshot
from scoring.backtest_report import backtest_json, print_backtests
from scoring.backtest_result import FITTED_MARK
from scoring.scorecard import load_scorecard

__all__ = ["PLAIN_AFTER_SECONDS", "BacktestOptions", "run_backtest", "snapshot_progress"]

PLAIN_AFTER_SECONDS = 2.0
"""Off a terminal, progress lines start once scoring has taken this long."""


@dataclass(frozen=True)
class BacktestOptions:
    """The `backtest` command's options."""

    months: int = 12
    horizon_days: int = 90
    weekly: bool = False
    compare_with: Path | None = None
    fit: bool = False
    out: Path | None = None
    charts: Path | None = Path("backtest-charts")
    candidates: bool = False
    quiet: bool = False


@contextmanager
def snapshot_progress(console: Console) -> Iterator[OnSnapshot]:
    """A Rich bar on a terminal; otherwise a plain line per snapshot once it takes long."""
    started = time.monotonic()
    if not console.is_terminal:

        def line(done: int, total: int) -> None:
            if time.monotonic() - started >= PLAIN_AFTER_SECONDS:
                console.print(f"scored snapshot {done} of {total}", highlight=False)

        yield line
        return
    with Progress(
        TextColumn("Scoring snapshots"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("snapshots", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def run_backtest(
    out: Console,
    err: Console,
    engine: Engine,
    live: Path | None,
    options: BacktestOptions,
    today: date,
) -> dict[str, Any] | None:
    """Run the command; every figure as plain data, or None when there is nothing to test."""
    cards = [load_scorecard(live)]
    if options.compare_with is not None:
        cards.append(load_scorecard(options.compare_with))
    with snapshot_progress(err) as progress:
        run = collect(
            engine,
            cards,
            today=today,
            months=options.months,
            horizon_days=options.horizon_days,
            weekly=options.weekly,
            progress=progress,
        )
    results = [summarise(run, index) for index in range(len(cards))]
    if not results[0].observations:
        return None
    if not options.quiet:
        print_backtests(out, results)
        for card in cards[1:]:
            if FITTED_MARK in card.version:
                out.print(
                    f"Note: scorecard {card.version} was fitted by --fit; on the book it was "
                    "fitted to, its figures above are in sample and flatter it. Its "
                    "out-of-sample figures are in the comments at the top of its file.",
                    highlight=False,
                    soft_wrap=True,
                )
    payload: dict[str, Any] = {"backtests": [backtest_json(r) for r in results]}
    curves = None
    if options.fit:
        churned = results[0].churned_observations
        if 0 < churned < results[0].observations:
            curves = _fit(out, run, live, options, payload)
        else:
            err.print("--fit: no churn (or only churn) within the horizon: nothing to fit to")
    if options.candidates:
        payload["candidates"] = _candidates(out, err, engine, live, options, today)
    if options.charts is not None:
        from scoring.backtest_charts import write_charts  # matplotlib: only when drawing

        paths = write_charts(options.charts, run, fitted=curves)
        payload["charts"] = [str(p) for p in paths]
        if not options.quiet:
            out.print("Charts: " + ", ".join(str(p) for p in paths), highlight=False)
    return payload


def _fit(
    out: Console,
    run: BacktestRun,
    live: Path | None,
    options: BacktestOptions,
    payload: dict[str, Any],
) -> tuple[Sequence[float], Sequence[float], Sequence[bool]]:
    """Fit, print, write the proposal; the judged scores (current, fitted) and churn."""
    from scoring.fit import fit  # scikit-learn takes a second or two to load: only here
    from scoring.fit_report import fit_json, print_fit, proposal_path, write_proposal

    fitted = fit(run)
    path = write_proposal(fitted, options.out or proposal_path(live))
    payload["fit"] = fit_json(fitted) | {"proposal": str(path)}
    if not options.quiet:
        print_fit(out, fitted)
        out.print(f"Proposed scorecard written to {path} (the live one is unchanged)")
    return fitted.judged_current, fitted.judged_fitted, fitted.judged_churned


def _candidates(
    out: Console,
    err: Console,
    engine: Engine,
    live: Path | None,
    options: BacktestOptions,
    today: date,
) -> list[dict[str, Any]]:
    """`--candidates`: every signal in the store ranked against churn, printed and as data."""
    from scoring.candidates_report import candidates_json, print_candidates, run_candidates

    with snapshot_progress(err) as progress:
        ranks = run_candidates(
            engine,
            load_scorecard(live),
            today=today,
            months=options.months,
            horizon_days=options.horizon_days,
            weekly=options.weekly,
            progress=progress,
        )
    if not options.quiet:
        print_candidates(out, ranks)
    return candidates_json(ranks)
