"""How the backtest's figures are shown: Rich tables on a terminal, plain lines otherwise.

`print_backtests` prints one column per scorecard (the current one and any compared with
it), each scorecard's measures ranked by their own AUC, and one verdict per scorecard.
`backtest_json` is the same figures as plain data for `--json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table

from scoring.backtest_figures import Flagging, SignalAuc
from scoring.backtest_result import Backtest

__all__ = ["backtest_json", "percent", "print_backtests", "print_rows"]


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_rows(
    console: Console, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]
) -> None:
    """A table: Rich on a terminal, `title` and one `a | b | c` line per row otherwise."""
    if console.is_terminal:
        table = Table(title=title, title_justify="left", header_style="bold")
        for index, column in enumerate(columns):
            table.add_column(column, justify="left" if index == 0 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    console.print(title, highlight=False, soft_wrap=True)
    for row in [columns, *rows]:
        console.print("  " + " | ".join(row), highlight=False, soft_wrap=True)


def _flagging(flag: Flagging | None) -> str:
    if flag is None:
        return "-"
    return (
        f"{percent(flag.precision)} / {percent(flag.recall)} "
        f"({flag.churned_flagged} of {flag.flagged})"
    )


def _rows(result: Backtest) -> list[tuple[str, str]]:
    rows = [
        ("ROC AUC (lower score = higher risk)", _number(result.auc)),
        (
            "Snapshots (with a full horizon)",
            f"{len(result.snapshots)} ({result.labelled_snapshots})",
        ),
        ("Observations (account x snapshot)", str(result.observations)),
        ("Accounts", str(result.accounts)),
        (
            f"Churned within {result.horizon_days} days",
            f"{result.churned_observations} ({percent(result.churn_rate)})",
        ),
    ]
    for band in result.bands:
        lift = "" if band.lift is None else f", lift {band.lift:.1f}x"
        rows.append(
            (
                f"Churn rate of {band.band}",
                f"{percent(band.churn_rate)} of {band.observations}{lift}",
            )
        )
    rows += [
        ("Red: precision / recall", _flagging(result.red)),
        ("Red or yellow: precision / recall", _flagging(result.flagged)),
    ]
    top = result.riskiest
    if top is not None:
        lift = "" if top.lift is None else f", lift {top.lift:.1f}x"
        rows.append(
            (
                f"Riskiest {top.share:.0%} of scores: churn rate",
                f"{percent(top.churn_rate)} of {top.observations}{lift}",
            )
        )
    median = "-" if result.median_lead_days is None else f"{result.median_lead_days:.0f} days"
    rows += [
        ("Churners in the window", str(result.churners)),
        (f"Red or yellow {result.min_lead_days}+ days before churn", str(result.flagged_churners)),
        ("Median lead time (first warning to churn)", median),
    ]
    return rows


def _by_auc(measures: Sequence[SignalAuc]) -> list[SignalAuc]:
    return sorted(measures, key=lambda m: (m.auc is None, -(m.auc or 0.0), m.name))


def _measure_rows(result: Backtest) -> list[list[str]]:
    return [
        [
            m.name,
            _number(m.auc),
            f"{m.observations} of {result.observations} ({m.coverage:.0%})",
            str(m.churned),
        ]
        for m in _by_auc(result.measures)
    ]


def print_backtests(console: Console, results: Sequence[Backtest]) -> None:
    """A table of the figures, one column per scorecard, each scorecard's measures by their
    own AUC, and each one's verdict."""
    if not results:
        return
    first = results[0]
    window = f"{first.snapshots[0]} to {first.snapshots[-1]}" if first.snapshots else "-"
    columns = [_rows(r) for r in results]
    print_rows(
        console,
        f"Backtest: does the score predict churn? Snapshots {window}",
        ["Figure", *(f"scorecard {r.scorecard_version}" for r in results)],
        [
            [label, *(column[index][1] for column in columns)]
            for index, (label, _) in enumerate(columns[0])
        ],
    )
    for result in results:
        if result.measures:
            print_rows(
                console,
                f"Each measure alone (scorecard {result.scorecard_version}): its own AUC "
                "over the observations where it had data",
                ["Measure", "AUC", "Coverage", "Churned"],
                _measure_rows(result),
            )
    for result in results:
        prefix = f"{result.scorecard_version}: " if len(results) > 1 else ""
        console.print(prefix + result.verdict(), highlight=False, soft_wrap=True)


def backtest_json(result: Backtest) -> dict[str, Any]:
    """Every figure of `result` as plain data, with its churn rate and verdict."""
    return asdict(result) | {"churn_rate": result.churn_rate, "verdict": result.verdict()}
