"""Every measure of a scorecard read for all accounts as of a day, whatever its kind.

A scorecard's measures are either named presets (`scoring.measures.MEASURES`, queries
written in Python) or declared over signals (`scoring.signals`: traits, usage metrics,
surveys, tickets, sentiment). `read_readings` reads both kinds with one set-based query per
preset group and per declared measure, and hands back readings keyed by measure name, the
shape scoring, explain and the backtest all consume.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlmodel import Session

from scoring.measures import Readings, read_measures
from scoring.scorecard import Measure

__all__ = ["read_readings"]


def read_readings(
    session: Session, as_of: date, measures: Iterable[Measure]
) -> dict[str, Readings]:
    """The readings of each measure as of the end of `as_of`, by measure name."""
    wanted = list(dict.fromkeys(m.name for m in measures))
    return read_measures(session, as_of, wanted)
