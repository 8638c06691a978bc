"""The alert's buttons and the sentiment form, clicked through the signed HTTP endpoint:
what each does in the store, and how the message in Slack changes (through the emulator)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from notifications.messages import (
    ACTION_ACKNOWLEDGE,
    ACTION_LOG_SENTIMENT,
    ACTION_SNOOZE,
    ACTION_START_PLAYBOOK,
)
from notifications.playbooks_slack import ACTION_TASK_DONE
from notifications.serve_context import People
from sandbox.slack import user_id
from store.db import session_scope
from store.models import Alert, PlaybookTask, SentimentEntry, Snooze
from store.types import utcnow
from tests.notifications.conftest import SandboxFactory
from tests.notifications.serve_world import JO, SAM, Asgi, World, build_world, form, sign


@pytest.fixture
def world(engine: Engine, slack_sandbox: SandboxFactory) -> World:
    return build_world(engine, slack_sandbox(rate_limit=None))


def _post(world: World, payload: dict[str, Any]) -> tuple[int, bytes]:
    body = form(payload)
    response = Asgi(world.app).post("/slack/actions", content=body, headers=sign(body))
    return response.status_code, response.content


def _alert(world: World) -> Alert:
    with Session(world.engine) as session:
        alert = session.get(Alert, world.alert_id)
        assert alert is not None
        return alert


def _replies(world: World) -> list[str]:
    return [r["body"]["text"] for r in world.slack.recorder.responses]


def test_acknowledge_records_the_email_and_settles_the_message(world: World) -> None:
    assert _post(world, world.click(ACTION_ACKNOWLEDGE)) == (200, b"")
    alert = _alert(world)
    assert alert.acknowledged_by == JO
    assert alert.acknowledged_at is not None
    message = world.message
    assert [b["type"] for b in message["blocks"]] == ["header", "section", "context", "context"]
    note = message["blocks"][-1]["elements"][0]["text"]
    assert note == f"Acknowledged by <@{user_id(JO)}>"
    assert message["text"].endswith(f"(Acknowledged by <@{user_id(JO)}>)")
    [update] = world.calls("chat.update")
    assert (update["channel"], update["ts"]) == (world.channel, world.ts)


def test_a_second_acknowledgement_keeps_the_first(world: World) -> None:
    _post(world, world.click(ACTION_ACKNOWLEDGE))
    _post(world, world.click(ACTION_ACKNOWLEDGE, by=SAM))
    assert _alert(world).acknowledged_by == JO
    assert world.message["blocks"][-1]["elements"][0]["text"] == f"Already acknowledged by {JO}"


def test_who_clicked_is_asked_once(world: World) -> None:
    _post(world, world.click(ACTION_ACKNOWLEDGE))
    _post(world, world.click(ACTION_SNOOZE))
    [asked] = world.calls("users.info")
    assert asked["user"] == user_id(JO)


def test_people_are_remembered_for_a_while_and_failures_not_at_all(world: World) -> None:
    now = [0.0]
    people = People(world.ctx.client, ttl=60, clock=lambda: now[0])
    world.slack.recorder.inject("users.info", 400)  # an error the client does not retry
    assert people.who(user_id(JO)) == user_id(JO)
    assert people.who(user_id(JO)) == JO
    now[0] = 59
    assert people.who(user_id(JO)) == JO
    assert len(world.calls("users.info")) == 1
    now[0] = 61
    assert people.who(user_id(JO)) == JO
    assert len(world.calls("users.info")) == 2


def test_someone_slack_does_not_know_is_named_by_their_slack_id(world: World) -> None:
    payload = world.click(ACTION_ACKNOWLEDGE)
    payload["user"]["id"] = "U0NOTKNOWN"
    _post(world, payload)
    assert _alert(world).acknowledged_by == "U0NOTKNOWN"


def test_snooze_holds_the_rule_for_seven_days(world: World) -> None:
    before = utcnow()
    assert _post(world, world.click(ACTION_SNOOZE)) == (200, b"")
    with Session(world.engine) as session:
        [held] = session.exec(select(Snooze)).all()
    assert (held.account_id, held.rule, held.reason, held.created_by) == (
        world.account_id,
        "band_drop",
        "snoozed from Slack",
        JO,
    )
    assert before + timedelta(days=7) <= held.until <= utcnow() + timedelta(days=7)
    assert _alert(world).acknowledged_by == JO  # a snooze acts on the alert
    note = world.message["blocks"][-1]["elements"][0]["text"]
    assert note.startswith(f"Snoozed for 7 days by <@{user_id(JO)}>, until ")
    assert all(b["type"] != "actions" for b in world.message["blocks"])


def test_a_button_of_a_deleted_alert_says_so_to_its_clicker(world: World) -> None:
    assert _post(world, world.click(ACTION_ACKNOWLEDGE, value=999)) == (200, b"")
    assert _replies(world) == ["Nothing changed: alert 999 no longer exists."]
    [reply] = world.slack.recorder.responses
    assert reply["body"]["response_type"] == "ephemeral"
    assert reply["path"].startswith("actions/")
    assert world.calls("chat.update") == []


def test_without_the_message_in_the_payload_the_stored_message_ts_is_used(world: World) -> None:
    payload = world.click(ACTION_ACKNOWLEDGE)
    del payload["message"], payload["container"]
    _post(world, payload)
    [update] = world.calls("chat.update")
    assert (update["channel"], update["ts"]) == (world.channel, world.ts)
    assert all(b["type"] != "actions" for b in world.message["blocks"])


def test_acknowledging_a_message_of_several_alerts_acknowledges_them_all(world: World) -> None:
    with session_scope(world.engine) as session:
        lead = session.get(Alert, world.alert_id)
        assert lead is not None
        folded = Alert(
            fingerprint=f"payment_failed:{world.account_id}",
            account_id=world.account_id,
            rule="payment_failed",
            severity="high",
            recipient_email=JO,
            status="sent",
            text="Acme Robotics: invoice payment failed",
            payload={**lead.payload, "title": "Acme Robotics: invoice payment failed"},
            message_ts=lead.message_ts,
            rolled_into=world.alert_id,
        )
        session.add(folded)
        session.flush()
        folded_id = folded.id
    payload = world.click(ACTION_ACKNOWLEDGE)
    del payload["message"], payload["container"]  # the message is rebuilt from the store
    _post(world, payload)
    with Session(world.engine) as session:
        stored = session.get(Alert, folded_id)
        assert stored is not None
        assert stored.acknowledged_by == JO
    also = [b["text"]["text"] for b in world.message["blocks"] if "Also about" in json.dumps(b)]
    assert also == [
        "*Also about this account* (1)\n• *High* · Acme Robotics: invoice payment failed"
    ]


def test_a_failed_update_still_tells_the_clicker(world: World) -> None:
    payload = world.click(ACTION_ACKNOWLEDGE)
    payload["container"]["message_ts"] = "1000000000.000001"  # a message Slack no longer has
    _post(world, payload)
    assert _alert(world).acknowledged_by == JO
    assert _replies(world) == [f"Acknowledged by <@{user_id(JO)}>."]


def test_unknown_buttons_and_payloads_are_acknowledged_and_ignored(world: World) -> None:
    assert _post(world, world.click("something_else")) == (200, b"")
    assert _post(world, world.click(ACTION_ACKNOWLEDGE, value="not-a-number")) == (200, b"")
    assert _post(world, {"type": "shortcut", "callback_id": "x"}) == (200, b"")
    assert _alert(world).acknowledged_at is None
    assert world.calls("chat.update") == []


def _open_form(world: World) -> dict[str, Any]:
    assert _post(world, world.click(ACTION_LOG_SENTIMENT)) == (200, b"")
    [opened] = world.calls("views.open")
    assert opened["trigger_id"] == world.click(ACTION_LOG_SENTIMENT)["trigger_id"]
    view: dict[str, Any] = opened["view"]
    return view


def test_log_sentiment_opens_the_form_and_its_submission_is_recorded(world: World) -> None:
    view = _open_form(world)
    assert view["callback_id"] == "log_sentiment"
    assert json.loads(view["private_metadata"])["account_id"] == world.account_id
    select_block = view["blocks"][1]
    assert [o["value"] for o in select_block["element"]["options"]] == ["green", "yellow", "red"]
    status, body = _post(world, world.submission(view, "red", "  Champion left in March  "))
    assert (status, body) == (200, b"")  # an empty answer closes the form
    with Session(world.engine) as session:
        [entry] = session.exec(select(SentimentEntry)).all()
    assert (entry.account_id, entry.sentiment, entry.note) == (
        world.account_id,
        "red",
        "Champion left in March",
    )
    assert (entry.origin, entry.author_email) == ("slack", JO)
    [told] = world.calls("chat.postEphemeral")
    assert (told["channel"], told["user"]) == (world.channel, user_id(JO))
    assert told["text"] == "Recorded red for Acme Robotics: Champion left in March"


def test_a_form_without_a_choice_shows_the_error_in_the_form(world: World) -> None:
    view = _open_form(world)
    status, body = _post(world, world.submission(view, None, "no colour"))
    assert status == 200
    assert json.loads(body) == {
        "response_action": "errors",
        "errors": {"sentiment": "Pick green, yellow or red."},
    }
    stale = {**view, "private_metadata": "not json"}
    _, body = _post(world, world.submission(stale, "green", None))
    assert "out of date" in json.loads(body)["errors"]["sentiment"]
    with Session(world.engine) as session:
        assert session.exec(select(SentimentEntry)).all() == []


def test_a_form_slack_would_not_open_is_explained(world: World) -> None:
    world.slack.recorder.inject("views.open", 400)
    _post(world, world.click(ACTION_LOG_SENTIMENT))
    [reply] = _replies(world)
    assert reply.startswith("Slack did not open the form")


def test_start_playbook_creates_the_tasks_once_and_lists_them(world: World) -> None:
    assert _post(world, world.click(ACTION_START_PLAYBOOK)) == (200, b"")
    assert _post(world, world.click(ACTION_START_PLAYBOOK)) == (200, b"")
    with Session(world.engine) as session:
        tasks = session.exec(
            select(PlaybookTask).where(col(PlaybookTask.alert_id) == world.alert_id)
        ).all()
    assert tasks, "the default playbooks start tasks for a band drop to red"
    first, again = _replies(world)
    assert first == again
    assert first.startswith("Playbook tasks for this alert:\n• ")
    assert all(task.title.replace("&", "&amp;") in first for task in tasks)


def test_done_on_a_task_completes_it_and_settles_its_message(world: World) -> None:
    with session_scope(world.engine) as session:
        task = PlaybookTask(
            fingerprint="playbook:test:1",
            account_id=world.account_id,
            playbook="test",
            title="Call the champion",
            assignee_email=JO,
            alert_id=world.alert_id,
        )
        session.add(task)
        session.flush()
        task_id = task.id
    assert task_id is not None
    payload = world.click(ACTION_TASK_DONE, value=task_id, block_id="not-on-this-message")
    assert _post(world, payload) == (200, b"")
    with Session(world.engine) as session:
        done = session.get(PlaybookTask, task_id)
        assert done is not None
        assert (done.status, done.completed_at is not None) == ("done", True)
    note = world.message["blocks"][-1]["elements"][0]["text"]
    assert note == f"Done by <@{user_id(JO)}>"
    assert all(b["type"] != "actions" for b in world.message["blocks"])
    _post(world, world.click(ACTION_TASK_DONE, value=4242))
    assert _replies(world) == ["Nothing changed: task 4242 no longer exists."]
