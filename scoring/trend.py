"""How scores moved: change over 7, 30 and 90 days, and which measures moved them.

A change is the latest score minus the account's latest score on or before the reference
day (so weekly scores and a missed day still compare). The drivers of a change are the
measures whose points (share of the total times their score) moved most between the two
scores, so a lead can say "down 25 since last month, mostly usage and tickets".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from scoring.scorecard import RESERVED_COMPONENT, RESERVED_NAMES
from store.models import HealthScore

__all__ = ["WINDOWS", "Move", "changes", "moves", "score_on_or_before"]

WINDOWS = (7, 30, 90)


@dataclass(frozen=True)
class Move:
    """One measure's share of a change: points then, points now, and the difference."""

    component: str
    measure: str
    before: float
    after: float

    @property
    def points(self) -> float:
        return round(self.after - self.before, 1)

    def as_dict(self) -> dict[str, Any]:
        return {"component": self.component, "measure": self.measure, "points": self.points}


def score_on_or_before(session: Session, account_id: int, day: date) -> HealthScore | None:
    """The account's latest score as of `day` or earlier."""
    stmt = (
        select(HealthScore)
        .where(col(HealthScore.account_id) == account_id, col(HealthScore.as_of) <= day)
        .order_by(col(HealthScore.as_of).desc())
        .limit(1)
    )
    return session.execute(stmt).scalars().first()


def changes(
    session: Session, as_of: date, windows: tuple[int, ...] = WINDOWS
) -> dict[int, dict[int, float]]:
    """Per account: {days: score as of `as_of` minus score `days` before}, one query a window.

    Accounts without a score on both days have no entry for that window.
    """
    now = _scores_on_or_before(session, as_of)
    result: dict[int, dict[int, float]] = {}
    for days in windows:
        then = _scores_on_or_before(session, as_of - timedelta(days=days))
        for account_id, score in now.items():
            if account_id in then:
                result.setdefault(account_id, {})[days] = round(score - then[account_id], 1)
    return result


def _scores_on_or_before(session: Session, day: date) -> dict[int, float]:
    ranked = (
        select(
            col(HealthScore.account_id),
            col(HealthScore.score),
            func.row_number()
            .over(partition_by=col(HealthScore.account_id), order_by=col(HealthScore.as_of).desc())
            .label("rn"),
        )
        .where(col(HealthScore.as_of) <= day)
        .subquery()
    )
    rows = session.execute(select(ranked.c.account_id, ranked.c.score).where(ranked.c.rn == 1))
    return {account_id: float(score) for account_id, score in rows}


def _points(score: HealthScore) -> dict[tuple[str, str], float]:
    """Each measure's points in the weighted total, and what caps took off it."""
    caps = score.components.get(RESERVED_COMPONENT) or {}
    uncapped = caps.get("uncapped")
    points: dict[tuple[str, str], float] = {}
    if uncapped is not None and float(uncapped) > score.score:
        fired = [f["name"] for f in caps.get("fired", []) if f.get("lowered")]
        points[(RESERVED_COMPONENT, ", ".join(fired) or "cap")] = score.score - float(uncapped)
    for cname, comp in score.components.items():
        if cname in RESERVED_NAMES:
            continue
        for mname, entry in (comp.get("measures") or {}).items():
            if entry.get("score") is not None:
                weight = float(entry.get("effective_weight") or 0.0)
                points[(cname, mname)] = weight * float(entry["score"])
    return points


def moves(latest: HealthScore, baseline: HealthScore, limit: int = 3) -> list[Move]:
    """The measures that moved the score most between `baseline` and `latest`, biggest first,
    in the direction of the change (a measure with data on one side only counts as 0 there)."""
    now, then = _points(latest), _points(baseline)
    found = [
        Move(cname, mname, round(then.get(key, 0.0), 1), round(now.get(key, 0.0), 1))
        for key in {*now, *then}
        for cname, mname in [key]
    ]
    falling = latest.score < baseline.score
    found = [m for m in found if (m.points < 0 if falling else m.points > 0)]
    found.sort(key=lambda m: (-abs(m.points), m.component, m.measure))
    return found[:limit]
