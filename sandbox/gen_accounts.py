"""Who the customers are: teams, owners and one latent profile per account.

A `Profile` is the hidden truth every generator reads: segment, seats, contract dates,
how adoption and ticket load move week by week, and which planted story (if any) the
account tells. CRM, helpdesk, billing and usage records are all rendered from it, so
they agree with each other. Randomness comes from named `random.Random` streams seeded
with strings, which makes the output independent of call order and of `PYTHONHASHSEED`.
"""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sandbox.gen_churn import plan_churn, plan_patch
from sandbox.records import Owner, Team

__all__ = [
    "SEGMENTS",
    "Profile",
    "Timeline",
    "add_months",
    "make_owners",
    "make_profiles",
    "make_timeline",
    "rng",
]

SEGMENTS = ("Enterprise", "Mid-Market", "Scale")
_TEAM_IDS = ("4201001", "4201002", "4201003")
_FIRST = (
    "Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Imani", "Jonas", "Kira",
    "Luis", "Maya", "Noah", "Olga"
)  # fmt: skip
_LAST = (
    "Adler", "Brooks", "Castillo", "Dubois", "Eze", "Fischer", "Gupta", "Hale", "Ivanova",
    "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor"
)  # fmt: skip
_PREFIX = (
    "Acme", "Aster", "Beacon", "Birch", "Bright", "Cedar", "Cobalt", "Copper", "Crest",
    "Delta", "Ember", "Falcon", "Fern", "Granite", "Harbor", "Helix", "Indigo", "Juniper",
    "Kestrel", "Lumen", "Maple", "Meridian", "Nimbus", "Northwind", "Onyx", "Orbit", "Pioneer",
    "Quartz", "Radiant", "Redwood", "Sable", "Summit", "Tidal", "Topaz", "Umber", "Vertex",
    "Willow", "Xenon", "Yarrow", "Zephyr"
)  # fmt: skip
_SUFFIX = (
    "Analytics", "Bakeries", "Biotech", "Builders", "Capital", "Clinics", "Cloud", "Dynamics",
    "Energy", "Foods", "Freight", "Games", "Health", "Insurance", "Labs", "Learning",
    "Logistics", "Media", "Motors", "Networks", "Outfitters", "Pharma", "Realty", "Retail",
    "Robotics", "Security", "Software", "Studios", "Travel", "Works"
)  # fmt: skip
_SEATS = {"Enterprise": (150, 600), "Mid-Market": (40, 150), "Scale": (5, 40)}
_YEARLY_SHARE = {"Enterprise": 0.8, "Mid-Market": 0.5, "Scale": 0.2}
STORY_SEGMENTS = {
    "churn_risk": "Mid-Market",
    "churned": "Mid-Market",
    "payment_failed": "Scale",
    "champion_red": "Enterprise",
    "quiet_healthy": "Scale",
}


def rng(seed: int, *parts: object) -> random.Random:
    """A random stream named by the seed and `parts`, independent of every other stream."""
    return random.Random("|".join([str(seed), *map(str, parts)]))


def add_months(start: datetime, months: int) -> datetime:
    """`start` moved by whole months, the day clamped to the month's end (Stripe-style)."""
    total = start.month - 1 + months
    year, month = start.year + total // 12, total % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


@dataclass(frozen=True)
class Timeline:
    """`now` is midnight UTC of `today`; `weeks` are the 52 complete weeks before it."""

    today: date
    now: datetime
    weeks: tuple[date, ...]

    @property
    def current_week(self) -> date:
        return self.weeks[-1] + timedelta(days=7)

    def week_start(self, index: int) -> datetime:
        """Start of week `index` (52 is the current, partial week) as a datetime."""
        return datetime.combine(self.weeks[0] + timedelta(days=7 * index), time(), UTC)

    def week_of(self, moment: datetime) -> int:
        """The index of the week containing `moment` (negative before the first week)."""
        return (moment.date() - self.weeks[0]).days // 7


def make_timeline(today: date) -> Timeline:
    monday = today - timedelta(days=today.weekday())
    last = monday - timedelta(days=7)
    weeks = tuple(last - timedelta(days=7 * (51 - i)) for i in range(52))
    return Timeline(today=today, now=datetime.combine(today, time(), UTC), weeks=weeks)


@dataclass(frozen=True)
class Profile:
    """The hidden truth of one account. Week-indexed tuples have 53 entries (52 = this week)."""

    index: int
    company_id: str
    name: str
    domain: str
    segment: str
    owner_id: str
    archetype: str
    story: str | None
    seats: int
    interval: str
    coupon: int | None
    company_created: datetime
    contract_start: datetime
    churned_at: datetime | None
    adoption: tuple[float, ...]
    ticket_rate: tuple[float, ...]
    urgent_share: tuple[float, ...]
    bad_csat: float
    failing_payment: bool
    zendesk_domain_only: bool
    stripe_email_only: bool
    exact_tickets: dict[int, tuple[int, int]] = field(default_factory=dict)
    churn_kind: str | None = None
    """How a churned account got there: declining, late, billing or silent (`gen_churn`)."""
    rough_patch: tuple[int, int] | None = None
    """The weeks of a recovered account's rough patch (`gen_churn`)."""

    @property
    def is_trial(self) -> bool:
        return self.archetype == "trial"


def make_owners(seed: int, tl: Timeline) -> tuple[tuple[Team, ...], tuple[Owner, ...]]:
    """Three teams of one lead and four CSMs each; the leads own no accounts."""
    r = rng(seed, "owners")
    firsts, lasts = list(_FIRST), list(_LAST)
    r.shuffle(firsts)
    r.shuffle(lasts)
    teams: list[Team] = []
    owners: list[Owner] = []
    for t, (team_id, team_name) in enumerate(zip(_TEAM_IDS, SEGMENTS, strict=True)):
        members: list[Owner] = []
        for m in range(5):
            n = t * 5 + m
            first, last = firsts[n], lasts[n]
            created = tl.now - timedelta(days=r.randint(400, 1500), minutes=r.randint(0, 1440))
            updated = created + (tl.now - created) * r.random()
            members.append(
                Owner(
                    id=str(70_100_000 + 1_013 * n + r.randint(0, 999)),
                    user_id=9_100_000 + 17 * n + r.randint(0, 9),
                    email=f"{first.lower()}.{last.lower()}@example-cs.test",
                    first_name=first,
                    last_name=last,
                    team_id=team_id,
                    team_name=team_name,
                    is_lead=m == 0,
                    created_at=created.replace(microsecond=0),
                    updated_at=updated.replace(microsecond=0),
                )
            )
        teams.append(Team(id=team_id, name=team_name, lead_id=members[0].id))
        owners.extend(members)
    return tuple(teams), tuple(owners)


def _curve(base: float, floor: float, start: int, end: int, weeks: int = 53) -> list[float]:
    """Flat at `base`, then an accelerating (cubic) fall to `floor` from week `start` to `end`."""
    out = []
    for w in range(weeks):
        if w <= start:
            out.append(base)
        elif w >= end:
            out.append(floor)
        else:
            out.append(base - (base - floor) * ((w - start) / (end - start)) ** 3)
    return out


def make_profiles(seed: int, tl: Timeline, owners: tuple[Owner, ...], count: int) -> list[Profile]:
    """One profile per account, with the five planted stories on fixed accounts."""
    r = rng(seed, "profiles")
    names = r.sample([f"{p} {s}" for p in _PREFIX for s in _SUFFIX], count)
    csms = {seg: [o for o in owners if o.team_name == seg and not o.is_lead] for seg in SEGMENTS}
    next_id = 5_300_000_000 + r.randint(0, 99_999)
    story_of: dict[int, str] = {}
    for story, seg in STORY_SEGMENTS.items():
        i = next(i for i in range(count) if SEGMENTS[i % 3] == seg and i not in story_of)
        story_of[i] = story
    profiles = []
    for i, name in enumerate(names):
        next_id += r.randint(3, 4000)
        segment = SEGMENTS[i % 3]
        owner = csms[segment][(i // 3) % 4]
        profiles.append(_profile(seed, tl, i, str(next_id), name, segment, owner.id, story_of))
    return profiles


def _profile(
    seed: int,
    tl: Timeline,
    i: int,
    company_id: str,
    name: str,
    segment: str,
    owner_id: str,
    story_of: dict[int, str],
) -> Profile:
    r = rng(seed, "profile", i)
    story = story_of.get(i)
    lo, hi = _SEATS[segment]
    seats = r.randint(lo, hi)
    interval = "year" if r.random() < _YEARLY_SHARE[segment] else "month"
    roll = r.random()
    archetype = (
        "healthy"
        if roll < 0.54
        else "steady"
        if roll < 0.74
        else "at_risk"
        if roll < 0.80
        else "recovered"
        if roll < 0.85
        else "churned"
        if roll < 0.97
        else "trial"
    )
    at = time(r.randint(8, 17), r.randint(0, 59))
    created = tl.now - timedelta(days=r.randint(150, 3 * 365 - 5))
    contract = datetime.combine((created + timedelta(days=r.randint(20, 90))).date(), at, UTC)
    churned_at: datetime | None = None
    exact: dict[int, tuple[int, int]] = {}
    base = r.uniform(0.72, 0.93)
    lam = min(2.2, 0.1 + seats / 200) * r.uniform(0.8, 1.2)
    adoption = [base] * 53
    rate = [lam] * 53
    urgent = [0.03] * 53
    bad = r.uniform(0.05, 0.15)
    failing = False
    churn_kind: str | None = None
    rough_patch: tuple[int, int] | None = None
    if story is not None:
        archetype = "story"
        at = time(10, 0)
        if story in ("churn_risk", "churned"):
            anniversary = (
                datetime.combine(tl.today + timedelta(days=45), at, UTC)
                if story == "churn_risk"
                else tl.now - timedelta(days=120) + timedelta(hours=10)
            )
            interval, contract = "year", add_months(anniversary, -24)
            last = 51 if story == "churn_risk" else tl.week_of(anniversary)
            adoption = _curve(0.86, 0.30, last - 10, last)
            rate = [0.6] * 53
            for k, (n, u) in enumerate(((1, 0), (2, 0), (3, 1), (4, 1), (6, 2), (8, 3))):
                exact[last - 5 + k] = (n, u)
            bad = 0.5
            if story == "churned":
                churned_at = anniversary
        elif story == "payment_failed":
            interval, seats = "month", 24
            latest = datetime.combine(tl.today - timedelta(days=3), time(9, 0), UTC)
            k = next(k for k in range(16, 40) if add_months(latest, -k).day == latest.day)
            contract = add_months(latest, -k)
            adoption, rate, failing = [0.84] * 53, [0.25] * 53, True
        elif story == "champion_red":
            interval, seats = "year", 320
            contract = add_months(datetime.combine(tl.today + timedelta(days=150), at, UTC), -24)
            adoption, rate, bad = [0.92] * 53, [1.0] * 53, 0.02
        else:  # quiet_healthy
            interval, seats = "month", 18
            contract = datetime.combine(tl.today - timedelta(days=500), at, UTC)
            adoption, rate, bad = [0.85] * 53, [0.1] * 53, 0.0
        created = contract - timedelta(days=60)
    elif archetype == "steady":
        adoption = [r.uniform(0.45, 0.7)] * 53
        rate = [lam * 1.2] * 53
        bad = r.uniform(0.15, 0.3)
    elif archetype == "at_risk":
        span = r.randint(6, 14)
        adoption = _curve(r.uniform(0.6, 0.8), r.uniform(0.25, 0.45), 52 - span, 52)
        rate = [lam * (1 + 2 * max(0, w - 46) / 6) for w in range(53)]
        urgent = [0.03 + 0.2 * max(0, w - 46) / 6 for w in range(53)]
        bad = r.uniform(0.3, 0.5)
        failing = interval == "month" and r.random() < 0.15
    elif archetype == "churned":
        plan = plan_churn(r, tl.now, tl.week_of, interval, at, lam, add_months)
        churn_kind, churned_at, interval = plan.kind, plan.churned_at, plan.interval
        contract = plan.contract_start
        created = contract - timedelta(days=r.randint(20, 90))
        adoption, rate, urgent = (
            list(plan.adoption),
            list(plan.ticket_rate),
            list(plan.urgent_share),
        )
        bad, failing = plan.bad_csat, plan.failing_payment
    elif archetype == "recovered":
        patch = plan_patch(r, base, lam)
        rough_patch = (patch.start, patch.end)
        adoption, rate, urgent = (
            list(patch.adoption),
            list(patch.ticket_rate),
            list(patch.urgent_share),
        )
        bad = patch.bad_csat
    elif archetype == "trial":
        created = tl.now - timedelta(days=r.randint(12, 26))
        contract = datetime.combine((created + timedelta(days=2)).date(), at, UTC)
        adoption = [0.45] * 53
        rate = [lam * 1.5] * 53
    coupon = (r.randint(0, 2) if r.random() < 0.15 else None) if story is None else None
    domain = name.lower().replace(" ", "-") + ".test"
    plain = story is None
    return Profile(
        index=i,
        company_id=company_id,
        name=name,
        domain=domain,
        segment=segment,
        owner_id=owner_id,
        archetype=archetype,
        story=story,
        seats=seats,
        interval=interval,
        coupon=coupon,
        company_created=created.replace(microsecond=0) + timedelta(seconds=r.randint(0, 3599)),
        contract_start=contract,
        churned_at=churned_at,
        adoption=tuple(adoption),
        ticket_rate=tuple(rate),
        urgent_share=tuple(urgent),
        bad_csat=bad,
        failing_payment=failing,
        zendesk_domain_only=plain and r.random() < 0.1,
        stripe_email_only=plain and r.random() < 0.1,
        exact_tickets=exact,
        churn_kind=churn_kind,
        rough_patch=rough_patch,
    )
