"""Weekly digests for CS leads: one per team and week, to the lead by DM and/or the team channel.

A digest says how the team's book did over a week: the band distribution and its movement,
at-risk ARR, renewals of the next 90 days with their health, the five largest declines with
what moved them, where a CSM's call and the data disagree, overdue playbook tasks, the share
of the week's alerts acknowledged, and the CSM scoreboard of the quarter to date; with a
chart of the last 12 weeks.

Modules by concern: `digest_facts` (the frozen dataclasses), `digest_queries` (the
set-based SQL), `digest_gather` (`gather_facts`: a team's facts for a week), then the
renderings, `digest_message` (Block Kit), `digest_view` (the terminal) and `digest_chart`
(the PNG), and `digest_send` (exactly once per team, week and destination). This module
chooses the teams and runs a preview or a sending over them.

    teams = choose_teams(engine, "Enterprise")
    preview_digests(engine, console, teams, date(2026, 11, 22), Path("digests"))
    send_digests(engine, client, teams, date(2026, 11, 22), Path("digests"))
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlmodel import Session

from notifications.digest_chart import write_chart
from notifications.digest_facts import DigestFacts, DigestTeam
from notifications.digest_gather import gather_facts
from notifications.digest_message import build_digest_message
from notifications.digest_queries import RULE_DIGEST, teams
from notifications.digest_send import DigestSummary, digest_fingerprint, places, send_team
from notifications.digest_view import print_digest
from notifications.routing import Directory, Router
from store.db import session_scope
from store.money import Rates
from store.stopping import stop_requested
from store.types import utcnow

__all__ = [
    "RULE_DIGEST",
    "DigestError",
    "DigestFacts",
    "DigestSummary",
    "DigestTeam",
    "build_digest_message",
    "choose_teams",
    "default_week_ending",
    "digest_fingerprint",
    "gather_facts",
    "preview_digests",
    "send_digests",
    "write_chart",
]

SLACK_USER_TTL = timedelta(hours=24)


class DigestError(ValueError):
    """A digest that cannot be made as asked (no such team); one line, fit to print."""


def default_week_ending(today: date) -> date:
    """The Sunday that ended the last complete week (Monday to Sunday) before `today`."""
    return today - timedelta(days=today.isoweekday())


def choose_teams(engine: Engine, wanted: str | None = None) -> list[DigestTeam]:
    """Every team, or the one named `wanted` (its name or CRM id, any case)."""
    with Session(engine) as session:
        found = teams(session)
    if not found:
        raise DigestError("the store has no teams: sync the CRM first (`health-agent sync`)")
    if wanted is None:
        return found
    needle = wanted.strip().lower()
    chosen = [t for t in found if needle in (t.name.lower(), t.external_id.lower())]
    if not chosen:
        names = ", ".join(t.name for t in found)
        raise DigestError(f"no team is named {wanted!r}; the teams are: {names}")
    return chosen


def preview_digests(
    engine: Engine,
    console: Console,
    chosen: Sequence[DigestTeam],
    week_ending: date,
    out: Path,
    *,
    rates: Rates | None = None,
) -> list[Path]:
    """Print each team's digest (money in `rates.reporting`) and write its chart into `out`;
    posts nothing."""
    charts = []
    for team in chosen:
        facts = gather_facts(engine, team, week_ending, rates=rates)
        chart = write_chart(facts, out)
        print_digest(console, facts, chart)
        charts.append(chart)
    return charts


def send_digests(
    engine: Engine,
    client: WebClient,
    chosen: Sequence[DigestTeam],
    week_ending: date,
    out: Path,
    *,
    slack_user_ttl: timedelta = SLACK_USER_TTL,
    rates: Rates | None = None,
) -> DigestSummary:
    """Post each team's digest of the week to its lead and channel, once; charts go to `out`.

    Teams with neither a lead nor a channel, or without accounts, are skipped (and said so).
    A stop request ends the run between teams; the teams left go out on the next run, and
    the ones sent are not sent again (each digest has its fingerprint).
    """
    summary = DigestSummary(week_ending)
    with session_scope(engine) as session:
        router = Router(session, client, Directory.load(session), utcnow(), slack_user_ttl)
        for position, team in enumerate(chosen):
            if stop_requested():
                summary.skipped.extend(f"{t.name}: stopped before it" for t in chosen[position:])
                break
            if not places(team):
                summary.skipped.append(f"{team.name}: no lead email or Slack channel is set")
                continue
            facts = gather_facts(engine, team, week_ending, rates=rates)
            if not facts.accounts:
                summary.skipped.append(f"{team.name}: no accounts")
                continue
            send_team(session, router, facts, out, summary)
    return summary
