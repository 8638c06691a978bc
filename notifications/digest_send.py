"""Sending one team's digest: once per week and destination, claimed through an `Alert` row.

A destination is the team lead's DM (`lead`) or the team channel (`channel`). Each is claimed
by inserting an `Alert` row with rule `weekly_digest` and the fingerprint
`digest:{team id}:{week ending}:{destination}` (`outbox.insert_new`: the unique fingerprint
lets one run, or instance, through). The row is inserted as `sending`, never `pending`, so
the alert outbox never takes it. Then the message is posted, the row marked `sent` (with the
conversation and `message_ts`), and the chart shared in the same conversation with
`files_upload_v2`.

The lead's DM is found, and the message posted, by `notifications.routing.Router`, as for an
alert, and its failures mean what `notifications.failures` says. When nothing was posted (no
Slack user has the lead's email, no such channel, rate limited, Slack unreachable) the claim
is released, so a later run tries again; when Slack refused the message as it is or the post
may have gone out (the answer was lost), the row stays `failed`: never twice. A chart that
could not be shared is noted on the row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from sqlmodel import Session, col, select

from notifications.digest_chart import write_chart
from notifications.digest_facts import DigestFacts, DigestTeam
from notifications.digest_message import build_digest_message, digest_headline
from notifications.digest_queries import RULE_DIGEST
from notifications.failures import DeferError, HeldError, UndeliverableError
from notifications.messages import SlackMessage
from notifications.outbox import finish, insert_new
from notifications.routing import Route, Router
from notifications.slack import SlackError, error_code
from store.models import Alert
from store.types import utcnow

__all__ = ["DigestSummary", "digest_fingerprint", "places", "send_team"]

log = logging.getLogger(__name__)


def digest_fingerprint(team: DigestTeam, week_ending: date, destination: str) -> str:
    return f"digest:{team.id}:{week_ending.isoformat()}:{destination}"


@dataclass
class DigestSummary:
    """What one sending run did."""

    week_ending: date
    sent: int = 0
    charts: int = 0
    already_sent: int = 0
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = (
            f"weekly digests for the week ending {self.week_ending}: {self.sent} posted, "
            f"{self.charts} charts uploaded, {self.already_sent} sent before"
        )
        lines = [f"skipped {line}" for line in self.skipped] + self.problems
        return text + "".join(f"\n  {line}" for line in lines)


@dataclass(frozen=True)
class Place:
    """Where one copy of a digest goes: the lead's DM or the team channel."""

    kind: str
    email: str | None = None
    channel: str | None = None


def places(team: DigestTeam) -> list[Place]:
    """The team's destinations: its lead (when known), then its channel (when set)."""
    found = [Place("lead", email=team.lead_email)] if team.lead_email else []
    return found + ([Place("channel", channel=team.channel)] if team.channel else [])


class NotPostedError(Exception):
    """The digest did not go to one destination; the message says why."""


def _claim(session: Session, facts: DigestFacts, place: Place) -> Alert | None:
    """The digest's row for `place`, inserted as `sending`; None when it exists already."""
    team = facts.team
    fingerprint = digest_fingerprint(team, facts.week_ending, place.kind)
    row = {
        "fingerprint": fingerprint,
        "rule": RULE_DIGEST,
        "severity": "low",
        "recipient_email": place.email,
        "channel": place.channel,
        "status": "sending",
        "text": digest_headline(facts),
        "payload": {
            "team_id": team.id,
            "team": team.name,
            "week_ending": facts.week_ending.isoformat(),
            "destination": place.kind,
        },
        "created_at": utcnow(),
    }
    inserted = insert_new(session, [row])
    session.commit()
    if fingerprint not in inserted:  # sent (or being sent) already
        return None
    return session.exec(select(Alert).where(col(Alert.fingerprint) == fingerprint)).one()


def _release(session: Session, alert: Alert) -> None:
    """Nothing was posted: forget the claim so that a later run tries again."""
    session.delete(alert)
    session.commit()


def _route(place: Place, team: DigestTeam, router: Router) -> Route:
    """The lead's DM, or the team channel as set."""
    if place.kind == "channel":
        fix = f"set the Slack channel of team {team.name!r} (teams.slack_channel) to one "
        return Route(place.channel, fix=fix + "the app was invited to")
    route = router.person(str(place.email))
    if route is None:
        raise UndeliverableError("unroutable", f"no Slack user has the email {place.email}")
    return route


def _post(
    session: Session,
    alert: Alert,
    place: Place,
    facts: DigestFacts,
    message: SlackMessage,
    router: Router,
) -> str:
    """Post the message; the id of its conversation. `NotPostedError` says why not."""
    try:
        route = _route(place, facts.team, router)
    except (DeferError, UndeliverableError) as exc:  # nothing was posted: try on the next run
        _release(session, alert)
        raise NotPostedError(str(exc)) from None
    except SlackError:  # Slack refused the token: nothing goes out until it is fixed
        _release(session, alert)
        raise
    try:
        channel, ts = router.post(route, message, f"the digest to {route.channel}")
    except (DeferError, HeldError) as exc:  # nothing was posted: try on the next run
        _release(session, alert)
        raise NotPostedError(str(exc)) from None
    except SlackError:
        _release(session, alert)
        raise
    except UndeliverableError as exc:  # refused as it is, or maybe posted: never again
        finish(session, alert, exc.status, exc.reason)
        raise NotPostedError(exc.reason) from None
    except Exception as exc:  # an unknown state: record it, never risk a second copy
        finish(session, alert, "failed", f"unexpected error: {exc!r}")
        raise NotPostedError(f"unexpected error: {exc!r}") from None
    when = utcnow()
    finish(
        session, alert, "sent", None, channel=channel, message_ts=f"{channel} {ts}", sent_at=when
    )
    return channel


def _share_chart(
    session: Session, alert: Alert, channel: str, chart: Path, facts: DigestFacts, client: WebClient
) -> str | None:
    """Share the chart in the digest's conversation; the problem, if any (kept on the row)."""
    team = facts.team.name
    try:
        client.files_upload_v2(
            channel=channel,
            file=str(chart),
            filename=chart.name,
            title=f"{team}: health bands over {len(facts.history)} weeks",
            alt_txt=f"Accounts of {team} by health band at the end of each week",
        )
    except SlackApiError as exc:
        problem = f"chart not shared in {channel}: {error_code(exc)}"
    except (SlackRequestError, OSError) as exc:
        problem = f"chart not shared in {channel}: {exc}"
    else:
        return None
    finish(session, alert, "sent", problem)
    return problem


def send_team(
    session: Session, router: Router, facts: DigestFacts, out: Path, summary: DigestSummary
) -> None:
    """Send the team's digest to each of its destinations not sent to yet for the week."""
    message = build_digest_message(facts)
    chart: Path | None = None
    for place in places(facts.team):
        label = f"{facts.team.name} ({place.kind})"
        alert = _claim(session, facts, place)
        if alert is None:
            summary.already_sent += 1
            continue
        chart = chart or write_chart(facts, out)
        try:
            channel = _post(session, alert, place, facts, message, router)
        except NotPostedError as exc:
            summary.problems.append(f"{label}: {exc}")
            continue
        summary.sent += 1
        log.info("digest of %s sent to %s", facts.team.name, channel)
        problem = _share_chart(session, alert, channel, chart, facts, router.client)
        summary.charts += problem is None
        summary.problems += [f"{label}: {problem}"] if problem else []
