"""Per-feature product usage in long form: logins, module events, help articles read.

What a product analytics export holds, weekly, for each account while it is a customer,
over the 56 complete weeks before `today` (about 13 months): `logins`, events of six
product modules (`feature_reports`, `feature_dashboards`, `feature_exports`,
`feature_integrations`, `feature_automations`, `feature_api`) and `help_articles_read`.
A zero is not a row, as in real event exports. Active users are not repeated here: the
weekly usage CSV delivers them, and the store reads its rows as the `active_users` metric
(a second `active_users` in long form would count twice); the numbers here are drawn from
the same weekly active users.

The signals follow the account's hidden adoption curve (`Profile.adoption`) and its
fragility (`gen_traits`), with the noise real books have:

- Breadth: an account uses some of the six modules (fewer when it is fragile, skipped
  onboarding or is on the starter plan). As its engagement falls it drops modules, the
  least-used first, weeks to months before a churn; as it recovers it takes them up
  again. One retained account in seven narrows for reasons of its own (a team reorganised,
  a workflow moved) and stays; silent and billing churners keep their breadth to the end.
- Depth: events per active user of each module, and logins per active user, fall with
  engagement, with week-to-week noise and a holiday dip at the turn of the year.
- Help articles read rise while onboarding and while an account struggles.
- Gaps: about one account in twenty-five sends no usage feed at all, and one in twenty
  started sending it only some months into the year; a module is idle some weeks and an
  unused one is tried now and then.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

from sandbox.gen_accounts import Profile, Timeline, rng
from sandbox.gen_traits import AccountTraits, fragility
from sandbox.records import MetricValue, UsageWeek

__all__ = ["FEATURES", "HISTORY_WEEKS", "METRICS", "make_metrics"]

FEATURES = (
    "feature_reports",
    "feature_dashboards",
    "feature_exports",
    "feature_integrations",
    "feature_automations",
    "feature_api",
)
METRICS = ("logins", *FEATURES, "help_articles_read")
HISTORY_WEEKS = 56
"""Complete weeks of usage before `today`: the 52 of the timeline and 4 before them."""
_POPULARITY = (1.0, 0.85, 0.6, 0.45, 0.35, 0.25)
_EVENTS_PER_USER = (2.0, 3.0, 0.8, 1.5, 4.0, 20.0)
_PLAN_BREADTH = {"starter": -0.6, "growth": 0.0, "enterprise": 0.6}


def _week_day(tl: Timeline, w: int) -> date:
    """The Monday of week `w` (negative: before the timeline's first week)."""
    return tl.weeks[0] + timedelta(days=7 * w)


def _poisson(r: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(r.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, r.random()
    while p > limit:
        k += 1
        p *= r.random()
    return k


def _holiday(day: date) -> float:
    """Less use in the week that holds Christmas or New Year's Day."""
    end = day + timedelta(days=6)
    turn = any((d.month, d.day) in ((12, 25), (1, 1)) for d in (day, end)) or (
        day.month == 12 and day.day >= 22
    )
    return 0.55 if turn else 1.0


def _engagement(p: Profile) -> list[float]:
    """Adoption of each week relative to the account's best: 1 at full use."""
    top = max(p.adoption) or 1.0
    return [max(0.0, min(1.0, a / top)) for a in p.adoption]


def _breadth_share(e: float) -> float:
    """The share of its modules an account keeps at engagement `e`."""
    return max(0.0, min(1.0, (e - 0.3) / 0.6))


def _active_users(r: random.Random, tl: Timeline, p: Profile, w: int) -> int:
    """Active users of a week before the weekly usage CSV begins, drawn the same way."""
    ramp = min(1.0, 0.45 + 0.1 * (w - tl.week_of(p.contract_start)))
    return max(0, min(p.seats, round(p.seats * p.adoption[0] * ramp * r.gauss(1.0, 0.04))))


def _account_metrics(
    seed: int, tl: Timeline, p: Profile, t: AccountTraits, weekly: dict[date, int]
) -> list[MetricValue]:
    r = rng(seed, "features", p.index)
    z = fragility(seed, p)
    feed = r.random()
    if p.story is None and feed < 0.04:
        return []  # no usage feed for this account
    first = max(-4, tl.week_of(p.contract_start))
    if p.story is None and feed > 0.95:
        first = max(first, r.randint(8, 30))  # the feed was connected during the year
    last = min(51, tl.week_of(p.churned_at)) if p.churned_at else 51
    plan = t.plan_history[0][1]
    breadth = r.gauss(4.3 - 0.7 * z + _PLAN_BREADTH[plan] - (0 if t.onboarded else 0.9), 1.0)
    adopted = max(1, min(6, round(breadth)))
    if p.story in ("champion_red", "quiet_healthy", "payment_failed"):
        adopted = max(adopted, 4)
    order = list(range(6))
    keys = [r.random() ** (1.0 / w) for w in _POPULARITY]
    order.sort(key=lambda m: -keys[m])
    intensity = [e * math.exp(r.gauss(0.0, 0.5)) for e in _EVENTS_PER_USER]
    per_user_logins = 3.2 * math.exp(r.gauss(0.0, 0.3))
    narrowing: tuple[int, int, int] | None = None
    if p.churned_at is None and p.story is None and r.random() < 0.15:
        start = r.randint(4, 46)
        back = start + r.randint(6, 30) if r.random() < 0.3 else 99
        narrowing = (start, back, r.randint(1, 2))
    keeps = p.churn_kind in ("silent", "billing")
    since_start = tl.week_of(p.contract_start)
    engagement = _engagement(p)
    gauss, company, domain = r.gauss, p.company_id, p.domain
    out: list[MetricValue] = []
    for w in range(first, last + 1):
        day = _week_day(tl, w)
        active = weekly.get(day)
        if active is None:
            active = _active_users(r, tl, p, w)
        e = 1.0 if keeps else engagement[max(0, w)]
        dip = _holiday(day)
        share = _breadth_share(e)
        keep = round(adopted * share + gauss(0.0, 0.35)) if active else 0
        if narrowing and narrowing[0] <= w < narrowing[1]:
            keep -= narrowing[2]
        keep = max(1 if active else 0, min(adopted, keep))
        using = set(order[:keep])
        rows: list[tuple[str, int]] = []
        logins = active * per_user_logins * e**0.6 * dip * math.exp(gauss(0.0, 0.15))
        rows.append(("logins", round(logins)))
        for m, name in enumerate(FEATURES):
            if m in using and r.random() > 0.07:
                mean = active * intensity[m] * e**0.5 * dip * math.exp(gauss(0.0, 0.35))
                rows.append((name, max(1, round(mean))))
            elif active and r.random() < 0.03:
                rows.append((name, r.randint(1, 3)))
        onboarding = 2.5 if 0 <= w - since_start < 8 else 1.0
        reads = active * 0.04 * onboarding * (1.0 + 3.0 * (1.0 - e))
        rows.append(("help_articles_read", _poisson(r, reads)))
        out += [MetricValue(company, domain, day, m, v, 7) for m, v in rows if v > 0]
    return out


def make_metrics(
    seed: int,
    tl: Timeline,
    profiles: list[Profile],
    traits: dict[str, AccountTraits],
    usage: tuple[UsageWeek, ...],
) -> tuple[MetricValue, ...]:
    """Every account's weekly usage metrics, by account, then week, then metric."""
    weekly: dict[str, dict[date, int]] = {}
    for u in usage:
        weekly.setdefault(u.company_id, {})[u.week_start] = u.active_users
    out: list[MetricValue] = []
    for p in profiles:
        if p.is_trial and tl.week_of(p.contract_start) > 51:
            continue
        rows = _account_metrics(seed, tl, p, traits[p.company_id], weekly.get(p.company_id, {}))
        out += sorted(rows, key=lambda m: (m.day, m.metric))
    return tuple(out)
