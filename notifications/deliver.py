"""Delivery: send the outbox's due alerts once each, oldest first, to the right place.

`deliver_pending` plans the run (`plan.py`: snoozes, routing, quiet hours, the daily budget
and summaries), then claims and posts each alert to send (`outbox.py`), recording the
channel and the message's `ts` so its buttons can update it later. Then it reports emails
that have no Slack user to the admin channel (once per email: each report is an alert of
rule `routing_problem` with fingerprint `routing_problem:{email}`), and escalates alerts
nobody acknowledged (`escalate.py`). A stop request (`store.stopping`) ends the run between
two messages; the alerts not sent stay pending for the next run.

Alerts about one account for one recipient go out as one message, led by the most severe
(`grouping.py`).

Slack's failures (`failures.py`): when Slack is down or keeps rate limiting, the alert goes
back to pending and the run stops, so once Slack answers again the alerts go out in their
order; a missing channel keeps the alert pending with one line naming the setting to fix;
a refused token stops the run with `SlackAuthError`, naming SLACK__BOT_TOKEN. Retries of
429 (after `Retry-After`), 5xx and dropped connections happen inside the client
(`slack.py`), bounded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from logs import bind_log_context, log_scope
from notifications.escalate import escalate
from notifications.failures import DeferError, HeldError, UndeliverableError
from notifications.grouping import Group, also_items, group_sends
from notifications.messages import AlertFacts, SlackMessage, build_admin_notice, build_alert_message
from notifications.notices import SummaryItem, build_summary_message
from notifications.outbox import claim, finish, finish_many, insert_new, update_pending
from notifications.plan import DAILY_SUMMARY, ROUTING_PROBLEM, plan_run
from notifications.routing import Directory, Route, Router
from notifications.rules import severity_rank
from notifications.slack import SlackError
from settings import AlertSettings
from store.db import session_for
from store.models import Alert
from store.stopping import stop_requested
from store.types import utcnow

__all__ = ["DeliverySummary", "deliver_pending"]

log = logging.getLogger(__name__)


@dataclass
class DeliverySummary:
    """What one delivery run did."""

    sent: int = 0
    folded: int = 0
    """Of `sent`, alerts that went out listed in another alert's message (same account)."""
    unroutable: int = 0
    failed: int = 0
    deferred: int = 0
    """Alerts left pending because Slack could not be reached or kept rate limiting."""
    admin_notices: int = 0
    held: int = 0
    """Alerts waiting for the end of quiet hours (or the next day's budget)."""
    snoozed: int = 0
    rolled: int = 0
    """Alerts that went into a daily summary instead of a message of their own."""
    summaries: int = 0
    escalated: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, line: str) -> None:
        """Note a problem for the admin, once per run."""
        if line not in self.problems:
            self.problems.append(line)
            log.warning("%s", line)


def _summary_items(session: Session, summary: Alert) -> list[SummaryItem]:
    rolled = session.exec(select(Alert).where(col(Alert.rolled_into) == summary.id)).all()
    ordered = sorted(rolled, key=lambda a: (severity_rank(a.severity), a.created_at, a.id or 0))
    return [SummaryItem(a.id or 0, a.rule, a.severity, a.text) for a in ordered]


def _message(
    session: Session, alert: Alert, others: list[Alert], route: Route, policy: AlertSettings
) -> SlackMessage:
    assert alert.id is not None
    if alert.rule == DAILY_SUMMARY:
        items = _summary_items(session, alert)
        alert.payload = {**alert.payload, "items": [item.__dict__ for item in items]}
        day = datetime.fromisoformat(str(alert.payload["day"])).date()
        return build_summary_message(day, items, policy.daily_budget)
    facts = AlertFacts.from_payload(alert.payload)
    return build_alert_message(facts, alert.id, note=route.note, also=also_items(others))


@dataclass
class _Run:
    session: Session
    client: WebClient
    router: Router
    policy: AlertSettings
    now: datetime
    summary: DeliverySummary

    @log_scope
    def send(self, group: Group) -> bool:
        """Claim the group's alerts and post them as one message (the first claimed leads);
        False when the run must stop (Slack unavailable)."""
        bind_log_context(account_id=group.lead.account_id)
        claimed = [a for a in group.alerts if claim(self.session, a)]  # the rest: elsewhere
        if not claimed:
            return True
        alert, others, route = claimed[0], claimed[1:], group.route
        what = f"alert {alert.id} to {route.channel}"
        what += f" with {len(others)} more about the account" if others else ""
        try:
            message = _message(self.session, alert, others, route, self.policy)
            channel, ts = self.router.post(route, message, what)
        except UndeliverableError as exc:
            self._give_up(claimed, exc.status, exc.reason)
            return True
        except HeldError as exc:
            self._finish(claimed, "pending", str(exc))
            self.summary.problem(str(exc))
            return True
        except DeferError as exc:
            self._finish(claimed, "pending", str(exc))
            self.summary.problem(str(exc))
            return False
        except SlackError as exc:  # the token: nothing can go out until it is fixed
            self._finish(claimed, "pending", str(exc))
            raise
        except Exception as exc:  # unknown state: record it, never send twice
            self._give_up(claimed, "failed", f"unexpected error: {exc!r}")
            return True
        sent = {"channel": channel, "message_ts": ts, "sent_at": self.now}
        finish(self.session, alert, "sent", None, **sent)
        finish_many(self.session, others, "sent", None, rolled_into=alert.id, **sent)
        if alert.rule == DAILY_SUMMARY:
            self.summary.summaries += 1
        else:
            self.summary.sent += len(claimed)
            self.summary.folded += len(others)
        log.info("alert %s sent to %s with %d more", alert.id, channel, len(others))
        return True

    def _finish(self, claimed: list[Alert], status: str, error: str) -> None:
        finish(self.session, claimed[0], status, error)
        finish_many(self.session, claimed[1:], status, error)

    def _give_up(self, claimed: list[Alert], status: str, reason: str) -> None:
        self._finish(claimed, status, reason)
        if status == "unroutable":
            self.summary.unroutable += len(claimed)
        else:
            self.summary.failed += len(claimed)
        self.summary.problems.extend(f"alert {a.id}: {reason}" for a in claimed)

    def report_routing(self) -> bool:
        """Tell the admin channel, once per email, which owners have no Slack user; False
        when Slack is away. Without an admin channel the reports wait for one."""
        rows = [
            {
                "fingerprint": f"{ROUTING_PROBLEM}:{email}",
                "rule": ROUTING_PROBLEM,
                "severity": "medium",
                "status": "pending",
                "text": f"No Slack user has the email {email}: {where}",
                "payload": {"email": email},
                "created_at": self.now,
            }
            for email, where in sorted(self.router.missing.items())
        ]
        insert_new(self.session, rows)
        self.session.commit()
        stmt = select(Alert).where(
            col(Alert.rule) == ROUTING_PROBLEM, col(Alert.status) == "pending"
        )
        waiting = self.session.exec(stmt.order_by(col(Alert.id))).all()
        route = self.router.admin(None, "nowhere to report routing problems")
        if waiting and route.channel is None:  # kept until an admin channel is set
            self.summary.problem(
                f"{len(waiting)} owner email(s) with no Slack user wait to be reported: "
                "set SLACK__ADMIN_CHANNEL to a channel for routing problems"
            )
            return True
        claimed = [a for a in waiting if claim(self.session, a)]
        return self._notify_admin(claimed, route) if claimed else True

    def _notify_admin(self, notices: list[Alert], route: Route) -> bool:
        """One message listing the owners Slack does not know; False when Slack is away."""
        lines = [f"{n.text} (add them to Slack or fix their email in the CRM)" for n in notices]
        message = build_admin_notice("Alert owners Slack does not know", lines)
        try:
            channel, ts = self.router.post(route, message, f"to the admin channel {route.channel}")
        except (DeferError, HeldError) as exc:
            for notice in notices:
                finish(self.session, notice, "pending", str(exc))
            self.summary.problem(str(exc))
            return not isinstance(exc, DeferError)
        except UndeliverableError as exc:
            self._give_up(notices, "failed", exc.reason)
            return True
        for notice in notices:
            finish(
                self.session, notice, "sent", None, channel=channel, message_ts=ts, sent_at=self.now
            )
        self.summary.admin_notices += 1
        return True


def _deliver(run: _Run) -> None:
    plan = plan_run(run.session, run.router, run.policy, run.now)
    summary = run.summary
    summary.snoozed, summary.held, summary.rolled = plan.snoozed, plan.held, plan.rolled
    for alert, reason in plan.unroutable:
        if update_pending(run.session, alert.id, status="unroutable", error=reason):
            summary.unroutable += 1
            summary.problems.append(f"alert {alert.id}: {reason}")
    groups = group_sends(plan.send)
    for position, group in enumerate(groups):
        if stop_requested() or not run.send(group):  # a stop: the rest waits, pending
            summary.deferred = sum(len(g.alerts) for g in groups[position:])
            return
    if not stop_requested() and run.report_routing():
        summary.escalated = escalate(run.session, run.router, run.policy, run.now, summary.problem)


def deliver_pending(
    db: Engine | Session,
    client: WebClient,
    *,
    admin_channel: str | None = None,
    settings: AlertSettings | None = None,
    now: datetime | None = None,
) -> DeliverySummary:
    """Send every due pending alert once, within the fatigue controls of `settings`.

    With a session, it commits as it goes. Raises `SlackAuthError` when Slack refuses the
    token (the alerts stay pending).
    """
    policy = settings or AlertSettings()
    now = now or utcnow()
    summary = DeliverySummary()
    with session_for(db) as session:
        ttl = timedelta(hours=policy.slack_user_ttl_hours)
        router = Router(session, client, Directory.load(session), now, ttl, admin_channel)
        run = _Run(session, client, router, policy, now, summary)
        try:
            _deliver(run)
        except DeferError as exc:  # while routing: nothing was claimed, everything waits
            summary.problem(str(exc))
            summary.deferred = _pending(session)
    return summary


def _pending(session: Session) -> int:
    return len(session.exec(select(Alert.id).where(col(Alert.status) == "pending")).all())
