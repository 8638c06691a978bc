"""The backtest's charts, as PNG files: is the score calibrated, and how well does it rank?

- Calibration: the share of observations that churned within the horizon in each 10-point
  score bin (0-9.9, 10-19.9, ... 90-100), one bar per bin with its count of observations
  and its rate written on it, and the book's overall churn rate as a dashed line. A score
  that predicts churn shows tall bars on the left, short ones on the right.
  With `--fit`, the fitted scorecard's out-of-sample scores get a calibration chart too.
- ROC: the true positive rate against the false positive rate of flagging every score at
  or below each cut, one curve per scorecard (each with its own line style and marker, so
  colour never carries the meaning alone), the diagonal of chance, and the AUCs in the
  title. With `--fit`, the current and the fitted scorecard on the same out-of-sample
  observations share one chart.

Drawn with matplotlib's object API on its Agg canvas: no display, no global pyplot state.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from scoring.backtest import BacktestRun
from scoring.backtest_figures import auc, roc_points

__all__ = [
    "Curve",
    "calibration_figure",
    "roc_figure",
    "slug",
    "write_charts",
    "write_png",
]

SIZE_INCHES, DPI = (8.0, 4.8), 100
BIN_WIDTH = 10
STYLES = (
    ("-", "o", "#1f5fa8"),
    ("--", "s", "#c0392b"),
    ("-.", "^", "#2e7d32"),
    (":", "D", "#6a1b9a"),
)


@dataclass(frozen=True)
class Curve:
    """One scorecard's scores and churn labels, named for the legend."""

    label: str
    scores: Sequence[float]
    churned: Sequence[bool]


def slug(text: str) -> str:
    """`text` made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "scorecard"


def _figure() -> Figure:
    figure = Figure(figsize=SIZE_INCHES, dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def calibration_figure(curve: Curve, *, horizon_days: int) -> Figure:
    """Observed churn rate by 10-point score bin, counts on the bars, overall rate dashed."""
    figure = _figure()
    figure.subplots_adjust(left=0.09, right=0.97, top=0.88, bottom=0.13)
    axes = figure.subplots()
    bins = list(range(0, 100, BIN_WIDTH))
    counts = [0] * len(bins)
    churned = [0] * len(bins)
    for score, label in zip(curve.scores, curve.churned, strict=True):
        index = min(int(score // BIN_WIDTH), len(bins) - 1)
        counts[index] += 1
        churned[index] += label
    rates = [100.0 * c / n if n else 0.0 for c, n in zip(churned, counts, strict=True)]
    centres = [b + BIN_WIDTH / 2 for b in bins]
    axes.bar(centres, rates, width=BIN_WIDTH * 0.85, color="#7f8c9a", edgecolor="#34495e")
    top = max([*rates, 1.0])
    for x, rate, n, c in zip(centres, rates, counts, churned, strict=True):
        text = f"{rate:.0f}%\n{c} of {n}" if n else "none"
        axes.text(x, rate + top * 0.02, text, ha="center", va="bottom", fontsize=7)
    overall = 100.0 * sum(curve.churned) / len(curve.churned) if curve.churned else 0.0
    axes.axhline(
        overall, linestyle="--", color="#c0392b", label=f"overall churn rate {overall:.1f}%"
    )
    axes.set_xlim(0, 100)
    axes.set_ylim(0, top * 1.25)
    axes.set_xticks([*bins, 100])
    axes.set_xlabel("Health score at the snapshot (10-point bins; lower = riskier)")
    axes.set_ylabel(f"Churned within {horizon_days} days (%)")
    axes.set_title(
        f"{curve.label}: observed churn by score (bars: rate, churned of observations)",
        fontsize=10,
        loc="left",
        parse_math=False,
    )
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(loc="upper right", frameon=False)
    return figure


def roc_figure(curves: Sequence[Curve], *, title: str) -> Figure:
    """ROC curves of `curves`, the diagonal of chance, and each AUC in the title and legend."""
    figure = _figure()
    figure.subplots_adjust(left=0.09, right=0.97, top=0.88, bottom=0.13)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], linestyle=":", color="#7f8c9a", label="chance (AUC 0.50)")
    aucs = []
    for index, curve in enumerate(curves):
        line, marker, colour = STYLES[index % len(STYLES)]
        xs, ys = roc_points(curve.scores, curve.churned)
        value = auc(curve.scores, curve.churned)
        shown = "-" if value is None else f"{value:.3f}"
        aucs.append(f"{curve.label} {shown}")
        axes.plot(
            xs,
            ys,
            linestyle=line,
            marker=marker,
            markevery=max(1, len(xs) // 12),
            markersize=4,
            color=colour,
            label=f"{curve.label} (AUC {shown})",
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("False positive rate (retained accounts flagged)")
    axes.set_ylabel("True positive rate (churners flagged)")
    axes.set_title(f"{title}: AUC {', '.join(aucs)}", fontsize=10, loc="left", parse_math=False)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(loc="lower right", frameon=False)
    return figure


def write_png(figure: Figure, path: Path) -> Path:
    """Write `figure` to `path` (its folder created when missing); the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def write_charts(
    directory: Path,
    run: BacktestRun,
    *,
    fitted: tuple[Sequence[float], Sequence[float], Sequence[bool]] | None = None,
) -> list[Path]:
    """A calibration chart per scorecard of `run`, one ROC chart of them all, and with
    `fitted` (current scores, fitted scores, churn, all out of sample) a before/after ROC."""
    curves = []
    for index, card in enumerate(run.scorecards):
        observed = run.observations(index)
        curves.append(
            Curve(
                f"scorecard {card.version}",
                [o.score for o in observed],
                [o.churned for o in observed],
            )
        )
    paths = [
        write_png(
            calibration_figure(curve, horizon_days=run.horizon_days),
            directory / f"calibration-{slug(curve.label.removeprefix('scorecard '))}.png",
        )
        for curve in curves
    ]
    title = f"ROC, churn within {run.horizon_days} days"
    paths.append(write_png(roc_figure(curves, title=title), directory / "roc.png"))
    if fitted is not None:
        current, proposed, churned = fitted
        pair = [
            Curve("current, out of sample", current, churned),
            Curve("fitted, out of sample", proposed, churned),
        ]
        paths.append(
            write_png(
                roc_figure(pair, title=f"Fit: ROC before and after ({len(churned)} judged)"),
                directory / "roc-fit.png",
            )
        )
        paths.append(
            write_png(
                calibration_figure(pair[1], horizon_days=run.horizon_days),
                directory / "calibration-fitted.png",
            )
        )
    return paths
