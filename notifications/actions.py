"""What a person can do about an alert: acknowledge it, or snooze its account's alerts.

These are the only writes the Slack buttons and commands make to alerts, so every entry
point (the interactive endpoint, Socket Mode, the CLI) behaves the same. Each is idempotent:
acknowledging twice keeps the first acknowledgement; snoozing again extends the snooze.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from store.db import session_for
from store.models import Alert, Snooze
from store.types import utcnow

__all__ = ["Acknowledged", "ActionError", "Snoozed", "acknowledge", "active_snooze", "snooze"]


class ActionError(LookupError):
    """The alert does not exist (or no longer does); the message says so in plain words."""


@dataclass(frozen=True)
class Acknowledged:
    alert_id: int
    by: str | None
    at: datetime
    first: bool
    """False when someone had acknowledged it already (their acknowledgement stands)."""


@dataclass(frozen=True)
class Snoozed:
    alert_id: int
    account_id: int
    rule: str | None
    until: datetime


def _alert(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise ActionError(f"alert {alert_id} no longer exists")
    return alert


def acknowledge(
    db: Engine | Session, alert_id: int, by: str | None, now: datetime | None = None
) -> Acknowledged:
    """Mark the alert acknowledged by `by` (an email or Slack user), once."""
    now = now or utcnow()
    with session_for(db) as session:
        alert = _alert(session, alert_id)
        if alert.acknowledged_at is not None:
            return Acknowledged(alert_id, alert.acknowledged_by, alert.acknowledged_at, False)
        alert.acknowledged_at, alert.acknowledged_by = now, by
        session.add(alert)
        return Acknowledged(alert_id, by, now, True)


def snooze(
    db: Engine | Session,
    alert_id: int,
    days: int,
    reason: str = "",
    by: str | None = None,
    *,
    all_rules: bool = False,
    now: datetime | None = None,
) -> Snoozed:
    """Hold the alert's account's alerts of the same rule (or all) for `days`; acknowledges it.

    A snooze is acting on the alert, so it also counts as its acknowledgement (and stops its
    escalation). Snoozing again while snoozed moves the end, never earlier.
    """
    if days < 1:
        raise ValueError("a snooze lasts at least a day")
    now = now or utcnow()
    until = now + timedelta(days=days)
    with session_for(db) as session:
        alert = _alert(session, alert_id)
        if alert.account_id is None:
            raise ActionError(f"alert {alert_id} is about no account: nothing to snooze")
        rule = None if all_rules else alert.rule
        current = active_snooze(session, alert.account_id, rule, now)
        if current is not None and current.until >= until:
            until = current.until
        else:
            session.add(
                Snooze(
                    account_id=alert.account_id,
                    rule=rule,
                    until=until,
                    reason=reason.strip(),
                    created_by=by,
                    created_at=now,
                )
            )
        if alert.acknowledged_at is None:
            alert.acknowledged_at, alert.acknowledged_by = now, by
            session.add(alert)
        return Snoozed(alert_id, alert.account_id, rule, until)


def active_snooze(
    session: Session, account_id: int, rule: str | None, now: datetime
) -> Snooze | None:
    """The snooze holding `rule` alerts of the account at `now` (a rule-less one holds all)."""
    stmt = (
        select(Snooze)
        .where(col(Snooze.account_id) == account_id, col(Snooze.until) > now)
        .where((col(Snooze.rule) == rule) | col(Snooze.rule).is_(None))
        .order_by(col(Snooze.until).desc())
        .limit(1)
    )
    return session.exec(stmt).first()
