"""Survey answers: quarterly NPS from a few contacts per account, CSAT after some tickets.

NPS (0-10): a relationship survey goes to each account's contacts once a quarter (each
account on its own week of the quarter); a contact answers a wave about one time in three
to two in three, so answer counts vary, and about one account in seven never answers at
all. A score leans on the account's hidden fragility and on how engaged it is at the time
(`Profile.adoption`), plus the contact's own leaning (every account has its grumpy and its
cheerful people) and plain noise: detractors (0-6) are more common among churners, yet
plenty of detractors stay and some churners are promoters until the end.

CSAT (1-5): a post-ticket survey tool, separate from the helpdesk's own good/bad rating,
asks about some solved tickets the helpdesk did not rate; it knows the requester's email
domain, not the CRM id. Scores lean on the account's share of unhappy support.
"""

from __future__ import annotations

from datetime import timedelta

from sandbox.gen_accounts import Profile, Timeline, rng
from sandbox.gen_traits import fragility
from sandbox.records import Organization, SurveyAnswer, Ticket, ZendeskUser

__all__ = ["make_surveys"]

_FIRST = ("alex", "sam", "jordan", "taylor", "morgan", "casey", "riley", "jamie", "quinn",
          "avery", "devon", "harper", "kai", "robin", "sasha")  # fmt: skip
_LAST = ("reyes", "kim", "novak", "silva", "obi", "park", "berg", "costa", "walsh", "haas",
         "lund", "roy")  # fmt: skip
_CONTACTS = {"Enterprise": (2, 5), "Mid-Market": (1, 4), "Scale": (1, 2)}
_NPS_COMMENTS = {
    "promoter": ("Love the dashboards", "Saves our team hours every week", "Great support"),
    "passive": ("Does the job", "Some features are hard to find", ""),
    "detractor": ("Too expensive for what we use", "Reporting is slow", "Missing integrations"),
}
_CSAT_COMMENTS = {
    1: ("Took days to get an answer",),
    2: ("Issue not really solved",),
    3: ("",),
    4: ("Thanks",),
    5: ("Quick and helpful", "Great, thank you"),
}


def _band(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def _nps(seed: int, tl: Timeline, p: Profile) -> list[SurveyAnswer]:
    r = rng(seed, "nps", p.index)
    z = fragility(seed, p)
    silent = 0.12 + 0.08 * (z > 1.0)
    if p.story is None and r.random() < silent:
        return []  # never answers
    lo, hi = _CONTACTS[p.segment]
    contacts = [
        (f"{first}.{r.choice(_LAST)}@{p.domain}", r.gauss(0.0, 1.0))
        for first in r.sample(_FIRST, r.randint(lo, hi))
    ]
    answer_rate = r.uniform(0.3, 0.65)
    offset = r.randint(0, 12)
    end = p.churned_at or tl.now
    out: list[SurveyAnswer] = []
    for wave, week in enumerate(range(offset - 13, 52, 13)):
        sent = tl.week_start(week) + timedelta(days=1, hours=r.randint(8, 12))
        if sent <= p.contract_start + timedelta(days=30) or sent >= end:
            continue
        top = max(p.adoption) or 1.0
        engaged = p.adoption[max(0, week)] / top
        for k, (email, bias) in enumerate(contacts):
            if r.random() >= answer_rate:
                continue
            at = sent + timedelta(hours=r.uniform(1, 240))
            if at >= min(end, tl.now):
                continue
            mean = 8.4 - 0.9 * z - 3.0 * (1.0 - engaged) + 0.9 * bias
            score = max(0, min(10, round(r.gauss(mean, 1.4))))
            comment = r.choice(_NPS_COMMENTS[_band(score)]) if r.random() < 0.35 else ""
            out.append(
                SurveyAnswer(
                    id=f"nps-{p.company_id}-{wave}-{k}",
                    company_id=p.company_id,
                    account_id=p.company_id,
                    domain=p.domain,
                    kind="nps",
                    score=score,
                    scale_max=10,
                    responded_at=at.replace(microsecond=0),
                    email=email,
                    comment=comment,
                )
            )
    return out


def _csat(
    seed: int,
    tl: Timeline,
    by_company: dict[str, Profile],
    organizations: tuple[Organization, ...],
    users: tuple[ZendeskUser, ...],
    tickets: tuple[Ticket, ...],
) -> list[SurveyAnswer]:
    company_of = {o.id: o.company_id for o in organizations}
    email_of = {u.id: u.email for u in users}
    leaning = {c: fragility(seed, p) for c, p in by_company.items()}
    r = rng(seed, "csat")
    out: list[SurveyAnswer] = []
    for t in tickets:
        if t.status not in ("solved", "closed") or t.satisfaction_score != "unoffered":
            continue
        p = by_company.get(company_of.get(t.organization_id or 0) or "")
        if p is None or r.random() >= 0.22:
            continue
        solved = t.updated_at - timedelta(days=4 if t.status == "closed" else 0)
        at = solved + timedelta(hours=r.uniform(0.5, 36))
        if at >= tl.now - timedelta(minutes=30):
            continue
        unhappy = r.random() < p.bad_csat + 0.03 * leaning[p.company_id]
        score = r.choice((1, 2, 2, 3)) if unhappy else r.choice((3, 4, 4, 5, 5, 5))
        comment = r.choice(_CSAT_COMMENTS[score]) if r.random() < 0.3 else ""
        out.append(
            SurveyAnswer(
                id=f"csat-{t.id}",
                company_id=p.company_id,
                account_id=None,
                domain=p.domain,
                kind="csat",
                score=score,
                scale_max=5,
                responded_at=at.replace(microsecond=0),
                email=email_of.get(t.requester_id, f"support@{p.domain}"),
                comment=comment,
            )
        )
    return out


def make_surveys(
    seed: int,
    tl: Timeline,
    profiles: list[Profile],
    organizations: tuple[Organization, ...],
    users: tuple[ZendeskUser, ...],
    tickets: tuple[Ticket, ...],
) -> tuple[SurveyAnswer, ...]:
    """Every NPS and CSAT answer of the book, oldest first."""
    answers = [a for p in profiles for a in _nps(seed, tl, p)]
    by_company = {p.company_id: p for p in profiles}
    answers += _csat(seed, tl, by_company, organizations, users, tickets)
    answers.sort(key=lambda a: (a.responded_at, a.id))
    return tuple(answers)
