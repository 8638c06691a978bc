"""Every measure of a scorecard read for all accounts as of a day, whatever its kind.

A scorecard's measures are either named presets (`scoring.measures.MEASURES`, queries
written in Python) or declared over signals (`scoring.signals`: traits, usage metrics,
surveys, tickets, sentiment). `read_readings` reads both kinds with one set-based query per
preset group and per declared measure, and hands back readings keyed by measure name, the
shape scoring, explain and the backtest all consume. A reading its measure cannot score (a
word its `categories` do not list, with no `otherwise`) is left out as missing data.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlmodel import Session

from scoring.measures import Readings, read_measures
from scoring.scorecard import Measure
from scoring.signals.context import SignalContext
from scoring.signals.read import read_signal

__all__ = ["read_readings"]


def read_readings(
    session: Session, as_of: date, measures: Iterable[Measure]
) -> dict[str, Readings]:
    """The readings of each measure as of the end of `as_of`, by measure name."""
    unique = list({m.name: m for m in measures}.values())
    presets = [m.name for m in unique if m.signal is None]
    readings = read_measures(session, as_of, presets) if presets else {}
    ctx = SignalContext(session, as_of)
    for measure in unique:
        if measure.signal is not None:
            readings[measure.name] = read_signal(
                ctx, measure.signal, categorical=measure.categorical
            )
    for measure in unique:
        if measure.categorical and measure.signal is not None:
            readings[measure.name] = {
                a: r for a, r in readings[measure.name].items() if measure.scores_value(r.value)
            }
    return {m.name: readings[m.name] for m in unique}
