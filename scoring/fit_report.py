"""How a fit is shown and saved: the out-of-sample figures, what changed, the proposed file.

`print_fit` prints the current and the fitted scorecard side by side on the same judged
observations (Rich tables on a terminal, plain lines otherwise), then each measure's old
and new weight. `write_proposal` writes the proposed scorecard beside the current one
(`<current>.proposed.toml` unless told where), each weight commented with where it came
from, and checks that the file loads as a scorecard before it reports the path.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from scoring.backtest_figures import Flagging
from scoring.backtest_report import percent, print_rows
from scoring.fit import Fit, FitReport, Verdict
from scoring.fit_model import MIN_SHARE, MeasureFit
from scoring.scorecard import Scorecard
from scoring.scorecard_toml import scorecard_toml

__all__ = ["fit_json", "print_fit", "proposal_path", "write_proposal"]


def _auc(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _flag(flag: Flagging) -> str:
    counts = f"({flag.churned_flagged} of {flag.flagged})"
    return f"{percent(flag.precision)} / {percent(flag.recall)} {counts}"


def _verdict_rows(report: FitReport) -> list[list[str]]:
    before, after = report.judged.current, report.judged.fitted

    def bands(v: Verdict) -> list[str]:
        return [f"{percent(b.churn_rate)} of {b.observations}" for b in v.bands]

    rows = [["ROC AUC, out of sample", _auc(before.auc), _auc(after.auc)]]
    for index, band in enumerate(b.band for b in before.bands):
        rows.append([f"Churn rate of {band}", bands(before)[index], bands(after)[index]])
    rows += [
        ["Red: precision / recall", _flag(before.red), _flag(after.red)],
        ["Red or yellow: precision / recall", _flag(before.flagged), _flag(after.flagged)],
        [
            "Riskiest 10% of scores: churn rate",
            percent(before.riskiest.churn_rate),
            percent(after.riskiest.churn_rate),
        ],
        [
            "Bands (green from, yellow from)",
            "{:g}, {:g}".format(*report.current_thresholds),
            "{:g}, {:g}".format(*report.proposed_thresholds),
        ],
    ]
    return rows


def _range(m: MeasureFit) -> str:
    if m.old_range is None or m.new_range is None:
        return "-"
    return "good {:g} bad {:g} -> good {:g} bad {:g}".format(*m.old_range, *m.new_range)


def _measure_rows(report: FitReport) -> list[list[str]]:
    return [
        [
            f"{m.component}.{m.name}",
            f"{m.coefficient:+.4f}",
            f"{m.old_share:.1%} -> {m.new_share:.1%}",
            "wrong way: smallest weight" if m.wrong_way else "",
            _range(m),
        ]
        for m in report.measures
    ]


def summary_line(report: FitReport) -> str:
    """One line: does the fit beat the current scorecard out of sample?"""
    judged = report.judged
    before, after = judged.current.auc, judged.fitted.auc
    if before is None or after is None:
        return (
            "Not enough labelled history to judge a fit out of sample (it needs churners "
            "before and after a horizon, in several accounts): nothing proposed is tested."
        )
    if after >= before + 0.01:
        word = "ranks churners better than"
    elif after > before - 0.01:
        word = "ranks churners about as well as"
    else:
        word = "ranks churners worse than"
    return (
        f"Out of sample ({judged.observations} observations of {judged.accounts} accounts "
        f"the fit never saw, {judged.churned} churned), the fitted scorecard {word} the "
        f"current one (AUC {after:.3f} vs {before:.3f}). Training figures are not shown: "
        "they would flatter the fit."
    )


def print_fit(console: Console, fit: Fit) -> None:
    """The fit's out-of-sample figures, what changed per measure, and a summary line."""
    report = fit.report
    first = report.judged.first_day
    print_rows(
        console,
        f"Fit, out of sample: judged snapshots from {first or '-'}, "
        f"{report.judged.splits} splits (accounts in {report.judged.groups} groups x "
        "snapshot days; trained only on other accounts' snapshots labelled before)",
        ["Figure", f"current {report.current_version}", f"fitted {report.proposed_version}"],
        _verdict_rows(report),
    )
    print_rows(
        console,
        f"What the fit changed (fitted on all {report.observations} labelled observations)",
        ["Measure", "Coefficient/point", "Share of score", "Note", "Normalisation"],
        _measure_rows(report),
    )
    console.print(summary_line(report), highlight=False, soft_wrap=True)


def fit_json(fit: Fit) -> dict[str, Any]:
    """The fit's report as plain data."""
    return asdict(fit.report) | {"summary": summary_line(fit.report)}


def proposal_path(current: Path | None) -> Path:
    """`<current>.proposed.toml` beside the current scorecard (the default one: here)."""
    if current is None:
        return Path("scorecard.proposed.toml")
    return current.with_name(f"{current.stem}.proposed.toml")


def _comments(fit: Fit) -> dict[str, str]:
    report = fit.report
    judged = report.judged
    notes = {
        "": (
            f"Proposed scorecard, fitted on {report.fitted_on} to {report.observations} "
            f"labelled observations ({report.accounts} accounts, {report.churned} churned "
            f"within {report.horizon_days} days) from scorecard {report.current_version}.\n"
            f"{summary_line(report)}\n"
            "Weights: a logistic regression of churn on every measure's 0-100 score; a "
            "measure's share of the score is its coefficient's strength over the sum of "
            f"strengths; a measure that predicts the wrong way gets {MIN_SHARE:.0%}.\n"
            "Nothing changes until a person adopts this file (SCORECARD_PATH); check it "
            "with `health-agent scorecard check`."
        ),
        "bands": (
            "Thresholds where the churn rate jumps: red is the riskiest tenths of the fitted "
            "scores churning at least twice the overall rate (one to three tenths), yellow "
            "the next tenths churning above it (up to six tenths in all). "
            "Was green {:g}, yellow {:g}; out of sample red held {} of {} judged observations."
        ).format(
            *report.current_thresholds,
            judged.fitted.bands[0].observations,
            judged.observations,
        ),
    }
    for name, old, new in report.components:
        notes[f"components.{name}"] = f"---- {name}: {old:.1%} of the score before, {new:.1%} now"
    for m in report.measures:
        text = (
            f"{m.name}: coefficient {m.coefficient:+.4f} per point; "
            f"{m.old_share:.1%} -> {m.new_share:.1%} of the score"
        )
        if m.wrong_way:
            text += "\nFLAGGED: given the others it predicts the wrong way here; smallest weight"
        if m.old_range is not None and m.new_range is not None:
            text += (
                "\nrange moved to its values' 10th/90th percentiles here: "
                f"good {m.old_range[0]:g} -> {m.new_range[0]:g}, "
                f"bad {m.old_range[1]:g} -> {m.new_range[1]:g}"
            )
        notes[f"measure.{m.name}"] = text
    return notes


def write_proposal(fit: Fit, path: Path) -> Path:
    """Write the proposed scorecard to `path`, checked to load as a scorecard."""
    text = scorecard_toml(fit.proposal, _comments(fit))
    Scorecard.model_validate(tomllib.loads(text))  # never write a file that cannot load
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
