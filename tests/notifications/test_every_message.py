"""Every kind of message the agent sends, at its worst, goes through Slack's limits.

Each builder gets an account with a very long name full of mrkdwn control characters and
40 long drivers (or 40 of whatever it lists). What it builds must pass slack_sdk's own Block
Kit validators, stay within the message-wide limits, say what matters first (shortened with
"…", never cut mid-escape), and be accepted by the Slack emulator over real HTTP.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from notifications.digest_message import build_digest_message
from notifications.messages import (
    AlertFacts,
    AlsoItem,
    SlackMessage,
    build_admin_notice,
    build_alert_message,
)
from notifications.notices import SummaryItem, build_escalation_message, build_summary_message
from notifications.playbooks_slack import build_task_message
from notifications.serve_blocks import HealthCard, health_message, sentiment_modal, settled_blocks
from sandbox.slack import channel_id
from store.models import PlaybookTask
from tests.notifications.conftest import CSMS, SandboxFactory
from tests.notifications.test_digest import _huge_facts, _limits_hold

LONG_NAME = "Very Long Account Name <Holdings> & *Partners* International _Group_ " * 8
DRIVERS = [f"Driver {n}: " + "seats unused after the champion left & <nobody> replaced " * 6
           for n in range(40)]  # fmt: skip
TODAY = date(2026, 3, 2)


def _facts(**changes: Any) -> AlertFacts:
    values: dict[str, Any] = {
        "account_name": LONG_NAME,
        "score": 12.4,
        "band": "red",
        "as_of": TODAY,
        "previous_score": 81.0,
        "previous_band": "green",
        "drivers": DRIVERS,
        "renewal_date": date(2026, 4, 1),
        "arr_minor": 123_456_789_00,
        "scorecard_version": "default-" + "v" * 300,
    }
    return AlertFacts(**(values | changes))


def _task() -> PlaybookTask:
    return PlaybookTask(
        id=7,
        fingerprint="f",
        account_id=1,
        playbook="save-" + "p" * 300,
        title="Call the executive sponsor " * 20,
        steps=[f"Step {n}: " + "do the thing & <check> " * 40 for n in range(40)],
        due_on=date(2026, 3, 5),
        alert_id=3,
    )


def _card() -> HealthCard:
    return HealthCard(
        name=LONG_NAME,
        today=TODAY,
        score=12.4,
        band="red",
        as_of=TODAY,
        confidence=0.61,
        scorecard_version="default-1",
        trend={7: -20.0, 30: -44.0, 90: -61.0},
        moved=[f"measure_{n} -{n}" for n in range(40)],
        drivers=DRIVERS,
        renewal_date=date(2026, 4, 1),
        arr_minor=123_456_789_00,
        owner_email="jo@example.com",
        sentiment="red on 2026-02-01: " + "champion left " * 100,
        stale=[f"source_{n}" for n in range(40)],
    )


def _messages() -> dict[str, SlackMessage]:
    alert = build_alert_message(_facts(), alert_id=41)
    rule_alert = build_alert_message(
        _facts(
            rule="payment_failed",
            title=f"{LONG_NAME} has a failed payment",
            reasons=[f"Invoice {n} payment failed " * 10 for n in range(40)],
            previous_score=None,
            previous_band=None,
        ),
        alert_id=42,
    )
    items = [SummaryItem(n, rule, "low", f"{LONG_NAME} {n}") for n in range(200)
             for rule in ("usage_drop", "sentiment_stale")][:200]  # fmt: skip
    since = datetime(2026, 2, 27, 9, tzinfo=UTC)
    escalation = build_escalation_message(_facts(), 43, "jo@example.com", since, to_lead=True)
    also = [AlsoItem("high", f"{LONG_NAME} rule {n} " + "&<> " * 100) for n in range(40)]
    notice = build_admin_notice("Health alerts that could not be delivered", DRIVERS * 5)
    task = build_task_message(_task(), LONG_NAME, today=TODAY)
    reminder = build_task_message(_task(), LONG_NAME, today=TODAY, reminder=True, note=LONG_NAME)
    acknowledged = alert.as_kwargs()["blocks"]
    settled = settled_blocks(acknowledged, "alert:41", f"Acknowledged by {LONG_NAME}")
    return {
        "band drop alert": alert,
        "rule alert": rule_alert,
        "daily summary": build_summary_message(TODAY, items, budget=5),
        "escalation": escalation,
        "alert with 40 more about the account": build_alert_message(
            _facts(stale=[f"source_{n}: " + "lagging " * 50 for n in range(40)]),
            alert_id=44,
            note=LONG_NAME,
            also=also,
        ),
        "escalation with 40 more": build_escalation_message(
            _facts(), 45, "jo@example.com", since, to_lead=False, also=also
        ),
        "admin notice": notice,
        "task": task,
        "overdue reminder": reminder,
        "weekly digest": build_digest_message(_huge_facts()),
        "/health answer": health_message(_card()),
        "acknowledged alert": SlackMessage(
            text=alert.text, blocks=[Block.parse(b) for b in settled if b is not None]
        ),
    }


MESSAGES = _messages()


@pytest.mark.parametrize("kind", list(MESSAGES))
def test_every_message_passes_block_kit_validation(kind: str) -> None:
    kwargs = MESSAGES[kind].as_kwargs()
    _limits_hold(kwargs["blocks"])
    assert 0 < len(kwargs["text"]) <= 3000
    for block in kwargs["blocks"]:
        if block["type"] == "section" and "text" in block:
            text = block["text"]["text"]
            assert not text.endswith(("&", "&a", "&am", "&amp", "&l", "&lt", "&g", "&gt"))


@pytest.mark.parametrize("kind", list(MESSAGES))
def test_slack_accepts_every_message(kind: str, slack_sandbox: SandboxFactory) -> None:
    sandbox = slack_sandbox(channels=["cs-team"])
    reply = sandbox.client().chat_postMessage(channel="cs-team", **MESSAGES[kind].as_kwargs())
    assert reply["ok"] is True
    posted = sandbox.recorder.messages[-1]
    assert posted["channel"] == channel_id("cs-team")
    assert posted["blocks"] == MESSAGES[kind].as_kwargs()["blocks"]


def test_the_alert_says_what_matters_first_and_shortens_the_rest() -> None:
    blocks = MESSAGES["band drop alert"].as_kwargs()["blocks"]
    header = blocks[0]["text"]["text"]
    assert header.startswith("Very Long Account Name")
    assert header.endswith("…")
    text = json.dumps(blocks)
    shown = [n for n in range(40) if f"Driver {n}:" in text]
    assert shown == [0, 1, 2, 3, 4]  # the five strongest drivers, in order
    assert "$123,456,789" in text
    assert "2026-04-01" in text
    actions = [b for b in blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == [
        "alert_acknowledge",
        "alert_snooze_7d",
        "alert_log_sentiment",
        "alert_start_playbook",
    ]


def test_an_alert_lists_at_most_ten_others_and_counts_the_rest() -> None:
    blocks = MESSAGES["alert with 40 more about the account"].as_kwargs()["blocks"]
    [listed] = [b["text"]["text"] for b in blocks if "*Also about" in json.dumps(b)]
    shown = listed.count("\n• *High* · ")
    assert 1 <= shown <= 10
    assert listed.startswith("*Also about this account* (40)\n• *High* · Very Long Account")
    assert listed.endswith(f"\n…and {40 - shown} more")
    assert MESSAGES["alert with 40 more about the account"].text.count(" (high)") == 5
    assert blocks[-1]["elements"][0]["value"] == "44"  # the buttons stay last


def test_the_daily_summary_lists_at_most_sixty_and_counts_the_rest() -> None:
    text = json.dumps(MESSAGES["daily summary"].as_kwargs()["blocks"])
    assert "(100)" in text  # each rule's count is the whole count
    assert "more" in text


def test_the_sentiment_form_passes_validation_and_slack_opens_it(
    slack_sandbox: SandboxFactory,
) -> None:
    view = sentiment_modal(1, LONG_NAME, alert_id=41, channel="C1")
    body = view.to_dict()  # runs the SDK's validators
    View(**body).validate_json()
    assert len(body["title"]["text"]) <= 24
    sandbox = slack_sandbox(users=CSMS)
    reply = sandbox.client().views_open(trigger_id="1.2.3", view=body)
    assert reply["ok"] is True
