"""Alerts: which score changes deserve a message, and delivering them exactly once.

`detect_alerts` compares each account's score as of a day with its previous score and
records an `Alert` when the band got worse. The fingerprint
`band_drop:{account_id}:{previous band}->{band}:{as_of}` has a unique constraint and the
insert ignores conflicts, so running the pipeline twice, or on two instances, records one.

`deliver_pending` is an outbox: each pending alert is claimed (`pending` -> `sending`,
committed) before anything goes to Slack, then marked `sent`, `unroutable` or `failed`
with the reason. An alert that was claimed is never sent again, whatever happens after.
Routing: owner email -> `users.lookupByEmail` -> `conversations.open` -> `chat.postMessage`.
An owner unknown to Slack makes the alert `unroutable` (and the admin channel hears of it,
once per run); alerts of accounts without an owner go to the admin channel when one is set.

    pending -> sending -> sent | unroutable | failed
       ^          |
       +----------+  back to pending when Slack refused the token, stayed rate limited,
                     or could not be reached before the message was posted
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, and_, func, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from notifications.messages import AlertFacts, build_admin_notice, build_alert_message, headline
from notifications.slack import SlackError, error_code, raise_for_auth
from scoring.scorecard import band_rank
from store.db import session_for
from store.models import Account, Alert, HealthScore
from store.types import utcnow
from store.upsert import bulk_upsert

__all__ = ["DeliverySummary", "DetectionSummary", "deliver_pending", "detect_alerts", "fingerprint"]

log = logging.getLogger(__name__)
RULE_BAND_DROP = "band_drop"


def fingerprint(account_id: int, previous_band: str, band: str, as_of: date) -> str:
    return f"{RULE_BAND_DROP}:{account_id}:{previous_band}->{band}:{as_of.isoformat()}"


@dataclass(frozen=True)
class DetectionSummary:
    """Band drops found as of a day, and how many of them were new alerts."""

    as_of: date
    drops: int
    created: int


@dataclass
class DeliverySummary:
    """What one delivery run did."""

    sent: int = 0
    unroutable: int = 0
    failed: int = 0
    deferred: int = 0
    admin_notices: int = 0
    problems: list[str] = field(default_factory=list)


def detect_alerts(db: Engine | Session, as_of: date) -> DetectionSummary:
    """Record a pending alert for each live account whose band dropped as of `as_of`."""
    previous = aliased(HealthScore)
    last_before = (
        select(
            col(HealthScore.account_id).label("account_id"),
            func.max(HealthScore.as_of).label("day"),
        )
        .where(col(HealthScore.as_of) < as_of)
        .group_by(col(HealthScore.account_id))
        .subquery()
    )
    stmt = (
        select(HealthScore, previous, Account)
        .join(last_before, last_before.c.account_id == HealthScore.account_id)
        .join(
            previous,
            and_(
                col(previous.account_id) == last_before.c.account_id,
                col(previous.as_of) == last_before.c.day,
            ),
        )
        .join(Account, col(Account.id) == HealthScore.account_id)
        .where(col(HealthScore.as_of) == as_of, col(Account.deleted_at).is_(None))
    )
    now = utcnow()
    with session_for(db) as session:
        rows: list[dict[str, Any]] = []
        for current, before, account in session.exec(stmt).all():
            if band_rank(current.band) <= band_rank(before.band):
                continue
            facts = AlertFacts(
                account_name=account.name,
                score=current.score,
                band=current.band,
                previous_score=before.score,
                previous_band=before.band,
                as_of=as_of,
                drivers=[d["text"] for d in current.drivers if d.get("direction") != "positive"],
                renewal_date=account.renewal_date,
                arr_minor=account.arr_minor or None,
                currency=account.currency,
                scorecard_version=current.scorecard_version,
            )
            rows.append(
                {
                    "fingerprint": fingerprint(
                        current.account_id, before.band, current.band, as_of
                    ),
                    "account_id": current.account_id,
                    "rule": RULE_BAND_DROP,
                    "severity": "critical" if current.band == "red" else "warning",
                    "recipient_email": account.owner_email,
                    "status": "pending",
                    "text": headline(facts),
                    "payload": facts.to_payload(),
                    "created_at": now,
                }
            )
        prints = [row["fingerprint"] for row in rows]
        known = set(
            session.exec(select(Alert.fingerprint).where(col(Alert.fingerprint).in_(prints)))
        )
        bulk_upsert(session, Alert, rows, keys=("fingerprint",), update=())
    return DetectionSummary(as_of=as_of, drops=len(rows), created=len(set(prints) - known))


class _Router:
    """Owner email -> DM channel, each lookup made once per run."""

    def __init__(self, client: WebClient) -> None:
        self.client = client
        self.users: dict[str, str | None] = {}
        self.dms: dict[str, str] = {}

    def user(self, email: str) -> str | None:
        key = email.strip().lower()
        if key not in self.users:
            try:
                found = self.client.users_lookupByEmail(email=email)
                self.users[key] = str(found["user"]["id"])
            except SlackApiError as exc:
                if error_code(exc) != "users_not_found":
                    raise
                self.users[key] = None
        return self.users[key]

    def dm(self, user: str) -> str:
        if user not in self.dms:
            self.dms[user] = str(self.client.conversations_open(users=user)["channel"]["id"])
        return self.dms[user]


class _DeferError(Exception):
    """Nothing was posted and trying later may work: back to pending, stop this run."""


class _UndeliverableError(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _slack_failure(exc: SlackApiError, what: str) -> Exception:
    raise_for_auth(exc)
    if exc.response.status_code == 429:
        return _DeferError("Slack kept rate limiting; will retry on the next run")
    return _UndeliverableError("failed", f"{what}: {error_code(exc)}")


def _route(alert: Alert, router: _Router, admin_channel: str | None) -> str:
    """The channel to post the alert to."""
    email = alert.recipient_email
    if not email:
        if admin_channel:
            return admin_channel
        raise _UndeliverableError(
            "unroutable", "the account has no owner and no admin channel (SLACK__ADMIN_CHANNEL)"
        )
    try:
        user = router.user(email)
        if user is None:
            raise _UndeliverableError("unroutable", f"no Slack user has the email {email}")
        return router.dm(user)
    except SlackApiError as exc:
        raise _slack_failure(exc, f"finding {email} in Slack") from None
    except OSError as exc:  # nothing was posted: safe to try again later
        raise _DeferError(f"Slack unreachable: {exc}") from None


def _post(alert: Alert, channel: str, client: WebClient) -> str:
    """Post the alert; the id of the channel it landed in."""
    assert alert.id is not None
    message = build_alert_message(AlertFacts.from_payload(alert.payload), alert.id)
    try:
        response = client.chat_postMessage(channel=channel, **message.as_kwargs())
    except SlackApiError as exc:
        raise _slack_failure(exc, f"posting to {channel}") from None
    except OSError as exc:  # the message may have been posted: never risk a second copy
        raise _UndeliverableError("failed", f"delivery uncertain, not retried: {exc}") from None
    return str(response["channel"])


def _claim(session: Session, alert_id: int) -> Alert | None:
    result = session.exec(
        update(Alert)
        .where(col(Alert.id) == alert_id, col(Alert.status) == "pending")
        .values(status="sending")
    )
    session.commit()
    return session.get(Alert, alert_id) if result.rowcount == 1 else None


def _finish(session: Session, alert: Alert, status: str, error: str | None) -> None:
    alert.status, alert.error = status, error
    session.add(alert)
    session.commit()


def deliver_pending(
    db: Engine | Session, client: WebClient, *, admin_channel: str | None = None
) -> DeliverySummary:
    """Send every pending alert once. With a session, it commits as it goes."""
    summary = DeliverySummary()
    router = _Router(client)
    unroutable: list[str] = []
    with session_for(db) as session:
        pending = session.exec(
            select(Alert.id).where(col(Alert.status) == "pending").order_by(col(Alert.id))
        ).all()
        for position, alert_id in enumerate(pending):
            assert alert_id is not None
            alert = _claim(session, alert_id)
            if alert is None:
                continue  # another instance took it
            try:
                channel = _post(alert, _route(alert, router, admin_channel), client)
            except _UndeliverableError as exc:
                _finish(session, alert, exc.status, exc.reason)
                summary.problems.append(f"alert {alert.id}: {exc.reason}")
                if exc.status == "unroutable":
                    summary.unroutable += 1
                    unroutable.append(f"{alert.text}, for {alert.recipient_email}: {exc.reason}")
                else:
                    summary.failed += 1
                continue
            except _DeferError as exc:
                _finish(session, alert, "pending", str(exc))
                summary.deferred = len(pending) - position
                summary.problems.append(str(exc))
                break
            except SlackError as exc:  # the token: nothing can go out until it is fixed
                _finish(session, alert, "pending", str(exc))
                raise
            except Exception as exc:  # unknown state: record it, never send twice
                _finish(session, alert, "failed", f"unexpected error: {exc!r}")
                summary.failed += 1
                summary.problems.append(f"alert {alert.id}: unexpected error: {exc!r}")
                continue
            alert.channel, alert.sent_at = channel, utcnow()
            _finish(session, alert, "sent", None)
            summary.sent += 1
            log.info("alert %s sent to %s", alert.id, channel)
        if unroutable and admin_channel:
            summary.admin_notices += _notify_admin(client, admin_channel, unroutable, summary)
    return summary


def _notify_admin(
    client: WebClient, channel: str, lines: list[str], summary: DeliverySummary
) -> int:
    notice = build_admin_notice("Health alerts that could not be delivered", lines)
    try:
        client.chat_postMessage(channel=channel, **notice.as_kwargs())
    except SlackApiError as exc:
        raise_for_auth(exc)
        summary.problems.append(f"admin notice to {channel}: {error_code(exc)}")
        return 0
    return 1
