"""What a person can do about an alert: acknowledge it, or snooze its account's alerts.

These are the only writes the Slack buttons and commands make to alerts, so every entry
point (the interactive endpoint, Socket Mode, the CLI) behaves the same. Each is idempotent:
acknowledging twice keeps the first acknowledgement; snoozing again extends the snooze.

An alert whose message also listed other alerts about the account (`grouping.py`) speaks
for them: acknowledging it acknowledges them, snoozing it holds their rules too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from notifications.grouping import folded, folded_into
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
    also: tuple[str, ...] = ()
    """The rules of the alerts listed in its message, held as well (until their own end)."""


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
        _acknowledge(session, alert, by, now)
        return Acknowledged(alert_id, by, now, True)


def _acknowledge(session: Session, alert: Alert, by: str | None, now: datetime) -> None:
    """Acknowledge the alert and the alerts that went out listed in its message."""
    assert alert.id is not None
    alert.acknowledged_at, alert.acknowledged_by = now, by
    session.add(alert)
    session.exec(
        update(Alert)
        .where(folded_into([alert.id]), col(Alert.acknowledged_at).is_(None))
        .values(acknowledged_at=now, acknowledged_by=by)
    )


def _hold(
    session: Session,
    account_id: int,
    rule: str | None,
    until: datetime,
    reason: str,
    by: str | None,
    now: datetime,
) -> datetime:
    """Snooze the account's `rule` alerts until then, or keep a longer snooze; its end."""
    current = active_snooze(session, account_id, rule, now)
    if current is not None and current.until >= until:
        return current.until
    session.add(
        Snooze(
            account_id=account_id,
            rule=rule,
            until=until,
            reason=reason.strip(),
            created_by=by,
            created_at=now,
        )
    )
    return until


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
    escalation). Snoozing again while snoozed moves the end, never earlier. The alerts listed
    in its message are acknowledged too, and their rules held alike.
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
        others = folded(session, [alert_id]).get(alert_id, [])
        also = () if all_rules else tuple(dict.fromkeys(a.rule for a in others if a.rule != rule))
        for other in also:
            _hold(session, alert.account_id, other, until, reason, by, now)
        held = _hold(session, alert.account_id, rule, until, reason, by, now)
        if alert.acknowledged_at is None:
            _acknowledge(session, alert, by, now)
        return Snoozed(alert_id, alert.account_id, rule, held, also)


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
