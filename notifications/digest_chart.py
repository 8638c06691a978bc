"""The digest's chart: a team's customers by health band at the end of each week, as a PNG.

Stacked bars, red at the bottom where a change shows, then yellow, green and (when there are
any) unscored, one bar per week of `DigestFacts.history`; drawn with matplotlib's object API
on its Agg canvas: no display, no global pyplot state, safe to call from any thread.
"""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from notifications.digest_facts import DigestFacts

__all__ = ["BAND_COLOURS", "chart_filename", "write_chart"]

BAND_COLOURS = {
    "green": "#2e9e5b",
    "yellow": "#f2b705",
    "red": "#d64545",
    "unscored": "#b8bec6",
}
SIZE_INCHES, DPI = (8.0, 3.6), 100


def chart_filename(facts: DigestFacts) -> str:
    """`digest-enterprise-2026-11-22.png`: the team's name made safe for a file name."""
    slug = re.sub(r"[^a-z0-9]+", "-", facts.team.name.lower()).strip("-") or f"team-{facts.team.id}"
    return f"digest-{slug[:60]}-{facts.week_ending.isoformat()}.png"


def _figure(facts: DigestFacts) -> Figure:
    figure = Figure(figsize=SIZE_INCHES, dpi=DPI)
    figure.subplots_adjust(left=0.07, right=0.87, top=0.88, bottom=0.12)  # fixed: fast
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    labels = [f"{w.week_ending:%b} {w.week_ending.day}" for w in facts.history]
    positions = list(range(len(labels)))
    bottom = [0] * len(labels)
    bands = ["red", "yellow", "green"]  # risk at the bottom, where a change shows
    if any(w.bands.unscored for w in facts.history):
        bands.append("unscored")
    for band in bands:
        counts = [w.bands.of(band) for w in facts.history]
        axes.bar(positions, counts, bottom=bottom, color=BAND_COLOURS[band], label=band, width=0.7)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.set_xticks(positions, labels, fontsize=8)
    axes.set_ylabel("accounts")
    axes.set_title(
        f"{facts.team.name}: accounts by health band, weeks ending {labels[0]} to {labels[-1]}",
        fontsize=10,
        loc="left",
        parse_math=False,
    )
    axes.spines[["top", "right"]].set_visible(False)
    handles, names = axes.get_legend_handles_labels()
    axes.legend(
        handles[::-1], names[::-1], loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False
    )
    return figure


def write_chart(facts: DigestFacts, directory: Path) -> Path:
    """Draw the chart into `directory` (created when missing); the PNG's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / chart_filename(facts)
    _figure(facts).savefig(path, format="png", metadata={"Software": None})
    return path
