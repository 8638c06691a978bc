"""Playbooks: an alert starts the tasks a CS team does about it, each created exactly once.

A playbook (see `playbooks_config`) names an alert rule and task templates. Starting it for
an alert renders each template for the alert's account (title, steps, due date in business
days, assignee: the account's CSM or their team lead) and inserts the tasks with the
fingerprint `playbook:{name}:{account_id}:{alert_id}:{task index}` under a unique
constraint, ignoring conflicts: starting twice, from a button and the scheduler at once, or
on two instances, creates each task once, and every caller gets the same rows back.

- `start_playbook`: every playbook the alert's rule triggers (a person asked: `auto` or not).
- `run_playbooks`: the `auto` playbooks, for recent alerts that have not started them yet.
- `complete_task`: done, once; the first completion stands.
- `post_tasks`, `remind_overdue` (`playbooks_slack`): the assignee hears of each task in a
  DM with a Done button, and of an overdue one at most once a day.
- Copying open tasks to the CRM is the connectors' side (`connectors/task_writeback.py`):
  data flows left to right, and a CRM write-back is a connector's job.

    open --complete_task--> done
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, update
from sqlmodel import Session, col, select

from notifications.messages import format_money
from notifications.playbooks_config import (
    Playbook,
    PlaybookConfig,
    PlaybookConfigError,
    add_business_days,
    load_playbooks,
)
from notifications.playbooks_slack import (
    ACTION_TASK_DONE,
    PostSummary,
    post_tasks,
    remind_overdue,
)
from notifications.routing import Directory
from settings import get_settings
from store.db import session_for
from store.models import Account, Alert, HealthScore, PlaybookTask
from store.types import utcnow
from store.upsert import bulk_upsert

__all__ = [
    "ACTION_TASK_DONE",
    "AlertNotFoundError",
    "PlaybookConfigError",
    "PlaybookLookupError",
    "PostSummary",
    "RunSummary",
    "TaskNotFoundError",
    "complete_task",
    "configured_playbooks",
    "fingerprint",
    "post_tasks",
    "remind_overdue",
    "run_playbooks",
    "start_playbook",
]

log = logging.getLogger(__name__)
OPEN, DONE = "open", "done"


class PlaybookLookupError(LookupError):
    """What a button or command pointed at does not exist; the message says so plainly."""


class AlertNotFoundError(PlaybookLookupError):
    """The alert a playbook was started from does not exist."""


class TaskNotFoundError(PlaybookLookupError):
    """The task does not exist."""


@dataclass(frozen=True)
class RunSummary:
    """What one `run_playbooks` did."""

    alerts: int
    """Recent alerts that started at least one automatic playbook."""
    started: int
    """Playbooks started (one alert can start several)."""
    created: int
    """Tasks created."""

    def describe(self) -> str:
        return (
            f"playbooks: {self.started} started for {self.alerts} alert"
            f"{'' if self.alerts == 1 else 's'}, {self.created} task"
            f"{'' if self.created == 1 else 's'} created"
        )


@dataclass(frozen=True)
class _Facts:
    """What the templates of one account's tasks are filled with."""

    account: Account
    band: str | None
    score: float | None
    lead_email: str | None


def fingerprint(playbook: str, account_id: int, alert_id: int | None, index: int) -> str:
    return f"playbook:{playbook}:{account_id}:{alert_id}:{index}"


def configured_playbooks() -> PlaybookConfig:
    """The playbooks of `PLAYBOOKS__PATH`, or the shipped defaults."""
    return load_playbooks(get_settings().playbooks.path)


def _latest_scores(session: Session, account_ids: set[int]) -> dict[int, HealthScore]:
    latest = (
        select(col(HealthScore.account_id), func.max(HealthScore.as_of).label("day"))
        .where(col(HealthScore.account_id).in_(account_ids))
        .group_by(col(HealthScore.account_id))
        .subquery()
    )
    stmt = select(HealthScore).join(
        latest,
        (latest.c.account_id == HealthScore.account_id) & (latest.c.day == HealthScore.as_of),
    )
    return {score.account_id: score for score in session.exec(stmt)}


def _facts(session: Session, alerts: Sequence[Alert]) -> dict[int, _Facts]:
    """Alert id -> the facts of its live account (alerts of deleted accounts left out)."""
    ids = {a.account_id for a in alerts if a.account_id is not None}
    if not ids:
        return {}
    accounts = {
        a.id: a
        for a in session.exec(
            select(Account).where(col(Account.id).in_(ids), col(Account.deleted_at).is_(None))
        )
    }
    scores = _latest_scores(session, ids)
    directory = Directory.load(session)
    facts: dict[int, _Facts] = {}
    for alert in alerts:
        account = accounts.get(alert.account_id or -1)
        if account is None or alert.id is None:
            continue
        latest = scores.get(account.id or -1)
        band = alert.payload.get("band") or (latest.band if latest else None)
        score = alert.payload.get("score", latest.score if latest else None)
        owner = account.owner_email
        lead = directory.lead(owner) if owner else directory.owner_lead(account)
        facts[alert.id] = _Facts(account, band, score, lead)
    return facts


def _values(playbook: Playbook, alert: Alert, facts: _Facts, due: date) -> dict[str, str]:
    account = facts.account
    return {
        "account": account.name,
        "account_id": str(account.id),
        "domain": account.domain or "",
        "segment": account.segment or "",
        "owner_email": account.owner_email or "",
        "band": facts.band or "unknown",
        "score": f"{facts.score:.0f}" if isinstance(facts.score, int | float) else "unknown",
        "severity": alert.severity,
        "rule": alert.rule,
        "renewal_date": account.renewal_date.isoformat() if account.renewal_date else "unknown",
        "arr": format_money(account.arr_minor, account.currency)
        if account.arr_minor
        else "unknown",
        "due_on": due.isoformat(),
        "playbook": playbook.name,
    }


def _task_rows(
    playbook: Playbook, alert: Alert, facts: _Facts, now: datetime
) -> list[dict[str, Any]]:
    account = facts.account
    assert account.id is not None
    rows = []
    for index, template in enumerate(playbook.tasks):
        due = add_business_days(now.date(), template.due_in_business_days)
        title, steps = template.render(_values(playbook, alert, facts, due))
        owner = account.owner_email
        assignee = (facts.lead_email or owner) if template.assignee == "lead" else owner
        rows.append(
            {
                "fingerprint": fingerprint(playbook.name, account.id, alert.id, index),
                "account_id": account.id,
                "playbook": playbook.name,
                "title": title,
                "steps": steps,
                "assignee_email": assignee,
                "status": OPEN,
                "due_on": due,
                "created_at": now,
                "alert_id": alert.id,
            }
        )
    return rows


def _insert(session: Session, rows: list[dict[str, Any]]) -> tuple[list[PlaybookTask], int]:
    """Insert the rows that are new; every row's task (in order) and how many were new."""
    prints = [row["fingerprint"] for row in rows]
    if not prints:
        return [], 0
    by_print = select(PlaybookTask).where(col(PlaybookTask.fingerprint).in_(prints))
    known = {t.fingerprint for t in session.exec(by_print)}
    bulk_upsert(session, PlaybookTask, rows, keys=("fingerprint",), update=())
    session.flush()
    found = {t.fingerprint: t for t in session.exec(by_print)}
    return [found[p] for p in prints if p in found], len(set(found) - known)


def start_playbook(
    db: Engine | Session, alert_id: int, by: str | None, now: datetime | None = None
) -> list[PlaybookTask]:
    """Start every playbook the alert triggers for its account: the tasks, new or existing.

    An alert about no account, or about a deleted one, or of a rule no playbook names,
    starts nothing. With a session, the caller commits.
    """
    now = now or utcnow()
    config = configured_playbooks()
    with session_for(db) as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise AlertNotFoundError(f"alert {alert_id} no longer exists")
        facts = _facts(session, [alert]).get(alert_id)
        if facts is None:
            return []
        rows = [
            row
            for playbook in config.triggered(alert.rule, facts.band, alert.severity)
            for row in _task_rows(playbook, alert, facts, now)
        ]
        tasks, created = _insert(session, rows)
    if created:
        log.info("%d playbook tasks for alert %s started by %s", created, alert_id, by or "?")
    return tasks


def complete_task(
    db: Engine | Session, task_id: int, by: str | None, now: datetime | None = None
) -> PlaybookTask:
    """Mark the task done; completing it again changes nothing (the first completion stands)."""
    now = now or utcnow()
    with session_for(db) as session:
        result = session.exec(
            update(PlaybookTask)
            .where(col(PlaybookTask.id) == task_id, col(PlaybookTask.status) == OPEN)
            .values(status=DONE, completed_at=now)
        )
        task = session.get(PlaybookTask, task_id, populate_existing=True)
        if task is None:
            raise TaskNotFoundError(f"task {task_id} no longer exists")
        if result.rowcount == 1:
            log.info("task %s done, by %s", task_id, by or "?")
        return task


def _handled(session: Session, alert_ids: Iterable[int]) -> set[tuple[int, str]]:
    """(alert id, playbook) pairs that already have tasks."""
    ids = list(alert_ids)
    if not ids:
        return set()
    stmt = (
        select(col(PlaybookTask.alert_id), col(PlaybookTask.playbook))
        .where(col(PlaybookTask.alert_id).in_(ids))
        .distinct()
    )
    return {(alert_id, name) for alert_id, name in session.exec(stmt) if alert_id is not None}


def run_playbooks(
    db: Engine | Session,
    now: datetime,
    *,
    config: PlaybookConfig | None = None,
    lookback_days: int | None = None,
) -> RunSummary:
    """Start the `auto` playbooks for recent alerts that match their triggers, once each."""
    config = config or configured_playbooks()
    auto = [p for p in config.playbooks if p.auto]
    if not auto:
        return RunSummary(0, 0, 0)
    days = lookback_days or get_settings().playbooks.lookback_days
    with session_for(db) as session:
        alerts = list(
            session.exec(
                select(Alert)
                .where(
                    col(Alert.rule).in_({p.trigger.rule for p in auto}),
                    col(Alert.account_id).is_not(None),
                    col(Alert.created_at) >= now - timedelta(days=days),
                    col(Alert.created_at) <= now,
                )
                .order_by(col(Alert.id))
            )
        )
        done = _handled(session, (a.id for a in alerts if a.id is not None))
        facts = _facts(session, alerts)
        rows: list[dict[str, Any]] = []
        started: set[tuple[int, str]] = set()
        for alert in alerts:
            known = facts.get(alert.id or -1)
            if known is None:
                continue
            for playbook in auto:
                key = (alert.id or -1, playbook.name)
                if key in done or not playbook.trigger.matches(
                    alert.rule, known.band, alert.severity
                ):
                    continue
                rows.extend(_task_rows(playbook, alert, known, now))
                started.add(key)
        _tasks, created = _insert(session, rows)
    return RunSummary(len({a for a, _ in started}), len(started), created)
