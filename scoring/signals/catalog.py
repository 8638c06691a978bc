"""What signals the store holds, so a scorecard naming one it lacks is told at once.

`store_catalog` lists every usage metric name (stepping through the metric index, as
scoring does) and trait name in the store (the weekly snapshots count as `active_users`
and `licensed_seats`);
`signal_problems` checks a scorecard's declared measures against it and names the file's
line of each measure whose metric or trait the store does not hold, with the names it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlmodel import Session, col

from scoring.scorecard import Scorecard
from scoring.signals.context import SignalContext
from scoring.signals.usage import SNAPSHOT_METRICS, held_metrics
from scoring.toml_lines import line_of
from store.models import AccountTrait, UsageSnapshot

__all__ = ["Catalog", "signal_problems", "store_catalog"]

SHOWN = 12
"""Names listed in a problem at most; the rest are counted."""


@dataclass(frozen=True)
class Catalog:
    """The metric and trait names the store holds."""

    metrics: frozenset[str]
    traits: frozenset[str]


def store_catalog(session: Session) -> Catalog:
    """Every metric and trait name in the store."""
    connection = session.connection()
    metrics = set(held_metrics(SignalContext(session, date.today())))
    if connection.execute(select(col(UsageSnapshot.id)).limit(1)).first() is not None:
        metrics |= set(SNAPSHOT_METRICS)
    traits = {t for (t,) in connection.execute(select(col(AccountTrait.name)).distinct())}
    return Catalog(frozenset(metrics), frozenset(traits))


def _names(held: frozenset[str]) -> str:
    if not held:
        return "none yet"
    shown = sorted(held)[:SHOWN]
    more = len(held) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def signal_problems(name: str, text: str, card: Scorecard, catalog: Catalog) -> list[str]:
    """One line per declared measure naming a metric or trait the store does not hold:
    `file:line: components.x.measures[i].signal: unknown metric 'y'; the store holds: ...`.
    A prefix that matches no metric is one too."""
    problems: list[str] = []
    for cname, component in card.components.items():
        for index, measure in enumerate(component.measures):
            signal = measure.signal
            if signal is None:
                continue
            path: list[str | int] = ["components", cname, "measures", index, "signal"]
            line = line_of(text, path)
            where = f"{name}{f':{line}' if line else ''}: components.{cname}.measures[{index}]"
            for metric in signal.metrics():
                if metric not in catalog.metrics:
                    problems.append(
                        f"{where}: unknown metric {metric!r} in {measure.name}; "
                        f"the store holds: {_names(catalog.metrics)}"
                    )
            prefix = getattr(signal, "prefix", None)
            if prefix and not any(m.startswith(prefix) for m in catalog.metrics):
                problems.append(
                    f"{where}: no metric starts with {prefix!r} in {measure.name}; "
                    f"the store holds: {_names(catalog.metrics)}"
                )
            for trait in signal.traits():
                if trait not in catalog.traits:
                    problems.append(
                        f"{where}: unknown trait {trait!r} in {measure.name}; "
                        f"the store holds: {_names(catalog.traits)}"
                    )
    return problems
