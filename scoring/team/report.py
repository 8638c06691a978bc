"""`team_report`: whose is what, and every CSM's and team's figures over a period.

Runs the period's queries in one session, files each account, alert and task under its
owner (a known CSM by email, or "(unowned)"), groups the CSMs by team and adds each book up
with `scoring.team.figures`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session

from scoring.measures import cutoff
from scoring.metrics import TicketTimes
from scoring.team import queries
from scoring.team.figures import (
    ONBOARDING_WINDOW,
    AccountBook,
    PeriodFacts,
    account_book,
    book_figures,
    missing_currencies,
)
from scoring.team.periods import Period
from scoring.team.queries import Person, TeamKey
from scoring.team.results import (
    NO_TEAM,
    UNOWNED,
    BookFigures,
    CsmPerformance,
    TeamPerformance,
    TeamReport,
    TeamReportError,
)
from store.models import Team
from store.money import Rates

__all__ = ["RENEWAL_KINDS", "team_report"]

RENEWAL_KINDS = ("renewal", "existingbusiness")
"""Opportunity kinds (lower case, as connectors store them) that are renewals."""


def _owner(email: str | None, people: dict[str, Person]) -> str:
    key = (email or "").strip().lower()
    return key if key in people else UNOWNED


@dataclass(frozen=True)
class _Group:
    name: str
    lead_email: str | None
    members: tuple[str, ...]


def _groups(people: dict[str, Person], teams: dict[TeamKey, Team], unowned: bool) -> list[_Group]:
    """Teams with their CSMs by name; then CSMs without a known team; then "(unowned)"."""
    members: dict[TeamKey | None, list[Person]] = defaultdict(list)
    for person in people.values():
        members[person.team if person.team in teams else None].append(person)
    groups = []
    for key, team in sorted(teams.items(), key=lambda item: item[1].name.lower()):
        if members.get(key):
            names = sorted(members[key], key=lambda p: p.name.lower())
            groups.append(_Group(team.name, team.lead_email, tuple(p.email for p in names)))
    if members.get(None):
        names = sorted(members[None], key=lambda p: p.name.lower())
        groups.append(_Group(NO_TEAM, None, tuple(p.email for p in names)))
    if unowned:
        groups.append(_Group(UNOWNED, None, (UNOWNED,)))
    return groups


def _chosen(groups: list[_Group], teams: dict[TeamKey, Team], wanted: str | None) -> list[_Group]:
    if wanted is None:
        return groups
    ids = {t.name.lower(): t.external_id.lower() for t in teams.values()}
    needle = wanted.strip().lower()
    chosen = [g for g in groups if needle in (g.name.lower(), ids.get(g.name.lower()))]
    if not chosen:
        names = ", ".join(g.name for g in groups) or "none"
        raise TeamReportError(f"no team is named {wanted!r}; the teams are: {names}")
    return chosen


def _facts(session: Session, period: Period, kinds: Sequence[str], rates: Rates) -> PeriodFacts:
    start, end = cutoff(period.opening_day), cutoff(period.end)
    return PeriodFacts(
        rates=rates,
        day=period.end,
        billing=queries.billing(session, start, end),
        scores_at_start=queries.latest_scores(session, period.opening_day),
        scores_at_end=queries.latest_scores(session, period.end),
        fresh_sentiment=queries.fresh_sentiment(session, end),
        renewals=queries.renewals(session, period, kinds),
        value_weeks=queries.value_reached(session, period, end - ONBOARDING_WINDOW),
    )


def team_report(
    engine: Engine,
    period: Period,
    *,
    team: str | None = None,
    renewal_kinds: Sequence[str] = RENEWAL_KINDS,
    rates: Rates | None = None,
) -> TeamReport:
    """Each CSM's and each team's figures over `period` (one team's with `team`, a name).

    Money is in `rates.reporting` (USD without `rates`), converted at the rates of the
    period's last day; amounts in currencies without a rate are left out and named in
    `missing_rates`. A fixed handful of queries, whatever the size of the book.
    """
    rates = rates or Rates()
    start, end = cutoff(period.opening_day), cutoff(period.end)
    with Session(engine) as session:
        people, teams = queries.people(session, end)
        accounts = queries.accounts(session, start, end)
        facts = _facts(session, period, renewal_kinds, rates)
        alerts, tasks = queries.alerts(session, start, end), queries.tasks(session, period)
    books: dict[str, list[AccountBook]] = defaultdict(list)
    for account in accounts:
        books[_owner(account.owner_email, people)].append(account_book(account, facts, period))
    sent: dict[str, list[TicketTimes]] = defaultdict(list)
    for email, times in alerts:
        sent[_owner(email, people)].append(times)
    due: dict[str, list[bool]] = defaultdict(list)
    for email, on_time in tasks:
        due[_owner(email, people)].append(on_time)
    unowned = bool(books.get(UNOWNED) or sent.get(UNOWNED) or due.get(UNOWNED))
    chosen = _chosen(_groups(people, teams, unowned), teams, team)

    def figures(keys: Iterable[str]) -> BookFigures:
        keys = tuple(keys)
        return book_figures(
            [b for k in keys for b in books.get(k, [])],
            [a for k in keys for a in sent.get(k, [])],
            [t for k in keys for t in due.get(k, [])],
            facts.currency,
        )

    performances = tuple(
        TeamPerformance(
            name=group.name,
            lead_email=group.lead_email,
            csms=tuple(
                CsmPerformance(
                    email=None if key == UNOWNED else key,
                    name=people[key].name if key in people else UNOWNED,
                    figures=figures([key]),
                )
                for key in group.members
            ),
            total=figures(group.members),
        )
        for group in chosen
    )
    return TeamReport(
        period=period,
        currency=facts.currency,
        accounts=len(accounts),
        teams=performances,
        total=figures(k for g in chosen for k in g.members),
        missing_rates=missing_currencies(accounts, facts.billing, rates),
    )
