"""HubSpot side of the book: companies (two of them archived) and their deals.

Every account has a closed-won new-business deal when its contract began, a closed-won
renewal for each past anniversary, and an open renewal when the next anniversary is at
most 180 days away. A churned account's last renewal is closed-lost on the day it left.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, time, timedelta
from typing import NamedTuple

from sandbox.gen_accounts import Profile, Timeline, add_months, rng
from sandbox.gen_billing import arr_dollars
from sandbox.gen_traits import fragility
from sandbox.records import Company, Deal, Sentiment, TraitChange

__all__ = ["make_companies", "make_deals"]

_INDUSTRIES = (
    "COMPUTER_SOFTWARE",
    "HOSPITAL_HEALTH_CARE",
    "FINANCIAL_SERVICES",
    "RETAIL",
    "LOGISTICS_AND_SUPPLY_CHAIN",
    "MARKETING_AND_ADVERTISING",
    "EDUCATION_MANAGEMENT",
)
_EMPLOYEES = {"Enterprise": (1500, 20000), "Mid-Market": (200, 1500), "Scale": (10, 200)}
_OPEN_STAGES = (
    (30, "contractsent"),
    (60, "decisionmakerboughtin"),
    (90, "presentationscheduled"),
    (120, "qualifiedtobuy"),
    (999, "appointmentscheduled"),
)
_ARCHIVED = (("Quill Stationery", "quill-stationery.test"), ("Vapor Outdoor", "vapor-outdoor.test"))


def _employees(drawn: int, segment: str, fragility: float) -> int:
    """A uniform draw of the segment's range, bent towards its small end for fragile
    accounts (small companies churn more) and towards its large end for sturdy ones."""
    lo, hi = _EMPLOYEES[segment]
    share = math.pow((drawn - lo) / (hi - lo), math.exp(0.8 * fragility))
    return lo + round(share * (hi - lo))


def _renewal(p: Profile, tl: Timeline) -> datetime | None:
    if p.churned_at is not None:
        return None
    if p.is_trial:
        return p.contract_start + timedelta(days=30)
    n = 1
    while add_months(p.contract_start, 12 * n) <= tl.now:
        n += 1
    return add_months(p.contract_start, 12 * n)


def make_companies(
    seed: int,
    tl: Timeline,
    profiles: list[Profile],
    sentiments: tuple[Sentiment, ...],
    traits: tuple[TraitChange, ...] = (),
) -> tuple[Company, ...]:
    """One company per profile, plus two archived ones, in id order. A company was last
    modified after its latest sentiment and its latest custom property change."""
    latest_sentiment = {s.company_id: s for s in sentiments}
    latest_trait: dict[str, datetime] = {}
    for t in traits:
        latest_trait[t.company_id] = max(t.changed_at, latest_trait.get(t.company_id, t.changed_at))
    out: list[Company] = []
    for p in profiles:
        r = rng(seed, "company", p.index)
        last = latest_sentiment.get(p.company_id)
        since = max(p.company_created, tl.now - timedelta(days=365))
        touched = since + (tl.now - timedelta(minutes=20) - since) * r.random()
        if last is not None:
            touched = max(touched, last.recorded_at + timedelta(seconds=r.randint(1, 600)))
        if (changed := latest_trait.get(p.company_id)) is not None:
            touched = max(touched, changed + timedelta(seconds=1))
        employees = _employees(r.randint(*_EMPLOYEES[p.segment]), p.segment, fragility(seed, p))
        stage = (
            "other"
            if p.churned_at
            else "opportunity"
            if p.is_trial
            else ("evangelist" if p.archetype == "healthy" and r.random() < 0.1 else "customer")
        )
        renewal = _renewal(p, tl)
        out.append(
            Company(
                id=p.company_id,
                name=p.name,
                domain=p.domain,
                owner_id=p.owner_id,
                lifecycle_stage=stage,
                segment=p.segment,
                industry=r.choice(_INDUSTRIES),
                employees=employees,
                annual_revenue=employees * r.randint(90, 260) * 1000,
                renewal_date=renewal.date() if renewal else None,
                csm_sentiment=last.sentiment if last else None,
                created_at=p.company_created,
                updated_at=_ms(r, min(touched, tl.now - timedelta(minutes=15))),
            )
        )
    r = rng(seed, "archived")
    top = max(int(p.company_id) for p in profiles)
    for k, (name, domain) in enumerate(_ARCHIVED):
        created = tl.now - timedelta(days=r.randint(400, 900))
        archived = tl.now - timedelta(days=r.randint(5, 90), hours=r.randint(0, 23))
        out.append(
            Company(
                str(top + 1000 * (k + 1)),
                name,
                domain,
                None,
                "other",
                "Scale",
                "RETAIL",
                40,
                4_000_000,
                None,
                None,
                created,
                archived,
                archived,
            )
        )
    return tuple(out)


def _ms(r: random.Random, moment: datetime) -> datetime:
    """A time with milliseconds, as HubSpot keeps them."""
    return moment.replace(microsecond=r.randint(0, 999) * 1000)


class _Draft(NamedTuple):
    created: datetime
    kind: str
    profile: Profile
    label: str
    stage: str
    close: datetime
    closed: bool
    won: bool


def _deal_drafts(r: random.Random, tl: Timeline, p: Profile) -> list[_Draft]:
    close = p.contract_start - timedelta(days=r.randint(0, 10))
    if p.is_trial:
        trial_end = p.contract_start + timedelta(days=30)
        nb = "New Business"
        return [
            _Draft(p.company_created, "newbusiness", p, nb, "contractsent", trial_end, False, False)
        ]
    created = max(close - timedelta(days=r.randint(20, 80)), p.company_created + timedelta(hours=1))
    out = [_Draft(created, "newbusiness", p, "New Business", "closedwon", close, True, True)]
    for n in range(1, 10):
        anniversary = add_months(p.contract_start, 12 * n)
        label, opened = f"Renewal {anniversary.year}", anniversary - timedelta(days=180)
        if p.churned_at is not None and anniversary >= p.churned_at:
            opened = min(opened, p.churned_at - timedelta(days=30))
            out.append(
                _Draft(
                    opened, "existingbusiness", p, label, "closedlost", p.churned_at, True, False
                )
            )
            break
        if anniversary > tl.now + timedelta(days=180):
            break
        if anniversary > tl.now:
            days = (anniversary - tl.now).days
            stage = next(s for limit, s in _OPEN_STAGES if days <= limit)
            out.append(
                _Draft(opened, "existingbusiness", p, label, stage, anniversary, False, False)
            )
            break
        won = anniversary - timedelta(days=r.randint(0, 14))
        out.append(_Draft(opened, "existingbusiness", p, label, "closedwon", won, True, True))
    return out


def make_deals(seed: int, tl: Timeline, profiles: list[Profile]) -> tuple[Deal, ...]:
    """The deals of every account, numbered in creation order."""
    drafts = [d for p in profiles for d in _deal_drafts(rng(seed, "deals", p.index), tl, p)]
    drafts.sort(key=lambda d: (d.created, d.profile.index))
    r = rng(seed, "deal-ids")
    deal_id = 12_800_000_000 + r.randint(0, 99_999)
    out: list[Deal] = []
    latest = tl.now - timedelta(minutes=15)
    for d in drafts:
        deal_id += r.randint(2, 900)
        if d.closed:
            touched = min(latest, d.close + timedelta(hours=r.randint(1, 72)))
        else:
            since = max(d.created, tl.now - timedelta(days=30))
            touched = min(latest, since + timedelta(hours=r.randint(1, 600)))
        created, p, arr = _ms(r, d.created), d.profile, arr_dollars(d.profile)
        out.append(
            Deal(
                id=str(deal_id),
                company_id=p.company_id,
                owner_id=p.owner_id,
                name=f"{p.name} - {d.label}",
                kind=d.kind,
                stage=d.stage,
                pipeline="default",
                amount=arr,
                arr=arr,
                close_date=datetime.combine(d.close.date(), time(), UTC),
                is_closed=d.closed,
                is_won=d.won,
                created_at=created,
                updated_at=max(created, _ms(r, touched)),
            )
        )
    return tuple(out)
