"""Playbook tasks in Slack: each posted once to its assignee's DM, overdue ones reminded daily.

Routing is the alerts' (`notifications.routing`: the assignee's email -> Slack user,
cached, -> DM; else their team channel; else the admin channel when one is given).
Posting is an outbox like theirs: a task is claimed by setting `posted_at` in a committed
update before anything goes to Slack, so two instances never post it twice. A failure
before the message could have been posted (rate limited, Slack unreachable, the assignee
not in Slack) gives the claim back for the next run; a failure that may have come after it
(a dropped connection while posting), or Slack refusing the message, keeps the claim: a
task is never posted twice, at the price of rarely not at all.

A reminder claims the day the same way: `reminded_at` moves to now only when it is empty or
earlier than today (UTC), so an overdue open task gets at most one reminder a day.
The message's Done button carries the task id (`action_id` `task_done`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from sqlalchemy import ColumnElement, Engine, update
from sqlmodel import Session, col, select

from notifications.failures import DeferError, HeldError, from_api_error, from_transport_error
from notifications.messages import (
    CONTEXT_MAX,
    HEADER_MAX,
    SECTION_MAX,
    SlackMessage,
    escape,
    shorten,
    validated,
)
from notifications.routing import Directory, Route, Router
from notifications.slack import SlackError
from store.db import session_for
from store.models import Account, PlaybookTask

__all__ = ["ACTION_TASK_DONE", "PostSummary", "build_task_message", "post_tasks", "remind_overdue"]

log = logging.getLogger(__name__)
ACTION_TASK_DONE = "task_done"
OPEN = "open"
STEPS_SHOWN = 12
SLACK_USER_TTL = timedelta(hours=24)


@dataclass
class PostSummary:
    """What one posting (or reminding) run did."""

    posted: int = 0
    waiting: int = 0
    """Not posted, tried again on the next run: no Slack user, a channel to fix..."""
    failed: int = 0
    """Refused by Slack, or maybe posted: never tried again."""
    deferred: int = 0
    """Left for the next run because Slack was rate limiting or unreachable."""
    problems: list[str] = field(default_factory=list)

    def describe(self, what: str = "tasks posted") -> str:
        text = f"{what}: {self.posted}"
        for name in ("waiting", "failed", "deferred"):
            if value := getattr(self, name):
                text += f", {name} {value}"
        return text


def _due_text(due: date | None, today: date) -> str:
    if due is None:
        return "no due date"
    days = (due - today).days
    if days < 0:
        return f"{due.isoformat()} ({-days} day{'' if days == -1 else 's'} overdue)"
    if days == 0:
        return f"{due.isoformat()} (today)"
    return f"{due.isoformat()} (in {days} day{'' if days == 1 else 's'})"


def build_task_message(
    task: PlaybookTask,
    account_name: str,
    *,
    today: date,
    reminder: bool = False,
    note: str | None = None,
) -> SlackMessage:
    """A task: its title, steps, account, due date, and a Done button.

    `note` says why it reached someone else than its assignee (a team or admin channel).
    """
    assert task.id is not None
    title = f"{'Overdue' if reminder else 'New task'}: {task.title}"
    shown = task.steps[:STEPS_SHOWN]
    steps = "\n".join(f"{n}. {escape(shorten(s, 500))}" for n, s in enumerate(shown, 1))
    if len(task.steps) > STEPS_SHOWN:
        steps += f"\n…and {len(task.steps) - STEPS_SHOWN} more"
    due = _due_text(task.due_on, today)
    fields = [
        MarkdownTextObject(text=f"*Account*\n{escape(shorten(account_name, 300))}"),
        MarkdownTextObject(text=f"*Due*\n{due}"),
        MarkdownTextObject(text=f"*Playbook*\n{escape(task.playbook)}"),
    ]
    origin = f"Task {task.id}" + (f" · from alert {task.alert_id}" if task.alert_id else "")
    if note:
        origin = f"{escape(note)} · {origin}"
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=shorten(title, HEADER_MAX), emoji=True)),
        SectionBlock(
            text=MarkdownTextObject(text=shorten(f"*Steps*\n{steps}", SECTION_MAX))
            if steps
            else None,
            fields=fields,
        ),
        ContextBlock(elements=[MarkdownTextObject(text=shorten(origin, CONTEXT_MAX))]),
        ActionsBlock(
            block_id=f"task:{task.id}",
            elements=[
                ButtonElement(
                    text="Done", action_id=ACTION_TASK_DONE, value=str(task.id), style="primary"
                )
            ],
        ),
    ]
    text = f"{title} ({account_name}), due {due}"
    return validated(shorten(text, 3000), blocks)


class _UnroutableError(Exception):
    """Nobody in Slack to tell; nothing was posted."""


def _route(router: Router, email: str | None) -> Route:
    """The assignee's DM (or their team channel), else the admin channel, else nowhere."""
    route = router.owner(email) if email else Route(None, reason="the task has no assignee")
    if route.channel is None and router.admin_channel:
        note = f"For {email}, who has no Slack account this app can find." if email else None
        return router.admin(note or "This task has no assignee.", route.reason or "")
    return route


def _post(client: WebClient, channel: str, route: Route, message: SlackMessage) -> None:
    where = f"posting to {channel}"
    try:
        client.chat_postMessage(channel=channel, **message.as_kwargs())
    except SlackApiError as exc:
        raise from_api_error(exc, where, route.fix) from None
    except OSError as exc:  # a lost answer may mean it was posted: never a second copy
        raise from_transport_error(exc, where, posting=True) from None


def _claim(
    session: Session, task_id: int, column: Any, now: datetime, free: ColumnElement[bool]
) -> tuple[PlaybookTask, Any] | None:
    """Set `column` to now where `free` holds, committed; the task and the old value."""
    before = session.exec(select(column).where(col(PlaybookTask.id) == task_id)).first()
    result = session.exec(
        update(PlaybookTask)
        .where(col(PlaybookTask.id) == task_id, col(PlaybookTask.status) == OPEN, free)
        .values({column: now})
    )
    session.commit()
    if result.rowcount != 1:
        return None
    task = session.get(PlaybookTask, task_id, populate_existing=True)
    return (task, before) if task is not None else None


def _release(session: Session, task_id: int, column: Any, now: datetime, before: Any) -> None:
    session.exec(
        update(PlaybookTask)
        .where(col(PlaybookTask.id) == task_id, column == now)
        .values({column: before})
    )
    session.commit()


@dataclass(frozen=True)
class _Run:
    """One posting or reminding run: which tasks, which column claims them, and how."""

    pick: Callable[[Session], list[int]]
    column: Any
    free: ColumnElement[bool]
    reminder: bool


def _prepare(
    session: Session, router: Router, task: PlaybookTask, run: _Run
) -> tuple[str, Route, SlackMessage]:
    """Where the task goes and what it says; raises when it can go nowhere."""
    account = session.get(Account, task.account_id) if task.account_id else None
    route = _route(router, task.assignee_email)
    if route.channel is None:
        raise _UnroutableError(route.reason or "nowhere to post it")
    message = build_task_message(
        task,
        account.name if account else "no account",
        today=router.now.astimezone(UTC).date(),
        reminder=run.reminder,
        note=route.note,
    )
    return route.channel, route, message


def _attempt(
    session: Session, router: Router, task: PlaybookTask, run: _Run
) -> tuple[str, str] | None:
    """Post one claimed task: None when posted, else what to do with the claim and why.

    `release`: nothing was posted, try on the next run; `defer`: the same, and stop this
    run; `keep`: Slack refused it, or it may have been posted: never try again.
    """
    try:
        channel, route, message = _prepare(session, router, task, run)
    except DeferError as exc:
        return "defer", str(exc)
    except SlackError:
        raise
    except Exception as exc:  # no Slack user, a lookup refused...: nothing was posted
        return "release", str(exc)
    try:
        _post(router.client, channel, route, message)
    except DeferError as exc:
        return "defer", str(exc)
    except HeldError as exc:
        return "release", str(exc)
    except SlackError:
        raise
    except Exception as exc:  # refused, or maybe posted: the claim stays, never twice
        return "keep", str(exc)
    return None


def _deliver(
    db: Engine | Session, router_for: Callable[[Session], Router], run: _Run
) -> PostSummary:
    """Claim each picked task, post it, and keep or give back the claim as the outcome says."""
    summary = PostSummary()
    with session_for(db) as session:
        router = router_for(session)
        now = router.now
        ids = run.pick(session)
        for position, task_id in enumerate(ids):
            claimed = _claim(session, task_id, run.column, now, run.free)
            if claimed is None:
                continue  # done meanwhile, or another instance took it
            task, before = claimed
            try:
                outcome = _attempt(session, router, task, run)
            except SlackError:  # the token: nothing can go out until it is fixed
                _release(session, task_id, run.column, now, before)
                raise
            if outcome is None:
                summary.posted += 1
                log.info("task %s %s", task_id, "reminded" if run.reminder else "posted")
                continue
            what, why = outcome
            summary.problems.append(f"task {task_id}: {why}")
            if what == "keep":
                summary.failed += 1
                continue
            _release(session, task_id, run.column, now, before)
            if what == "defer":
                summary.deferred = len(ids) - position
                break
            summary.waiting += 1
    return summary


def _router(
    client: WebClient, now: datetime, admin_channel: str | None, ttl: timedelta
) -> Callable[[Session], Router]:
    def make(session: Session) -> Router:
        directory = Directory.load(session)
        return Router(session, client, directory, now, ttl, admin_channel=admin_channel)

    return make


def post_tasks(
    db: Engine | Session,
    client: WebClient,
    now: datetime,
    *,
    admin_channel: str | None = None,
    slack_user_ttl: timedelta = SLACK_USER_TTL,
) -> PostSummary:
    """Post every open task not posted yet to its assignee's DM, once.

    A task whose assignee is not in Slack goes to `admin_channel` when one is given, and
    otherwise waits for a later run. With a session, it commits as it goes.
    """

    def pick(session: Session) -> list[int]:
        stmt = (
            select(PlaybookTask.id)
            .where(col(PlaybookTask.status) == OPEN, col(PlaybookTask.posted_at).is_(None))
            .order_by(col(PlaybookTask.id))
        )
        return [i for i in session.exec(stmt) if i is not None]

    run = _Run(pick, PlaybookTask.posted_at, col(PlaybookTask.posted_at).is_(None), False)
    return _deliver(db, _router(client, now, admin_channel, slack_user_ttl), run)


def remind_overdue(
    db: Engine | Session,
    client: WebClient,
    now: datetime,
    *,
    admin_channel: str | None = None,
    slack_user_ttl: timedelta = SLACK_USER_TTL,
) -> PostSummary:
    """Remind the assignee of each posted open task past its due date, at most once a day."""
    today = now.astimezone(UTC).date()
    start_of_day = datetime.combine(today, time.min, UTC)
    reminded = col(PlaybookTask.reminded_at)
    free = reminded.is_(None) | (reminded < start_of_day)

    def pick(session: Session) -> list[int]:
        stmt = (
            select(PlaybookTask.id)
            .where(
                col(PlaybookTask.status) == OPEN,
                col(PlaybookTask.posted_at).is_not(None),
                col(PlaybookTask.due_on) < today,
                free,
            )
            .order_by(col(PlaybookTask.due_on), col(PlaybookTask.id))
        )
        return [i for i in session.exec(stmt) if i is not None]

    run = _Run(pick, PlaybookTask.reminded_at, free, True)
    return _deliver(db, _router(client, now, admin_channel, slack_user_ttl), run)
