"""Zendesk side of the book: organizations, requesters, tickets and satisfaction ratings.

Ticket volume follows each profile's weekly rate (Poisson) or a story's exact counts.
A ticket's status follows from its age and a random resolution time; solved tickets close
four days after solving, as Zendesk's default automation does. Nothing is updated in the
last ten minutes before `now`, so the export's one-minute hold never hides book data.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sandbox.gen_accounts import Profile, Timeline, rng
from sandbox.records import Organization, SatisfactionRating, Ticket, ZendeskUser

__all__ = ["Support", "make_support"]

_TOPICS = (
    ("how-to", ("How do I export a report?", "Setting up SSO", "Where are the audit logs?")),
    ("bug", ("Error when saving a dashboard", "Charts not loading", "Import fails halfway")),
    ("billing", ("Question about our latest invoice", "Update billing contact", "Add seats")),
    ("feature-request", ("Request: bulk edit", "Request: more granular roles")),
    ("integration", ("CRM sync is failing", "Webhook deliveries delayed")),
    ("outage", ("Cannot log in", "Service down for all users", "Very slow since this morning")),
)  # fmt: skip
_UNMATCHED = (
    ("Northwind Reseller", "northwind-reseller.test"),
    ("Contoso Partners", "contoso-partners.test"),
    ("Fabrikam Trial Group", "fabrikam-trial.test"),
    ("Tailspin Consulting", "tailspin-consulting.test"),
)
_GROUPS = (21_400_001, 21_400_002, 21_400_003)
_AGENTS = (38_900_101, 38_900_102, 38_900_103, 38_900_104, 38_900_105, 38_900_106)
_PEOPLE = ("alex", "sam", "jordan", "casey", "riley", "morgan", "taylor", "jamie")
_GOOD = ("Quick and helpful, thanks!", "Solved my problem", "")
_BAD = ("Took far too long", "Problem is not actually fixed", "")


@dataclass
class Support:
    organizations: tuple[Organization, ...]
    users: tuple[ZendeskUser, ...]
    tickets: tuple[Ticket, ...]
    ratings: tuple[SatisfactionRating, ...]


@dataclass
class _Draft:
    org: int | None
    requester: int
    agent: int
    group: int
    subject: str
    tag: str
    channel: str
    status: str
    priority: str | None
    created: datetime
    updated: datetime
    score: str
    rated_at: datetime | None
    comment: str


def _poisson(r: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, r.random()
    while p > limit:
        k += 1
        p *= r.random()
    return k


def make_support(seed: int, tl: Timeline, profiles: list[Profile]) -> Support:
    """Organizations for every account (and four that match none), with a year of tickets."""
    r = rng(seed, "zendesk")
    orgs: list[Organization] = []
    users: list[ZendeskUser] = []
    drafts: list[_Draft] = []
    org_id, user_id = 360_010_000_000 + r.randint(0, 9999), 380_020_000_000 + r.randint(0, 9999)
    accounts: list[tuple[Profile | None, str, str]] = [(p, p.name, p.domain) for p in profiles]
    accounts += [(None, name, domain) for name, domain in _UNMATCHED]
    for n, (p, name, domain) in enumerate(accounts):
        ar = rng(seed, "zendesk", n)
        org_id += ar.randint(1, 90_000)
        since = p.contract_start if p else tl.now - timedelta(days=ar.randint(60, 300))
        created = since - timedelta(hours=ar.randint(1, 120))
        updated = created + (tl.now - timedelta(minutes=15) - created) * ar.random()
        external = p.company_id if p and not p.zendesk_domain_only else None
        orgs.append(
            Organization(
                org_id, name, external, (domain,), p.company_id if p else None, created, updated
            )
        )
        people: list[int] = []
        for who in ar.sample(_PEOPLE, ar.randint(2, 5)):
            user_id += ar.randint(1, 5000)
            people.append(user_id)
            users.append(ZendeskUser(user_id, org_id, who.title(), f"{who}@{domain}"))
        drafts += _tickets(ar, tl, p, org_id, people, since)
    drafts.sort(key=lambda d: (d.created, d.org or 0))
    tickets, ratings = _finish(drafts)
    return Support(tuple(orgs), tuple(users), tickets, ratings)


def _tickets(
    r: random.Random, tl: Timeline, p: Profile | None, org: int, people: list[int], since: datetime
) -> list[_Draft]:
    latest = tl.now - timedelta(minutes=15)
    stop = min(latest, p.churned_at + timedelta(days=14)) if p and p.churned_at else latest
    out: list[_Draft] = []
    for w in range(53):
        start = max(tl.week_start(w), since)
        end = min(tl.week_start(w + 1), stop)
        if end <= start:
            continue
        share = (end - start) / timedelta(days=7)
        if p is not None and w in p.exact_tickets:
            count, urgent = p.exact_tickets[w]
        else:
            count = _poisson(r, (p.ticket_rate[w] if p else 0.1) * share)
            urgent = sum(r.random() < (p.urgent_share[w] if p else 0.03) for _ in range(count))
        for k in range(count):
            created = start + (end - start) * r.random()
            out.append(_draft(r, tl, p, org, people, created.replace(microsecond=0), k < urgent))
    return out


def _draft(
    r: random.Random,
    tl: Timeline,
    p: Profile | None,
    org: int,
    people: list[int],
    created: datetime,
    urgent: bool,
) -> _Draft:
    latest = tl.now - timedelta(minutes=10)
    tag, subjects = _TOPICS[5 if urgent else r.randrange(5)]
    priority = (
        "urgent" if urgent else r.choices(("high", "normal", "low", None), (12, 50, 15, 20))[0]
    )
    solved = created + timedelta(hours=1 + r.expovariate(1 / 30))
    status, score, rated, comment = "open", "unoffered", None, ""
    if solved <= latest:
        closed = solved + timedelta(days=4)
        status, updated = ("closed", closed) if closed <= latest else ("solved", solved)
        if r.random() < 0.4:
            score, rated = "offered", solved + timedelta(hours=r.uniform(1, 48))
            if r.random() < 0.6 and rated <= latest:
                score = "bad" if r.random() < (p.bad_csat if p else 0.2) else "good"
                comment = r.choice(_BAD if score == "bad" else _GOOD)
                updated = max(updated, rated)
            else:
                rated = None
    else:
        age = latest - created
        status = (
            "new"
            if age < timedelta(hours=6)
            else r.choices(("open", "pending", "hold"), (50, 35, 15))[0]
        )
        updated = created + age * r.random()
    if r.random() < 0.004:
        status = "deleted"
    return _Draft(
        org,
        r.choice(people),
        r.choice(_AGENTS),
        r.choice(_GROUPS),
        r.choice(subjects),
        tag,
        r.choice(("email", "web", "api")),
        status,
        priority,
        created,
        updated.replace(microsecond=0),
        score,
        rated,
        comment,
    )


def _finish(drafts: list[_Draft]) -> tuple[tuple[Ticket, ...], tuple[SatisfactionRating, ...]]:
    """Number tickets in creation order and ratings in rating order, then freeze both."""
    rated = sorted(
        (
            (d.rated_at, 10_001 + n)
            for n, d in enumerate(drafts)
            if d.rated_at and d.score in ("good", "bad")
        ),
    )
    rating_id = {ticket: 7_000_000_001 + 7 * k for k, (_, ticket) in enumerate(rated)}
    tickets, ratings = [], []
    for n, d in enumerate(drafts):
        tid = 10_001 + n
        rid = rating_id.get(tid)
        tickets.append(
            Ticket(
                tid,
                d.org,
                d.requester,
                d.agent,
                d.group,
                d.subject,
                d.status,
                d.priority,
                d.score,
                rid,
                (d.tag,),
                d.channel,
                d.created,
                d.updated,
            )
        )
        if rid is not None and d.rated_at is not None:
            at = d.rated_at.replace(microsecond=0)
            ratings.append(
                SatisfactionRating(
                    rid, tid, d.requester, d.agent, d.group, d.score, d.comment, at, at
                )
            )
    ratings.sort(key=lambda s: s.id)
    return tuple(tickets), tuple(ratings)
