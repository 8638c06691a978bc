"""Health scores for every account at once, as of a day, with their explanation.

`score_accounts` runs each measure of the scorecard once over all accounts (a handful of
aggregate queries, never one per account), turns readings into 0-100 scores, combines
them into components and a total, and writes one `HealthScore` row per account and day in
bulk; scoring the same day again replaces that day's rows. A measure without data is left
out and the remaining weights re-normalised; `confidence` is the share of the scorecard's
weight that was backed by data. An account with no data at all gets no score.

The scorecard's caps then apply: every cap rule whose conditions all hold limits the score,
the lowest cap winning. The rules that held are stored with the components, under `caps`
(absent when none held): `score` is the lowest cap, `uncapped` the weighted mean, and
`fired` lists each rule's `name`, `cap`, `reason` and whether it `lowered` the score.

Drivers are the plain-words reasons behind a score. The caps that lowered it come first,
lowest first ("Capped at 50 — subscription past due"). Then each measure contributes
`effective weight x (measure score - green threshold)` points, so measures holding an
account below green pull, measures above it push; the most negative follow, three drivers
at most, leaving out a measure its cap has already stated. Green accounts also get their
three strongest positive drivers.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, or_, select
from sqlmodel import Session, col
from sqlmodel import select as select_models

from scoring.measures import MEASURES, SENTIMENTS, Reading, cutoff
from scoring.peers import percentile_measures, rank_readings, segments
from scoring.readings import read_readings
from scoring.scorecard import (
    RESERVED_COMPONENT,
    SIGNALS,
    CapRule,
    Measure,
    Scorecard,
    load_scorecard,
)
from scoring.selection import AccountTraits, ScorecardSet
from store.db import session_for
from store.models import Account, HealthScore, SentimentEntry
from store.types import utcnow
from store.upsert import UpsertStream, upsert_stream

__all__ = [
    "AccountHealth",
    "AccountScore",
    "ScoreRunSummary",
    "SentimentError",
    "UnknownAccountError",
    "backfill",
    "compute_score",
    "explain",
    "record_sentiment",
    "score_accounts",
]

MAX_DRIVERS = 3


class UnknownAccountError(LookupError):
    """No live account has that id."""


class SentimentError(ValueError):
    """A sentiment entry that is not green, yellow or red."""


@dataclass(frozen=True)
class AccountScore:
    """One account's computed score, ready to be stored as a `HealthScore`."""

    score: float
    band: str
    confidence: float
    components: dict[str, Any]
    weights: dict[str, float]
    drivers: list[dict[str, Any]]


@dataclass(frozen=True)
class ScoreRunSummary:
    """What one scoring run did."""

    as_of: date
    scorecard_version: str
    accounts: int
    scored: int
    unscored: int
    bands: dict[str, int] = field(default_factory=dict)
    mean_confidence: float = 0.0


@dataclass(frozen=True)
class AccountHealth:
    """An account's latest score and its history (oldest first), for `explain`."""

    account: Account
    latest: HealthScore | None
    history: list[HealthScore]


@dataclass(frozen=True)
class _MeasurePlan:
    """What scoring one measure needs that does not change from account to account."""

    measure: Measure
    share: float
    """Its weight within its component."""
    reads: tuple[str, ...] | None
    """The tables a declared measure reads, stored with its score (None for a preset)."""


@dataclass(frozen=True)
class _ComponentPlan:
    name: str
    weight: float
    share: float
    """Its weight within the scorecard."""
    m_total: float
    measures: tuple[_MeasurePlan, ...]


@dataclass(frozen=True)
class _Plan:
    """A scorecard laid out once for scoring many accounts: weights summed, shares divided,
    the tables of declared measures named, measures found by name."""

    total_weight: float
    components: tuple[_ComponentPlan, ...]
    decaying: tuple[Measure, ...]
    by_name: dict[str, tuple[str, Measure]]


_PLANS: dict[int, tuple[Scorecard, _Plan]] = {}
"""Plans by scorecard identity (the scorecard kept with its plan, so the id stays its own)."""


def _plan(scorecard: Scorecard) -> _Plan:
    cached = _PLANS.get(id(scorecard))
    if cached is not None and cached[0] is scorecard:
        return cached[1]
    total_weight = sum(c.weight for c in scorecard.components.values())
    components = []
    for cname, component in scorecard.components.items():
        m_total = sum(m.weight for m in component.measures)
        plans = tuple(
            _MeasurePlan(
                m,
                m.weight / m_total,
                None if m.signal is None else tuple(str(t.__tablename__) for t in m.signal.reads()),
            )
            for m in component.measures
        )
        components.append(
            _ComponentPlan(cname, component.weight, component.weight / total_weight, m_total, plans)
        )
    plan = _Plan(
        total_weight=total_weight,
        components=tuple(components),
        decaying=tuple(m for m in scorecard.measures() if m.decay is not None),
        by_name={m.name: (c, m) for c, comp in scorecard.components.items() for m in comp.measures},
    )
    if len(_PLANS) > 64:  # scorecards are few; a long-lived process making many starts over
        _PLANS.clear()
    _PLANS[id(scorecard)] = (scorecard, plan)
    return plan


def compute_score(
    scorecard: Scorecard, readings: Mapping[str, Reading], previous_band: str | None = None
) -> AccountScore | None:
    """Combine one account's readings (by measure name) into a score; None without data.

    `previous_band` is the account's band at its score before: the band is held within the
    scorecard's hysteresis, unless a cap lowered the score (a cap always decides the band).
    """
    plan = _plan(scorecard)
    total_weight = plan.total_weight
    components: dict[str, Any] = {}
    present: dict[str, tuple[float, float]] = {}  # component -> (weight, score)
    scored: list[tuple[str, str, float, float]] = []
    said: dict[str, tuple[Measure, Reading]] = {}  # driver sentences, formatted when chosen
    confidence = 0.0
    readings, faded = _faded(plan, readings)
    for cplan in plan.components:
        cname, m_total = cplan.name, cplan.m_total
        measures: dict[str, Any] = {}
        got: list[tuple[float, float]] = []
        full_weight = 0.0
        for mplan in cplan.measures:
            measure = mplan.measure
            name = measure.name
            reading = readings.get(name)
            entry: dict[str, Any] = {"value": None, "score": None, "weight": mplan.share}
            if mplan.reads is not None:
                entry["reads"] = list(mplan.reads)
            if faded and name in faded:
                entry["freshness"] = round(faded[name], 3)
            if reading is not None:
                full_weight += measure.weight
                score = measure.score(reading.value, reading.details)
                entry["value"] = reading.value
                entry["score"] = round(score, 1)
                entry["details"] = reading.details
                got.append((measure.weight * faded.get(name, 1.0), score))
                said[name] = (measure, reading)
                scored.append((cname, name, measure.weight, score))
            measures[name] = entry
        comp_score: float | None = None
        if got:
            got_weight = sum(w for w, _ in got)
            comp_score = sum(w * s for w, s in got) / got_weight
            # a faded reading pulls its component less: scale by the weight it kept
            present[cname] = (cplan.weight * got_weight / full_weight, comp_score)
            confidence += cplan.weight / total_weight * got_weight / m_total
        components[cname] = {
            "score": None if comp_score is None else round(comp_score, 1),
            "weight": cplan.share,
            "measures": measures,
        }
    if not present:
        return None
    present_weight = sum(w for w, _ in present.values())
    total = sum(w * s for w, s in present.values()) / present_weight
    weights = {c: (present[c][0] / present_weight if c in present else 0.0) for c in components}
    pivot = scorecard.bands.green
    contributions: list[tuple[float, str, str]] = []
    kept: dict[str, float] = {}  # component -> the weight its measures with data kept
    for cname, mname, weight, _score in scored:
        kept[cname] = kept.get(cname, 0.0) + weight * faded.get(mname, 1.0)
    for cname, mname, weight, score in scored:
        effective = weights[cname] * weight * faded.get(mname, 1.0) / kept[cname]
        components[cname]["measures"][mname]["effective_weight"] = round(effective, 4)
        impact = effective * (score - pivot)
        contributions.append((impact, cname, mname))

    def driver(contribution: tuple[float, str, str]) -> dict[str, Any]:
        impact, cname, mname = contribution
        measure, reading = said[mname]
        text = measure.describe(reading.value, reading.details, positive=impact >= 0)
        return _driver((impact, cname, mname, text))

    fired = _fired_caps(scorecard, plan, readings, components)
    capped = min([total, *(limit for _, limit, _ in fired)])
    lowering = [(rule, limit, reason) for rule, limit, reason in fired if limit < total]
    stated = {c.measure for rule, _, _ in lowering for c in rule.when if c.measure is not None}
    drivers = [
        _cap_driver(scorecard, rule, reason, limit - total) for rule, limit, reason in lowering
    ]
    falling = [c for c in sorted(contributions) if c[0] < 0 and c[2] not in stated]
    drivers += [driver(c) for c in falling[: max(0, MAX_DRIVERS - len(drivers))]]
    drivers = drivers[:MAX_DRIVERS]
    if fired:
        components[RESERVED_COMPONENT] = {
            "score": round(fired[0][1], 1),
            "uncapped": round(total, 1),
            "fired": [
                {
                    "name": rule.name,
                    "cap": round(limit, 1),
                    "reason": reason,
                    "lowered": limit < total,
                }
                for rule, limit, reason in fired
            ],
        }
    band = scorecard.bands.band(capped, None if lowering else previous_band)
    signal = _sentiment_against_data(scorecard, readings, present, fired)
    if signal is not None:
        components[SIGNALS] = [signal]
    if band == "green":
        ups = sorted((c for c in contributions if c[0] > 0), reverse=True)
        drivers += [driver(c) for c in ups[:MAX_DRIVERS]]
    return AccountScore(
        score=round(capped, 1),
        band=band,
        confidence=round(confidence, 3),
        components=components,
        weights={c: round(w, 4) for c, w in weights.items()},
        drivers=drivers,
    )


CSM_INPUT = frozenset(name for name, spec in MEASURES.items() if not spec.reads)
"""Measures that are a person's call rather than data synced from a system."""


def _sentiment_against_data(
    scorecard: Scorecard,
    readings: Mapping[str, Reading],
    present: Mapping[str, tuple[float, float]],
    fired: Sequence[tuple[CapRule, float, str]],
) -> dict[str, Any] | None:
    """ "CSM says green, the data says red" (or the reverse), when the two are bands apart.

    The data's view is the score without the components that hold CSM input and without
    the caps that test it. Either side can be wrong; the lead should look.
    """
    call = readings.get("csm_sentiment")
    if call is None or call.value not in ("green", "red"):
        return None
    data = {
        name: pair
        for name, pair in present.items()
        if not any(m.name in CSM_INPUT for m in scorecard.components[name].measures)
    }
    if not data:
        return None
    weight = sum(w for w, _ in data.values())
    total = sum(w * s for w, s in data.values()) / weight
    limits = [
        limit
        for rule, limit, _ in fired
        if not any(condition.measure in CSM_INPUT for condition in rule.when)
    ]
    score = min([total, *limits])
    band = scorecard.bands.band(score)
    if {call.value, band} != {"green", "red"}:
        return None
    return {
        "kind": "sentiment_vs_data",
        "sentiment": call.value,
        "data_score": round(score, 1),
        "data_band": band,
        "text": f"CSM says {call.value}, the data says {band} ({score:.0f})",
    }


def _faded(
    plan: _Plan, readings: Mapping[str, Reading]
) -> tuple[Mapping[str, Reading], dict[str, float]]:
    """Readings that still count, and the share of weight each dated one keeps.

    A reading whose decay has run out is dropped: an old CSM call is missing data, left out
    and the weights re-normalised, never read as a neutral or a fresh call.
    """
    kept: Mapping[str, Reading] = readings
    faded: dict[str, float] = {}
    for measure in plan.decaying:
        reading = readings.get(measure.name)
        if reading is None:
            continue
        share = measure.freshness(reading.details)
        if share < 1.0:
            faded[measure.name] = share
        if share <= 0.0:
            kept = {n: r for n, r in kept.items() if n != measure.name}
    return kept, faded


def _fired_caps(
    scorecard: Scorecard,
    plan: _Plan,
    readings: Mapping[str, Reading],
    components: Mapping[str, Any],
) -> list[tuple[CapRule, float, str]]:
    """The cap rules whose conditions all hold, lowest cap first, with the cap as a score
    and the reason in plain words. Conditions test the scores as stored (rounded)."""
    fired: list[tuple[CapRule, float, str]] = []
    for rule in scorecard.caps:
        reasons: list[str] = []
        for condition in rule.when:
            if condition.component is not None:
                score = components[condition.component]["score"]
                if not condition.holds(None, score):
                    break
                reasons.append(f"{condition.component} score {score:.0f}")
            else:
                cname, measure = plan.by_name[str(condition.measure)]
                entry = components[cname]["measures"][measure.name]
                if not condition.holds(entry["value"], entry["score"]):
                    break
                reading = readings[measure.name]
                reasons.append(measure.describe(reading.value, reading.details, positive=False))
        else:
            fired.append((rule, rule.limit(scorecard.bands), rule.label or " and ".join(reasons)))
    return sorted(fired, key=lambda f: f[1])


def _lower_first(text: str) -> str:
    """`Subscription past due` reads as `subscription past due`; `CSM marked red` stays."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _cap_driver(scorecard: Scorecard, rule: CapRule, reason: str, impact: float) -> dict[str, Any]:
    component = measure = None
    if len(rule.when) == 1:
        condition = rule.when[0]
        component, measure = condition.component, condition.measure
        if measure is not None:
            component = scorecard.find_measure(measure)[0]
    return {
        "text": f"Capped at {rule.cap_text()} — {_lower_first(reason)}",
        "direction": "negative",
        "impact": round(impact, 1),
        "component": component,
        "measure": measure,
        "cap": rule.name,
    }


def _driver(contribution: tuple[float, str, str, str]) -> dict[str, Any]:
    impact, component, measure, text = contribution
    return {
        "text": text,
        "direction": "negative" if impact < 0 else "positive",
        "impact": round(impact, 1),
        "component": component,
        "measure": measure,
    }


def _live_account_ids(session: Session, as_of: date) -> list[int]:
    end = cutoff(as_of)
    stmt = select(col(Account.id)).where(
        or_(col(Account.deleted_at).is_(None), col(Account.deleted_at) >= end),
        or_(col(Account.created_at).is_(None), col(Account.created_at) < end),
    )
    return [a for (a,) in session.connection().execute(stmt) if a is not None]


HELD_FOR = timedelta(days=92)
"""How far back a previous band is looked for: a band older than a quarter is not held."""


def _previous_bands(
    session: Session, as_of: date, account_ids: Collection[int] | None = None
) -> dict[int, str]:
    """Each account's band at its latest score of the quarter before `as_of` (hysteresis),
    of every account or of `account_ids`.

    Bounded in time, so the work grows with the book, not with its whole score history."""
    mine = [] if account_ids is None else [col(HealthScore.account_id).in_(sorted(account_ids))]
    ranked = select(
        col(HealthScore.account_id),
        col(HealthScore.band),
        func.row_number()
        .over(partition_by=col(HealthScore.account_id), order_by=col(HealthScore.as_of).desc())
        .label("rn"),
    ).where(col(HealthScore.as_of) < as_of, col(HealthScore.as_of) >= as_of - HELD_FOR, *mine)
    inner = ranked.subquery()
    rows = session.connection().execute(
        select(inner.c.account_id, inner.c.band).where(inner.c.rn == 1)
    )
    return {account_id: band for account_id, band in rows}


def _chooser(session: Session, cards: ScorecardSet, as_of: date) -> Callable[[int], Scorecard]:
    """Which scorecard scores each account: one query for the traits, only with a choice."""
    if len(cards.entries) == 1:
        only = cards.scorecards[0]
        return lambda _account_id: only
    traits = {
        account_id: AccountTraits(segment, stage, created)
        for account_id, segment, stage, created in session.connection().execute(
            select(
                col(Account.id),
                col(Account.segment),
                col(Account.lifecycle_stage),
                col(Account.created_at),
            )
        )
    }
    unknown = AccountTraits(None, None, None)
    return lambda account_id: cards.choose(traits.get(account_id, unknown), as_of)


SCORE_CHUNK = 1_000
"""Accounts scored and written at a time, so a large book's scores never sit in memory whole."""


@dataclass
class _RunTally:
    """What the chunks of one scoring run added up to."""

    scored: int = 0
    unscored: int = 0
    confidence: float = 0.0
    bands: Counter[str] = field(default_factory=Counter)

    def add(self, rows: list[dict[str, Any]], unscored: list[int]) -> None:
        self.scored += len(rows)
        self.unscored += len(unscored)
        self.bands.update(row["band"] for row in rows)
        for row in rows:  # one at a time, in order, as a sum over all rows would
            self.confidence += row["confidence"]


def _score_rows(
    chooser: Callable[[int], Scorecard],
    readings: Mapping[str, Mapping[int, Reading]],
    before: Mapping[int, str],
    accounts: Sequence[int],
    as_of: date,
    computed_at: datetime,
) -> tuple[list[dict[str, Any]], list[int]]:
    """The `HealthScore` rows of these accounts, and the accounts without data."""
    rows: list[dict[str, Any]] = []
    unscored: list[int] = []
    by_measure = list(readings.items())
    for account_id in accounts:
        card = chooser(account_id)
        mine = {n: r[account_id] for n, r in by_measure if account_id in r}
        result = compute_score(card, mine, before.get(account_id))
        if result is None:
            unscored.append(account_id)
            continue
        rows.append(
            {
                "account_id": account_id,
                "as_of": as_of,
                "score": result.score,
                "band": result.band,
                "confidence": result.confidence,
                "components": result.components,
                "weights": result.weights,
                "drivers": result.drivers,
                "scorecard_version": card.version,
                "computed_at": computed_at,
            }
        )
    return rows, unscored


def _write_scores(scores: UpsertStream, rows: list[dict[str, Any]]) -> None:
    """Stream a chunk's scores to the store (on PostgreSQL the server stores them while the
    next chunk is computed)."""
    scores.write(rows)


def _finish_scores(
    session: Session, as_of: date, scores: UpsertStream, unscored: list[int]
) -> None:
    """Upsert the day's scores still in the stream; a day re-scored without data must not
    keep a stale score, so the day's rows of accounts without data go."""
    scores.finish()
    for start in range(0, len(unscored), SCORE_CHUNK):
        gone = unscored[start : start + SCORE_CHUNK]
        session.exec(
            delete(HealthScore).where(
                col(HealthScore.as_of) == as_of, col(HealthScore.account_id).in_(gone)
            )
        )


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector for a scoring run: the readings and scores are millions
    of objects without cycles (reference counting frees them), and each full collection
    would walk all of them again, a quarter of a large run's time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def score_accounts(
    db: Engine | Session,
    as_of: date,
    scorecard: Scorecard | ScorecardSet | None = None,
    *,
    account_ids: Collection[int] | None = None,
) -> ScoreRunSummary:
    """Score every account live at the end of `as_of` and store the scores in bulk.

    With a scorecard set, each account is scored by the first scorecard that fits it. Each
    query runs once for all accounts; scores are then computed and streamed to the store
    `SCORE_CHUNK` accounts at a time, so memory holds the readings but never every score.
    With an engine the run is one transaction; with a session the caller commits.

    `account_ids` scores and writes only those accounts (the live ones among them); the
    others' scores stay as they are. Percentile measures still rank among every live peer.
    """
    cards = (
        scorecard
        if isinstance(scorecard, ScorecardSet)
        else ScorecardSet.single(scorecard or load_scorecard())
    )
    computed_at = utcnow()
    tally = _RunTally()
    with _cyclic_gc_paused(), session_for(db) as session:
        live = _live_account_ids(session, as_of)
        wanted = None if account_ids is None else frozenset(account_ids)
        accounts = live if wanted is None else [a for a in live if a in wanted]
        chooser = _chooser(session, cards, as_of)
        readings = read_readings(session, as_of, cards.measures())
        if any(percentile_measures(card) for card in cards.scorecards):
            readings = rank_readings(readings, live, chooser, segments(session))
        before = _previous_bands(session, as_of, wanted)
        unscored: list[int] = []
        with upsert_stream(session, HealthScore, keys=("account_id", "as_of")) as scores:
            for start in range(0, len(accounts), SCORE_CHUNK):
                chunk = accounts[start : start + SCORE_CHUNK]
                rows, without = _score_rows(chooser, readings, before, chunk, as_of, computed_at)
                _write_scores(scores, rows)
                unscored += without
                tally.add(rows, without)
            _finish_scores(session, as_of, scores, unscored)
    return ScoreRunSummary(
        as_of=as_of,
        scorecard_version=", ".join(c.version for c in cards.scorecards),
        accounts=len(accounts),
        scored=tally.scored,
        unscored=tally.unscored,
        bands={band: tally.bands.get(band, 0) for band in ("green", "yellow", "red")},
        mean_confidence=round(tally.confidence / tally.scored, 3) if tally.scored else 0.0,
    )


def backfill(
    engine: Engine, weeks: int, today: date, scorecard: Scorecard | ScorecardSet | None = None
) -> list[ScoreRunSummary]:
    """Score the `weeks` weekly as-of dates ending `today`, oldest first, one run each."""
    scorecard = scorecard or load_scorecard()
    days = [today - timedelta(weeks=k) for k in range(weeks - 1, -1, -1)]
    return [score_accounts(engine, day, scorecard) for day in days]


def explain(session: Session, account_id: int, history: int = 26) -> AccountHealth:
    """The account's latest score and up to `history` scores before it, oldest first."""
    account = session.get(Account, account_id)
    if account is None:
        raise UnknownAccountError(f"no account with id {account_id}")
    stmt = (
        select_models(HealthScore)
        .where(col(HealthScore.account_id) == account_id)
        .order_by(col(HealthScore.as_of).desc())
        .limit(history + 1)
    )
    scores = list(reversed(session.exec(stmt).all()))
    return AccountHealth(account=account, latest=scores[-1] if scores else None, history=scores)


def record_sentiment(
    db: Engine | Session,
    account_id: int,
    sentiment: str,
    note: str = "",
    *,
    author_email: str | None = None,
    origin: str = "cli",
    recorded_at: datetime | None = None,
) -> SentimentEntry:
    """Store a CSM's green/yellow/red call on a live account, with an optional note."""
    value = sentiment.strip().lower()
    if value not in SENTIMENTS:
        raise SentimentError(f"sentiment must be green, yellow or red, not {sentiment!r}")
    with session_for(db) as session:
        account = session.get(Account, account_id)
        if account is None or account.deleted_at is not None:
            raise UnknownAccountError(f"no live account with id {account_id}")
        entry = SentimentEntry(
            account_id=account_id,
            sentiment=value,
            note=note.strip(),
            author_email=author_email,
            origin=origin,
            recorded_at=recorded_at or utcnow(),
        )
        session.add(entry)
        session.flush()
        session.refresh(entry)
    return entry
