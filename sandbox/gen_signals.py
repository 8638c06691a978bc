"""Product usage weeks and CSM sentiment entries, rendered from account profiles."""

from __future__ import annotations

import random
from datetime import timedelta

from sandbox.gen_accounts import Profile, Timeline, rng
from sandbox.records import Owner, Sentiment, UsageWeek

__all__ = ["make_sentiments", "make_usage"]

_NOTES = {
    "green": (
        "Strong adoption, exec sponsor engaged",
        "QBR went well, talking about expansion",
        "Happy with the rollout, no open issues",
        "Champion very responsive",
    ),
    "yellow": (
        "Usage flat, need a success plan",
        "New admin still ramping up",
        "Some frustration with support response times",
        "Budget review next quarter",
    ),
    "red": (
        "Evaluating a competitor",
        "Escalation open with engineering",
        "Sponsor unresponsive for a month",
    ),
}
_COLORS = {
    "healthy": ((0.85, "green"), (1.0, "yellow")),
    "steady": ((0.4, "green"), (0.9, "yellow"), (1.0, "red")),
    "at_risk": ((0.1, "green"), (0.6, "yellow"), (1.0, "red")),
    "churned": ((0.3, "yellow"), (1.0, "red")),
    "declining": ((0.1, "green"), (0.45, "yellow"), (1.0, "red")),
    "late": ((0.35, "green"), (0.8, "yellow"), (1.0, "red")),
    "billing": ((0.6, "green"), (1.0, "yellow")),
    "silent": ((0.85, "green"), (1.0, "yellow")),
    "trial": ((0.7, "green"), (1.0, "yellow")),
}
_SHARE = {"declining": 0.75, "late": 0.5}
"""Share of accounts of a kind whose CSM entered sentiment; 40% for the others."""
_STORY_SENTIMENT = {
    "churn_risk": ((35, "green", "Smooth quarter, renewal looks routine"),),
    "churned": ((150, "yellow", "Usage dipping, renewal uncertain"),),
    "payment_failed": ((30, "green", "Happy customer, card on file due to expire"),),
    "champion_red": (
        (40, "green", "Strong exec sponsor, expansion talks started"),
        (3, "red", "Champion left, new VP skeptical"),
    ),
    "quiet_healthy": ((20, "green", "All good, low-touch account"),),
}


def make_usage(seed: int, tl: Timeline, profiles: list[Profile]) -> tuple[UsageWeek, ...]:
    """Weekly active users and licensed seats, from the week the contract began until churn."""
    rows: list[UsageWeek] = []
    for p in profiles:
        r = rng(seed, "usage", p.index)
        first = max(0, tl.week_of(p.contract_start))
        last = tl.week_of(p.churned_at) if p.churned_at else 51
        jitter = 0.01 if p.story else 0.04
        for w in range(first, min(last, 51) + 1):
            ramp = min(1.0, 0.45 + 0.1 * (w - tl.week_of(p.contract_start)))
            share = p.adoption[w] * ramp * r.gauss(1.0, jitter)
            active = max(0, min(p.seats, round(p.seats * share)))
            rows.append(UsageWeek(p.company_id, p.domain, tl.weeks[w], active, p.seats))
    return tuple(rows)


def make_sentiments(
    seed: int, tl: Timeline, profiles: list[Profile], owners: tuple[Owner, ...]
) -> tuple[Sentiment, ...]:
    """Entries CSMs made: recent ones for about 40% of accounts, fixed ones for the stories."""
    email = {o.id: o.email for o in owners}
    out: list[Sentiment] = []
    for p in profiles:
        r = rng(seed, "sentiment", p.index)
        author = email[p.owner_id]
        if p.story is not None:
            for days, color, note in _STORY_SENTIMENT[p.story]:
                at = tl.now - timedelta(days=days) + timedelta(hours=15, minutes=r.randint(0, 59))
                out.append(Sentiment(p.company_id, color, note, author, at))
            continue
        if p.rough_patch is not None:
            out += _patch_sentiments(r, tl, p, author)
            continue
        kind = p.churn_kind or p.archetype
        if r.random() >= _SHARE.get(kind, 0.4):
            continue
        end = p.churned_at or tl.now
        for k in range(r.randint(1, 3)):
            days = r.randint(2, 40) + 30 * k
            at = end - timedelta(days=days, hours=r.randint(1, 9), minutes=r.randint(0, 59))
            if at <= p.contract_start:
                break
            color = _color(r, kind)
            out.append(Sentiment(p.company_id, color, r.choice(_NOTES[color]), author, at))
    out.sort(key=lambda s: (s.recorded_at, s.company_id))
    return tuple(out)


def _patch_sentiments(r: random.Random, tl: Timeline, p: Profile, author: str) -> list[Sentiment]:
    """A saved account's CSM entries: worried during the rough patch, green once it is over."""
    assert p.rough_patch is not None
    if r.random() >= 0.7:
        return []
    start, end = p.rough_patch
    worried = tl.week_start(r.randint(start + 1, end)) + timedelta(hours=r.randint(9, 17))
    color = "red" if r.random() < 0.4 else "yellow"
    out = [Sentiment(p.company_id, color, r.choice(_NOTES[color]), author, worried)]
    relieved = tl.week_start(end + r.randint(2, 6)) + timedelta(hours=r.randint(9, 17))
    if relieved < tl.now - timedelta(days=1):
        note = "Recovered: usage back, issues resolved"
        out.append(Sentiment(p.company_id, "green", note, author, relieved))
    return out


def _color(r: random.Random, archetype: str) -> str:
    roll = r.random()
    return next((color for limit, color in _COLORS[archetype] if roll < limit), "yellow")
