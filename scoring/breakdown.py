"""One score taken apart, measure by measure, for `health-agent explain`.

For every measure of every component: the value read, its normalised score (0-100), the
share of the total it carries (weights re-normalised over the measures with data), the
points it adds, how its score moved since the account's previous score, and how fresh the
data behind it is. Freshness comes from sync state: the sources that hold this account's
rows of the tables the measure reads, each with its last successful sync, so a measure fed
by a failing or lagging source is flagged `stale` instead of passing for the truth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, union
from sqlmodel import Session, SQLModel, col

from scoring.measures import MEASURES
from scoring.scorecard import RESERVED_NAMES, Scorecard
from store.models import (
    AccountTrait,
    HealthScore,
    Invoice,
    SentimentEntry,
    Subscription,
    SurveyResponse,
    SyncRun,
    Ticket,
    UsageMetric,
    UsageSnapshot,
)
from store.types import UTCDateTime, utcnow

__all__ = [
    "STALE_AFTER",
    "MeasureLine",
    "SourceState",
    "StaleAfter",
    "measure_lines",
    "reads_of",
    "stale_measures",
]

STALE_AFTER = timedelta(hours=26)
"""A source that has not synced successfully for this long (a daily sync missed) is stale,
unless the configuration says otherwise for it (`StaleAfter`)."""

StaleAfter = Callable[[str], timedelta | None]
"""A source's configured staleness threshold, or None for `STALE_AFTER`
(`Settings.stale_after`: the source's `stale_after_hours`, else STATUS__STALE_AFTER_HOURS)."""
SENTIMENT_STALE_DAYS = 30


@dataclass(frozen=True)
class SourceState:
    """A source's last successful sync and what is failing now."""

    last_success: datetime | None
    failing: tuple[str, ...]
    after: timedelta = STALE_AFTER

    def stale(self, now: datetime) -> bool:
        too_old = self.last_success is None or now - self.last_success > self.after
        return bool(self.failing) or too_old


@dataclass(frozen=True)
class MeasureLine:
    """One measure of one score, ready to print or to dump as JSON."""

    component: str
    measure: str
    value: float | str | None
    score: float | None
    weight: float
    points: float | None
    change: float | None
    data: str
    stale: bool
    text: str = ""
    """The measure's driver sentence for its value, when its scorecard is known."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _source_states(
    session: Session, stale_after: StaleAfter | None = None
) -> dict[str, SourceState]:
    latest_ok = (
        select(col(SyncRun.source), func.max(col(SyncRun.finished_at), type_=UTCDateTime()))
        .where(col(SyncRun.status) == "ok")
        .group_by(col(SyncRun.source))
    )
    ranked = select(
        col(SyncRun.source),
        col(SyncRun.stream),
        col(SyncRun.status),
        func.row_number()
        .over(
            partition_by=(col(SyncRun.source), col(SyncRun.stream)),
            order_by=col(SyncRun.started_at).desc(),
        )
        .label("rn"),
    ).subquery()
    failing: dict[str, list[str]] = {}
    for source, stream in session.execute(
        select(ranked.c.source, ranked.c.stream).where(
            ranked.c.rn == 1, ranked.c.status.in_(("failed", "refused"))
        )
    ).all():
        failing.setdefault(source, []).append(stream)
    oks: dict[str, datetime | None] = {src: at for src, at in session.execute(latest_ok).all()}
    return {
        source: SourceState(
            oks.get(source),
            tuple(failing.get(source, ())),
            (stale_after(source) if stale_after else None) or STALE_AFTER,
        )
        for source in {*oks, *failing}
    }


def _sources_of(session: Session, account_id: int, models: tuple[type[SQLModel], ...]) -> list[str]:
    """The sources holding this account's rows in these tables (one query per table)."""
    queries = [
        select(table.c.source).where(table.c.account_id == account_id).distinct()
        for table in (m.__table__ for m in models)  # type: ignore[attr-defined]
    ]
    if not queries:
        return []
    return sorted(session.execute(union(*queries)).scalars().all())


def _ago(moment: datetime, now: datetime) -> str:
    seconds = int((now - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def _freshness(
    session: Session,
    account_id: int,
    measure: str,
    entry: Mapping[str, Any],
    states: dict[str, SourceState],
    now: datetime,
) -> tuple[str, bool]:
    details = entry.get("details") or {}
    reads = reads_of(measure, entry)
    if not reads:  # CSM input: as fresh as its latest entry
        days = details.get("days_ago")
        if days is None:
            return "no entry", False
        stale = int(days) > SENTIMENT_STALE_DAYS
        return f"entry {days} d old" + (": STALE" if stale else ""), stale
    sources = _sources_of(session, account_id, reads)
    if not sources:
        return "no data from any source", False
    parts, stale = [], False
    for source in sources:
        state = states.get(source)
        if state is None:  # rows imported by hand, not synced: nothing to lag behind
            parts.append(f"{source} (imported)")
            continue
        when = "never synced" if state.last_success is None else _ago(state.last_success, now)
        text = f"{source} {when}"
        if state.failing:
            text += f", failing ({', '.join(state.failing)})"
        if state.stale(now):
            stale = True
            text += ": STALE"
        parts.append(text)
    return "; ".join(parts), stale


def _why_stale(source: str, state: SourceState, now: datetime) -> str:
    if state.failing:
        return f"{source} failing ({', '.join(state.failing)})"
    if state.last_success is None:
        return f"{source} never synced"
    return f"{source} last synced {_ago(state.last_success, now)}"


_TABLES: dict[str, type[SQLModel]] = {
    model.__tablename__: model
    for model in (
        AccountTrait,
        Invoice,
        SentimentEntry,
        Subscription,
        SurveyResponse,
        Ticket,
        UsageMetric,
        UsageSnapshot,
    )
}


def reads_of(measure: str, entry: Mapping[str, Any]) -> tuple[type[SQLModel], ...]:
    """The tables a stored measure read: a preset's from its spec, a declared measure's
    from the names its score recorded (`reads`)."""
    spec = MEASURES.get(measure)
    if spec is not None:
        return spec.reads
    names = entry.get("reads") or ()
    return tuple(_TABLES[name] for name in names if isinstance(name, str) and name in _TABLES)


def _measures_read(components: Mapping[str, Any]) -> list[tuple[str, tuple[type[SQLModel], ...]]]:
    """The measures of a score that had data and read synced tables, with those tables."""
    names = []
    for cname, comp in components.items():
        measures = comp.get("measures") if isinstance(comp, Mapping) else None
        if cname in RESERVED_NAMES or not isinstance(measures, Mapping):
            continue
        for mname, entry in measures.items():
            if (
                isinstance(entry, Mapping)
                and reads_of(mname, entry)
                and entry.get("value") is not None
            ):
                names.append((mname, reads_of(mname, entry)))
    return names


def stale_measures(
    session: Session,
    scores: Mapping[int, Mapping[str, Any]],
    now: datetime | None = None,
    chunk: int = 500,
    stale_after: StaleAfter | None = None,
) -> dict[int, list[str]]:
    """For each account (id -> its score's components), the measures whose data comes from
    a failing or lagging source, each as "usage_trend (product_usage failing (usage))".

    Set-based: one query for the sources' states and, only when some source is stale, one
    query per table read and `chunk` accounts for which of those sources hold their rows.
    Accounts with nothing stale are left out.
    """
    now = now or utcnow()
    states = _source_states(session, stale_after)
    stale = {source: state for source, state in states.items() if state.stale(now)}
    if not stale or not scores:
        return {}
    read = {account_id: _measures_read(components) for account_id, components in scores.items()}
    tables = {t for pairs in read.values() for _name, reads in pairs for t in reads}
    held: dict[tuple[str, int], set[str]] = {}  # (table, account) -> stale sources there
    ids = sorted(account_id for account_id, names in read.items() if names)
    for model in sorted(tables, key=lambda m: m.__name__):
        table = model.__table__  # type: ignore[attr-defined]
        for start in range(0, len(ids), chunk):
            stmt = (
                select(table.c.account_id, table.c.source)
                .where(
                    table.c.account_id.in_(ids[start : start + chunk]),
                    table.c.source.in_(sorted(stale)),
                )
                .distinct()
            )
            for account_id, source in session.execute(stmt).all():
                held.setdefault((model.__name__, account_id), set()).add(source)
    flagged: dict[int, list[str]] = {}
    for account_id, pairs in read.items():
        for name, reads in pairs:
            sources = sorted({s for m in reads for s in held.get((m.__name__, account_id), ())})
            if sources:
                why = "; ".join(_why_stale(s, stale[s], now) for s in sources)
                flagged.setdefault(account_id, []).append(f"{name} ({why})")
    return flagged


def _previous_scores(previous: HealthScore | None) -> dict[tuple[str, str], float]:
    scores: dict[tuple[str, str], float] = {}
    for cname, comp in (previous.components if previous else {}).items():
        if cname in RESERVED_NAMES:
            continue
        for mname, entry in (comp.get("measures") or {}).items():
            if entry.get("score") is not None:
                scores[(cname, mname)] = float(entry["score"])
    return scores


def measure_lines(
    session: Session,
    latest: HealthScore,
    previous: HealthScore | None,
    now: datetime | None = None,
    stale_after: StaleAfter | None = None,
    scorecards: Sequence[Scorecard] = (),
) -> list[MeasureLine]:
    """Every measure of `latest`, with its change since `previous` and its data's freshness,
    and, when `scorecards` hold the one that made the score, its driver sentence."""
    now = now or utcnow()
    card = next((c for c in scorecards if c.version == latest.scorecard_version), None)
    states = _source_states(session, stale_after)
    before = _previous_scores(previous)
    lines = []
    for cname, comp in latest.components.items():
        if cname in RESERVED_NAMES:
            continue
        for mname, entry in (comp.get("measures") or {}).items():
            score = entry.get("score")
            weight = float(entry.get("effective_weight") or 0.0)
            data, stale = _freshness(session, latest.account_id, mname, entry, states, now)
            old = before.get((cname, mname))
            lines.append(
                MeasureLine(
                    component=cname,
                    measure=mname,
                    value=entry.get("value"),
                    score=score,
                    weight=round(weight, 4),
                    points=None if score is None else round(weight * score, 1),
                    change=None if score is None or old is None else round(score - old, 1),
                    data=data,
                    stale=stale,
                    text=_sentence(card, mname, entry, score),
                )
            )
    return lines


def _sentence(
    card: Scorecard | None, measure: str, entry: Mapping[str, Any], score: float | None
) -> str:
    """The measure's driver sentence for its stored value ("" without data or scorecard)."""
    if card is None or score is None or entry.get("value") is None:
        return ""
    try:
        found = card.find_measure(measure)[1]
        positive = score >= card.bands.green
        return found.describe(entry["value"], entry.get("details") or {}, positive=positive)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        return ""  # a score made by another version of the scorecard
