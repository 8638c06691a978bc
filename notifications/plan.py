"""What each due alert does in a delivery run: snoozed, held, rolled up, or sent now.

`plan_run` reads the pending alerts that are due (oldest first), marks those of a snoozed
account and rule `snoozed`, routes the others (`routing.py`), holds DMs whose recipient is
in quiet hours (`deliver_after` = their end), and splits each person's alerts by the daily
budget (`fatigue.allot`): the rest are `rolled` into that person's daily summary, an alert
of rule `daily_summary` (fingerprint `daily_summary:{email}:{local day}`) whose alerts point
at it through `rolled_into`. When that day's summary went out already, the rest wait for
the person's next day. Every change is a conditional update of a `pending` alert, so two
instances planning at once agree.

A person's alerts about one account go out as one message (`grouping.py`), so the budget
counts them once, and the alerts listed in another's message are not DMs of their own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from notifications.failures import UndeliverableError
from notifications.fatigue import Candidate, allot, day_bounds, quiet_until, snoozed_until
from notifications.outbox import insert_new, update_pending, update_pending_many
from notifications.routing import Route, Router
from settings import AlertSettings
from store.models import Account, Alert, Snooze

__all__ = ["DAILY_SUMMARY", "NOTICE_RULES", "ROUTING_PROBLEM", "Plan", "plan_run"]

DAILY_SUMMARY = "daily_summary"
ROUTING_PROBLEM = "routing_problem"
NOTICE_RULES = (DAILY_SUMMARY, ROUTING_PROBLEM)
"""Alerts about alerts: they never count against a budget and never escalate."""


@dataclass
class Plan:
    """The run's decisions."""

    send: list[tuple[Alert, Route]] = field(default_factory=list)
    unroutable: list[tuple[Alert, str]] = field(default_factory=list)
    snoozed: int = 0
    held: int = 0
    rolled: int = 0


def _due(session: Session, now: datetime) -> list[Alert]:
    stmt = (
        select(Alert)
        .where(
            col(Alert.status) == "pending",
            col(Alert.rule) != ROUTING_PROBLEM,
            or_(col(Alert.deliver_after).is_(None), col(Alert.deliver_after) <= now),
        )
        .order_by(col(Alert.created_at), col(Alert.id))
    )
    return list(session.exec(stmt).all())


def _snoozes(session: Session, now: datetime) -> dict[int, list[tuple[str | None, datetime]]]:
    found: dict[int, list[tuple[str | None, datetime]]] = defaultdict(list)
    for snooze in session.exec(select(Snooze).where(col(Snooze.until) > now)).all():
        found[snooze.account_id].append((snooze.rule, snooze.until))
    return found


def _hold_snoozed(session: Session, due: list[Alert], now: datetime, plan: Plan) -> list[Alert]:
    """Mark the alerts of snoozed accounts and rules `snoozed`; the others."""
    snoozes = _snoozes(session, now)
    rest = []
    for alert in due:
        until = (
            None
            if alert.rule in NOTICE_RULES
            else snoozed_until(snoozes, alert.account_id, alert.rule)
        )
        if until is None:
            rest.append(alert)
        elif update_pending(
            session, alert.id, status="snoozed", error=f"snoozed until {until:%Y-%m-%d %H:%M} UTC"
        ):
            plan.snoozed += 1
    return rest


def _route(router: Router, alert: Alert, accounts: dict[int, Account]) -> Route:
    if alert.rule == DAILY_SUMMARY or alert.recipient_email:
        assert alert.recipient_email is not None
        return router.owner(alert.recipient_email)
    return router.unowned(accounts.get(alert.account_id) if alert.account_id else None)


def _accounts(session: Session, alerts: Iterable[Alert]) -> dict[int, Account]:
    ids = {a.account_id for a in alerts if a.account_id is not None and not a.recipient_email}
    if not ids:
        return {}
    rows = session.exec(select(Account).where(col(Account.id).in_(ids))).all()
    return {a.id: a for a in rows if a.id is not None}


def _sent_today(
    session: Session, router: Router, emails: Sequence[str], now: datetime
) -> dict[str, int]:
    """Alert DMs each person got on their local day so far (an alert that went out listed
    in another's message, pointing at it through `rolled_into`, is not a DM of its own)."""
    stmt = select(Alert.recipient_email, Alert.sent_at).where(
        col(Alert.status) == "sent",
        col(Alert.rule).not_in(NOTICE_RULES),
        col(Alert.rolled_into).is_(None),
        col(Alert.sent_at) >= now - timedelta(days=2),
        col(Alert.recipient_email).in_(emails),
    )
    counts = dict.fromkeys(emails, 0)
    for email, sent_at in session.exec(stmt).all():
        if email is None or sent_at is None:
            continue
        start, _ = day_bounds(now, router.timezone(email))
        if sent_at >= start:
            counts[email] += 1
    return counts


def _summary(session: Session, router: Router, email: str, now: datetime) -> Alert:
    """The person's daily summary for their local day, made if needed."""
    day = now.astimezone(router.timezone(email)).date()
    print_ = f"{DAILY_SUMMARY}:{email.lower()}:{day.isoformat()}"
    row = {
        "fingerprint": print_,
        "rule": DAILY_SUMMARY,
        "severity": "low",
        "recipient_email": email,
        "status": "pending",
        "text": f"Daily alerts summary for {email} on {day.isoformat()}",
        "payload": {"day": day.isoformat(), "items": []},
        "created_at": now,
    }
    insert_new(session, [row])
    session.commit()
    return session.exec(select(Alert).where(Alert.fingerprint == print_)).one()


def _roll(
    session: Session,
    router: Router,
    email: str,
    ids: list[int],
    now: datetime,
    plan: Plan,
) -> Alert | None:
    """Roll the alerts into today's summary; the summary, when it still waits to go out."""
    summary = _summary(session, router, email, now)
    if summary.status != "pending":
        _, tomorrow = day_bounds(now, router.timezone(email))
        plan.held += update_pending_many(session, ids, deliver_after=tomorrow)
        return None
    plan.rolled += update_pending_many(session, ids, status="rolled", rolled_into=summary.id)
    return summary


def _budget(
    session: Session,
    router: Router,
    policy: AlertSettings,
    people: dict[str, list[tuple[Alert, Route]]],
    now: datetime,
    plan: Plan,
) -> None:
    """Send what each person's budget allows; roll the rest into their summary."""
    used = _sent_today(session, router, sorted(people), now)
    summary_only = None if policy.summary_only == "none" else policy.summary_only
    for email, items in people.items():
        by_id = {a.id: a for a, _ in items if a.id is not None}
        route = {a.id: r for a, r in items}
        candidates = [
            Candidate(i, a.severity, a.created_at, group=a.account_id) for i, a in by_id.items()
        ]
        share = allot(candidates, used[email], policy.daily_budget, summary_only)
        plan.send.extend((by_id[i], route[i]) for i in share.send)
        if share.roll:
            summary = _roll(session, router, email, share.roll, now, plan)
            if summary is not None and all(a.id != summary.id for a, _ in plan.send):
                plan.send.append((summary, items[0][1]))


def plan_run(session: Session, router: Router, policy: AlertSettings, now: datetime) -> Plan:
    """Decide what every due alert does now; Slack is asked only to route them."""
    plan = Plan()
    due = _hold_snoozed(session, _due(session, now), now, plan)
    router.prefetch(a.recipient_email for a in due if a.recipient_email)
    accounts = _accounts(session, due)
    window = policy.quiet_window()
    people: dict[str, list[tuple[Alert, Route]]] = defaultdict(list)
    for alert in due:
        try:
            route = _route(router, alert, accounts)
        except UndeliverableError as exc:  # Slack refused this lookup: this alert only
            plan.unroutable.append((alert, exc.reason))
            continue
        if route.channel is None:
            plan.unroutable.append((alert, route.reason or "no route"))
            continue
        if route.person is not None:
            until = quiet_until(now, window, router.timezone(route.person))
            if until is not None:
                plan.held += update_pending(session, alert.id, deliver_after=until)
                continue
        if alert.recipient_email and alert.rule not in NOTICE_RULES:
            people[alert.recipient_email].append((alert, route))
        else:
            plan.send.append((alert, route))
    _budget(session, router, policy, people, now, plan)
    plan.send = _in_order(plan.send)
    return plan


def _in_order(send: list[tuple[Alert, Route]]) -> list[tuple[Alert, Route]]:
    """Oldest first; alerts found together take turns between channels, so that one
    person's many alerts do not run into Slack's per-channel rate limit back to back."""
    ordered = sorted(send, key=lambda pair: (pair[0].created_at, pair[0].id or 0))
    turns: dict[tuple[datetime, str | None], int] = defaultdict(int)
    keyed = []
    for alert, route in ordered:
        turn = turns[(alert.created_at, route.channel)]
        turns[(alert.created_at, route.channel)] += 1
        keyed.append(((alert.created_at, turn, alert.id or 0), (alert, route)))
    return [pair for _, pair in sorted(keyed, key=lambda item: item[0])]
