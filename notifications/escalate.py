"""Escalation: an alert nobody acknowledged in time goes to the owner's team lead, once.

An alert sent to its owner at least ALERTS__ESCALATION_HOURS ago, of ALERTS__ESCALATE_FROM
severity or higher, still without an acknowledgement (the Acknowledge and Snooze buttons
both count), is posted again to the lead of the owner's team (`teams.lead_email`, else the
team's CSM marked lead) by DM, or to the admin channel when the team has no lead in Slack,
saying who it was for and since when. `escalated_at` is set (and committed) before the post,
so it happens once even with two instances; when nothing could be posted (Slack down, a
missing channel) it is cleared again for a later run. A lead in quiet hours is asked later.
Alerts that went out listed in another alert's message (`grouping.py`) do not escalate on
their own: that alert's escalation lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from notifications.failures import DeferError, HeldError, UndeliverableError
from notifications.fatigue import quiet_until
from notifications.grouping import also_items, folded
from notifications.messages import AlertFacts, AlsoItem
from notifications.notices import build_escalation_message
from notifications.plan import NOTICE_RULES
from notifications.routing import Route, Router
from notifications.rules import severity_rank
from settings import AlertSettings
from store.models import Alert

__all__ = ["escalate"]


def _overdue(session: Session, policy: AlertSettings, now: datetime) -> list[Alert]:
    """Sent, unacknowledged, never escalated alerts of escalating severities, oldest first;
    not those that went out in another alert's message."""
    if policy.escalate_from == "none":
        return []
    stmt = (
        select(Alert)
        .where(
            col(Alert.status) == "sent",
            col(Alert.acknowledged_at).is_(None),
            col(Alert.escalated_at).is_(None),
            col(Alert.recipient_email).is_not(None),
            col(Alert.rolled_into).is_(None),
            col(Alert.rule).not_in(NOTICE_RULES),
            col(Alert.sent_at) <= now - timedelta(hours=policy.escalation_hours),
        )
        .order_by(col(Alert.sent_at), col(Alert.id))
    )
    floor = severity_rank(policy.escalate_from)
    return [a for a in session.exec(stmt).all() if severity_rank(a.severity) <= floor]


def _route(router: Router, alert: Alert) -> tuple[Route, str | None]:
    """Where the escalation goes, and the lead's email when it is a lead."""
    lead = router.directory.lead(alert.recipient_email or "")
    found = router.person(lead) if lead else None
    if found is not None:
        return found, lead
    return router.admin(None, "no team lead in Slack and no admin channel"), None


def _mark(session: Session, alert: Alert, at: datetime | None, to: str | None) -> bool:
    """Set (or clear, with `at` None) the escalation; False when another instance did."""
    stmt = update(Alert).where(col(Alert.id) == alert.id)
    if at is not None:
        stmt = stmt.where(col(Alert.escalated_at).is_(None))
    result = session.exec(stmt.values(escalated_at=at, escalated_to=to))
    session.commit()
    return bool(result.rowcount == 1)


def _one(
    session: Session,
    router: Router,
    alert: Alert,
    also: list[AlsoItem],
    window: tuple[time, time] | None,
    now: datetime,
) -> bool:
    """Escalate one alert; False when it waits (the lead's quiet hours, or another instance
    has it). Raises `DeferError` or `HeldError` when nothing could be posted, and
    `UndeliverableError` when it never will be (it then counts as escalated to nobody)."""
    route, lead = _route(router, alert)
    if route.channel is None:
        _mark(session, alert, now, None)
        raise UndeliverableError("unroutable", route.reason or "nowhere to send it")
    if route.person and quiet_until(now, window, router.timezone(route.person)):
        return False
    if not _mark(session, alert, now, lead or route.channel):
        return False
    assert alert.id is not None
    assert alert.sent_at is not None
    facts = AlertFacts.from_payload(alert.payload)
    message = build_escalation_message(
        facts, alert.id, alert.recipient_email, alert.sent_at, to_lead=lead is not None, also=also
    )
    try:
        router.post(route, message, f"the escalation of alert {alert.id}")
    except (DeferError, HeldError):
        _mark(session, alert, None, None)
        raise
    return True


def escalate(
    session: Session,
    router: Router,
    policy: AlertSettings,
    now: datetime,
    problem: Callable[[str], None],
) -> int:
    """Escalate every overdue alert once; how many went out. Stops when Slack is away."""
    done = 0
    window = policy.quiet_window()
    overdue = _overdue(session, policy, now)
    others = folded(session, [a.id for a in overdue if a.id is not None])
    for alert in overdue:
        also = also_items(others.get(alert.id or 0, []))
        try:
            done += _one(session, router, alert, also, window, now)
        except UndeliverableError as exc:
            problem(f"alert {alert.id} could not be escalated: {exc.reason}")
        except HeldError as exc:
            problem(str(exc))
        except DeferError as exc:
            problem(str(exc))
            break
    return done
