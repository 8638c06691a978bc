"""Routing: who an alert is for, and where in Slack that person (or their team) is.

    owner email -> Slack user (users.lookupByEmail, kept in `slack_users` with checked_at
                   and asked again after ALERTS__SLACK_USER_TTL_HOURS) -> DM
                -> no Slack user: the owner's team channel (`teams.slack_channel`), and
                   the admin channel hears once that the email has no Slack user
                -> no team channel either: `unroutable`, with the reason
    no owner    -> the lead of the team of the account's CRM owner record, else the admin
                   channel (SLACK__ADMIN_CHANNEL), else `unroutable`

A person's time zone (for quiet hours and the daily budget) is their Slack time zone,
else the CSM's time zone from the CRM, else UTC. CSMs and teams are read once per run;
Slack users are read from the cache for all the run's emails in one query.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session, col, select

from notifications.failures import from_api_error, from_transport_error
from notifications.fatigue import zone
from notifications.messages import SlackMessage
from notifications.slack import error_code
from store.models import Account, Csm, SlackUser, Team
from store.upsert import bulk_upsert

__all__ = ["Directory", "Route", "Router"]


def _key(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class Directory:
    """The CSMs and teams, to find a person's team, team channel, lead and time zone."""

    csms: dict[str, Csm]
    csms_by_ref: dict[tuple[str, str], Csm]
    teams: dict[tuple[str, str], Team]

    @classmethod
    def load(cls, session: Session) -> Directory:
        csms = list(session.exec(select(Csm).order_by(col(Csm.deleted_at).is_not(None))).all())
        by_email: dict[str, Csm] = {}
        for csm in reversed(csms):  # a live record wins over a deleted one of the same email
            by_email[_key(csm.email)] = csm
        teams = {(t.source, t.external_id): t for t in session.exec(select(Team)).all()}
        return cls(by_email, {(c.source, c.external_id): c for c in csms}, teams)

    def team_of(self, csm: Csm | None) -> Team | None:
        if csm is None or csm.team_external_id is None:
            return None
        return self.teams.get((csm.source, csm.team_external_id))

    def team(self, email: str) -> Team | None:
        return self.team_of(self.csms.get(_key(email)))

    def lead_of_team(self, team: Team | None) -> str | None:
        """The team's lead: its `lead_email`, else a live CSM of the team marked lead."""
        if team is None:
            return None
        if team.lead_email:
            return team.lead_email
        for csm in self.csms.values():
            if (
                csm.is_lead
                and csm.deleted_at is None
                and csm.source == team.source
                and csm.team_external_id == team.external_id
            ):
                return csm.email
        return None

    def lead(self, email: str) -> str | None:
        """The lead of the person's team, unless that is the person."""
        lead = self.lead_of_team(self.team(email))
        return lead if lead and _key(lead) != _key(email) else None

    def owner_lead(self, account: Account | None) -> str | None:
        """For an account without an owner email: the lead of its CRM owner's team."""
        if account is None or account.owner_external_id is None:
            return None
        owner = self.csms_by_ref.get((account.source, account.owner_external_id))
        return self.lead_of_team(self.team_of(owner))

    def crm_timezone(self, email: str) -> str | None:
        csm = self.csms.get(_key(email))
        return csm.timezone if csm is not None else None


@dataclass(frozen=True)
class Route:
    """Where an alert goes: a channel (a DM or a channel), or why nowhere."""

    channel: str | None
    person: str | None = None
    """The email of the person whose DM it is (their quiet hours and budget apply)."""
    note: str | None = None
    """Shown under the headline when the alert reaches someone else than its owner."""
    fix: str | None = None
    """The setting to name if Slack has no such channel."""
    reason: str | None = None
    """Why it goes nowhere (`channel` None)."""


@dataclass
class Router:
    """Emails to Slack users (through the cache) and DMs, each asked once per run."""

    session: Session
    client: WebClient
    directory: Directory
    now: datetime
    ttl: timedelta
    admin_channel: str | None = None
    users: dict[str, SlackUser] = field(default_factory=dict)
    dms: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    """Emails with no Slack user met this run, and where their alerts went instead."""

    def prefetch(self, emails: Iterable[str]) -> None:
        """Read the cached Slack users of these emails in one query."""
        wanted = sorted({_key(e) for e in emails} - set(self.users))
        if wanted:
            rows = self.session.exec(select(SlackUser).where(col(SlackUser.email).in_(wanted)))
            self.users.update({row.email: row for row in rows.all()})

    def slack_user(self, email: str) -> SlackUser:
        """The email's Slack user (`user_id` None: none), from the cache or from Slack."""
        key = _key(email)
        cached = self.users.get(key)
        if cached is not None and cached.checked_at > self.now - self.ttl:
            return cached
        user_id, timezone = self._lookup(email)
        row = {"email": key, "user_id": user_id, "timezone": timezone, "checked_at": self.now}
        bulk_upsert(self.session, SlackUser, [row], keys=("email",))
        self.session.commit()
        self.users[key] = SlackUser(
            email=key, user_id=user_id, timezone=timezone, checked_at=self.now
        )
        return self.users[key]

    def _lookup(self, email: str) -> tuple[str | None, str | None]:
        """The email's Slack user id and time zone (None, None: no such user)."""
        what = f"finding {email} in Slack"
        try:
            user = self.client.users_lookupByEmail(email=email)["user"]
        except SlackApiError as exc:
            if error_code(exc) == "users_not_found":
                return None, None
            raise from_api_error(exc, what) from None
        except OSError as exc:
            raise from_transport_error(exc, what, posting=False) from None
        tz = user.get("tz")
        return str(user["id"]), str(tz) if tz else None

    def dm(self, user: str) -> str:
        if user not in self.dms:
            try:
                opened = self.client.conversations_open(users=user)
            except SlackApiError as exc:
                raise from_api_error(exc, f"opening a DM with {user}") from None
            except OSError as exc:
                raise from_transport_error(exc, "opening a DM", posting=False) from None
            self.dms[user] = str(opened["channel"]["id"])
        return self.dms[user]

    def timezone(self, email: str) -> ZoneInfo:
        """The person's time zone: Slack's, else the CRM's, else UTC."""
        cached = self.users.get(_key(email))
        return zone((cached.timezone if cached else None) or self.directory.crm_timezone(email))

    def person(self, email: str, note: str | None = None) -> Route | None:
        """A DM with the person, or None when Slack has no user with that email."""
        user = self.slack_user(email).user_id
        return Route(self.dm(user), person=email, note=note) if user else None

    def owner(self, email: str) -> Route:
        """The owner's DM, else their team channel, else nowhere (with the reason)."""
        found = self.person(email)
        if found is not None:
            return found
        team = self.directory.team(email)
        if team is not None and team.slack_channel:
            self.missing[_key(email)] = f"their alerts go to {team.slack_channel}"
            return Route(
                team.slack_channel,
                note=f"For {email}, who has no Slack account this app can find.",
                fix=f"set the Slack channel of team {team.name!r} (teams.slack_channel)",
            )
        self.missing[_key(email)] = "their alerts are not delivered"
        return Route(None, reason=f"no Slack user has the email {email}")

    def unowned(self, account: Account | None) -> Route:
        """An account without an owner: the lead of its CRM owner's team, or the admin."""
        lead = self.directory.owner_lead(account)
        note = "This account has no owner in the CRM."
        found = self.person(lead, note + " You lead the team of its last owner.") if lead else None
        if found is not None:
            return found
        return self.admin(note, "the account has no owner and no admin channel")

    def post(self, route: Route, message: SlackMessage, what: str) -> tuple[str, str]:
        """Post `message` along `route`; the channel it landed in and the message's `ts`."""
        try:
            response = self.client.chat_postMessage(
                channel=route.channel or "", **message.as_kwargs()
            )
        except SlackApiError as exc:
            raise from_api_error(exc, what, route.fix) from None
        except OSError as exc:
            raise from_transport_error(exc, what, posting=True) from None
        return str(response["channel"]), str(response["ts"])

    def admin(self, note: str | None, reason: str) -> Route:
        if not self.admin_channel:
            return Route(None, reason=f"{reason} (SLACK__ADMIN_CHANNEL)")
        fix = "set SLACK__ADMIN_CHANNEL to a channel the app was invited to"
        return Route(self.admin_channel, note=note, fix=fix)
