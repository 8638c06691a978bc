"""The buttons and the form: what a click on an alert (or a task) does, and the dispatch of
every Slack payload, over HTTP or Socket Mode, to its handler.

A click is acknowledged at once with an empty answer; the work follows it:

- Acknowledge: `actions.acknowledge` by the person's email, then the message is edited to
  say "Acknowledged by @person" and loses its buttons.
- Snooze 7 days: `actions.snooze` (reason "snoozed from Slack"), the message edited alike.
- Log sentiment: opens the sentiment form (`views.open` with the click's trigger id); its
  submission is checked at once and recorded afterwards with origin "slack".
- Start playbook / Done (a playbook task): through `notifications.playbooks`.

A button's value is the id of its alert (or task). Problems (the alert is gone, Slack would
not open the form) are told to the person alone, in one sentence.

On a message that also lists other alerts about the account, Acknowledge and Snooze act on
them too (`actions.py`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from notifications.actions import ActionError, acknowledge, snooze
from notifications.grouping import also_items, folded
from notifications.messages import (
    ACTION_ACKNOWLEDGE,
    ACTION_LOG_SENTIMENT,
    ACTION_SNOOZE,
    ACTION_START_PLAYBOOK,
    AlertFacts,
    build_alert_message,
)
from notifications.playbooks_slack import ACTION_TASK_DONE
from notifications.serve_blocks import (
    NOTE_ACTION,
    NOTE_BLOCK,
    SENTIMENT_ACTION,
    SENTIMENT_BLOCK,
    SENTIMENT_CALLBACK,
    escape,
    sentiment_modal,
    settled_blocks,
)
from notifications.serve_commands import handle_command, record_from_slack
from notifications.serve_context import Answer, Origin, SlackContext
from scoring.measures import SENTIMENTS
from store.models import Account, Alert, PlaybookTask

__all__ = [
    "SNOOZE_DAYS",
    "SNOOZE_REASON",
    "Click",
    "handle",
    "handle_interaction",
]

log = logging.getLogger(__name__)

SNOOZE_DAYS = 7
SNOOZE_REASON = "snoozed from Slack"


@dataclass(frozen=True)
class Click:
    """One button pressed: which, on what (the alert or task id), where and by whom."""

    action_id: str
    target: int
    block_id: str
    origin: Origin
    trigger_id: str | None = None
    message_ts: str | None = None
    blocks: tuple[Mapping[str, Any], ...] = ()
    text: str = ""


def handle(ctx: SlackContext, kind: str, payload: Mapping[str, Any]) -> Answer:
    """Any Slack payload: `slash_commands` or `interactive` (Socket Mode's names)."""
    if kind == "slash_commands":
        return handle_command(ctx, payload)
    if kind == "interactive":
        return handle_interaction(ctx, payload)
    return Answer()


def handle_interaction(ctx: SlackContext, payload: Mapping[str, Any]) -> Answer:
    """A `block_actions` or `view_submission` payload; other kinds are acknowledged only."""
    kind = payload.get("type")
    if kind == "block_actions":
        jobs = tuple(partial(_BUTTONS[c.action_id], ctx, c) for c in clicks(payload))
        return Answer(later=jobs)
    view = payload.get("view") or {}
    if kind == "view_submission" and view.get("callback_id") == SENTIMENT_CALLBACK:
        return _sentiment_submitted(ctx, payload, view)
    return Answer()


def clicks(payload: Mapping[str, Any]) -> list[Click]:
    """The payload's presses of buttons this app knows, with a numeric value."""
    origin = Origin.of_interaction(payload)
    message = payload.get("message") or {}
    container = payload.get("container") or {}
    found = []
    for action in payload.get("actions") or []:
        action_id, value = str(action.get("action_id", "")), str(action.get("value", ""))
        if action_id not in _BUTTONS or not (value.isascii() and value.isdigit()):
            log.info("ignored Slack action %r with value %r", action_id, value)
            continue
        found.append(
            Click(
                action_id=action_id,
                target=int(value),
                block_id=str(action.get("block_id", "")),
                origin=origin,
                trigger_id=payload.get("trigger_id"),
                message_ts=container.get("message_ts") or message.get("ts"),
                blocks=tuple(message.get("blocks") or ()),
                text=str(message.get("text") or ""),
            )
        )
    return found


def _mention(user: str) -> str:
    return f"<@{user}>"


def _person(by: str | None) -> str:
    """Who acted, as stored: a Slack user id becomes a mention, an email stays as it is."""
    if by and by[:1] in ("U", "W") and by.isalnum():
        return _mention(by)
    return escape(by or "someone")


def _stored_message(ctx: SlackContext, alert_id: int) -> tuple[str, str, str, list[Any]] | None:
    """Channel, ts, text and blocks of the alert's message, from the store (`message_ts` is
    "channel ts"), for clicks whose payload does not carry the message."""
    with Session(ctx.engine) as session:
        alert = session.get(Alert, alert_id)
        if alert is None or not alert.message_ts or not alert.payload:
            return None
        channel, _, ts = alert.message_ts.partition(" ")
        also = also_items(folded(session, [alert_id]).get(alert_id, []))
        message = build_alert_message(AlertFacts.from_payload(alert.payload), alert_id, also=also)
    kwargs = message.as_kwargs()
    return channel, ts, kwargs["text"], kwargs["blocks"]


def _settle(ctx: SlackContext, click: Click, note: str, alert_id: int | None = None) -> None:
    """Show `note` on the message the button was on, in place of its buttons."""
    where: tuple[str, str, str, Sequence[Mapping[str, Any]]] | None = None
    if click.origin.channel and click.message_ts and click.blocks:
        where = (click.origin.channel, click.message_ts, click.text, click.blocks)
    elif alert_id is not None:
        where = _stored_message(ctx, alert_id)
    if where is None:
        ctx.reply(click.origin, f"{note}.")
        return
    channel, ts, text, blocks = where
    try:
        ctx.client.chat_update(
            channel=channel,
            ts=ts,
            text=f"{text} ({note})" if text else note,
            blocks=settled_blocks(blocks, click.block_id, note),
        )
    except SlackApiError as exc:
        log.warning("chat.update failed: %s", exc.response.get("error"))
        ctx.reply(click.origin, f"{note}.")


def _acknowledge(ctx: SlackContext, click: Click) -> None:
    by = ctx.people.who(click.origin.user)
    try:
        done = acknowledge(ctx.engine, click.target, by)
    except ActionError as exc:
        ctx.reply(click.origin, f"Nothing changed: {escape(str(exc))}.")
        return
    if done.first:
        note = f"Acknowledged by {_mention(click.origin.user)}"
    else:
        note = f"Already acknowledged by {_person(done.by)}"
    _settle(ctx, click, note, click.target)


def _snooze(ctx: SlackContext, click: Click) -> None:
    by = ctx.people.who(click.origin.user)
    try:
        held = snooze(ctx.engine, click.target, SNOOZE_DAYS, SNOOZE_REASON, by)
    except (ActionError, ValueError) as exc:
        ctx.reply(click.origin, f"Nothing changed: {escape(str(exc))}.")
        return
    note = (
        f"Snoozed for {SNOOZE_DAYS} days by {_mention(click.origin.user)}, "
        f"until {held.until:%Y-%m-%d}"
    )
    _settle(ctx, click, note, click.target)


def _open_sentiment_form(ctx: SlackContext, click: Click) -> None:
    with Session(ctx.engine) as session:
        alert = session.get(Alert, click.target)
        account = session.get(Account, alert.account_id) if alert and alert.account_id else None
        found = (account.id, account.name) if account is not None and account.id else None
    if found is None:
        ctx.reply(click.origin, f"Alert {click.target} is about no account any more.")
        return
    if not click.trigger_id:
        ctx.reply(click.origin, "Slack sent no trigger for the form: click Log sentiment again.")
        return
    view = sentiment_modal(found[0], found[1], click.target, click.origin.channel)
    try:
        ctx.client.views_open(trigger_id=click.trigger_id, view=view)
    except SlackApiError as exc:
        code = exc.response.get("error")
        ctx.reply(click.origin, f"Slack did not open the form ({code}): click Log sentiment again.")


def _field(values: Mapping[str, Any], block: str, action: str) -> Mapping[str, Any]:
    found = (values.get(block) or {}).get(action) or {}
    return found if isinstance(found, Mapping) else {}


def _sentiment_submitted(
    ctx: SlackContext, payload: Mapping[str, Any], view: Mapping[str, Any]
) -> Answer:
    """Check the form at once (errors show in the form); record after the answer."""
    values = (view.get("state") or {}).get("values") or {}
    chosen = _field(values, SENTIMENT_BLOCK, SENTIMENT_ACTION).get("selected_option") or {}
    value = str(chosen.get("value") or "")
    note = str(_field(values, NOTE_BLOCK, NOTE_ACTION).get("value") or "").strip()
    try:
        metadata = json.loads(str(view.get("private_metadata") or "{}"))
        account_id = int(metadata["account_id"])
    except (ValueError, KeyError, TypeError):
        return _form_error("This form is out of date: open it again from the alert.")
    if value not in SENTIMENTS:
        return _form_error("Pick green, yellow or red.")
    user = str((payload.get("user") or {}).get("id") or "")
    origin = Origin(user=user, channel=metadata.get("channel") or None)
    return Answer(later=(partial(record_from_slack, ctx, origin, account_id, value, note),))


def _form_error(text: str) -> Answer:
    return Answer({"response_action": "errors", "errors": {SENTIMENT_BLOCK: text}})


def _task_lines(tasks: Sequence[PlaybookTask]) -> str:
    lines = []
    for task in tasks:
        parts = [escape(task.title)]
        if task.assignee_email:
            parts.append(escape(task.assignee_email))
        if task.due_on:
            parts.append(f"due {task.due_on.isoformat()}")
        lines.append("• " + ", ".join(parts))
    return "\n".join(lines)


def _start_playbook(ctx: SlackContext, click: Click) -> None:
    from notifications.playbooks import start_playbook  # loads the playbooks file: on use

    by = ctx.people.who(click.origin.user)
    try:
        tasks = start_playbook(ctx.engine, click.target, by)
    except (LookupError, ValueError) as exc:
        ctx.reply(click.origin, f"No playbook started: {escape(str(exc))}.")
        return
    if not tasks:
        ctx.reply(click.origin, "No playbook fits this alert, so no task was created.")
        return
    ctx.reply(click.origin, f"Playbook tasks for this alert:\n{_task_lines(tasks)}")


def _task_done(ctx: SlackContext, click: Click) -> None:
    from notifications.playbooks import complete_task  # loads the playbooks file: on use

    by = ctx.people.who(click.origin.user)
    try:
        complete_task(ctx.engine, click.target, by)
    except (LookupError, ValueError) as exc:
        ctx.reply(click.origin, f"Nothing changed: {escape(str(exc))}.")
        return
    _settle(ctx, click, f"Done by {_mention(click.origin.user)}")


_BUTTONS: dict[str, Callable[[SlackContext, Click], None]] = {
    ACTION_ACKNOWLEDGE: _acknowledge,
    ACTION_SNOOZE: _snooze,
    ACTION_LOG_SENTIMENT: _open_sentiment_form,
    ACTION_START_PLAYBOOK: _start_playbook,
    ACTION_TASK_DONE: _task_done,
}
