"""Alert messages: plain fallback text, Block Kit limits kept, buttons carry the alert id."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from notifications.messages import (
    ACTION_ACKNOWLEDGE,
    ACTION_LOG_SENTIMENT,
    ACTION_SNOOZE,
    ACTION_START_PLAYBOOK,
    AlertFacts,
    build_admin_notice,
    build_alert_message,
    format_money,
)
from notifications.notices import SummaryItem, build_escalation_message, build_summary_message

FACTS = AlertFacts(
    account_name="Acme Robotics",
    score=34.2,
    band="red",
    previous_score=78.0,
    previous_band="green",
    as_of=date(2026, 3, 2),
    drivers=[
        "Tickets 3.1x the usual volume in the last 30 days (12 vs about 4)",
        "Invoice payment failed 4 days ago",
        "CSM marked red: <champion> left & budget cut",
    ],
    renewal_date=date(2026, 5, 1),
    arr_minor=120_000_00,
    currency="USD",
    scorecard_version="2025.1",
)


def test_alert_message_has_fallback_text_and_everything_a_csm_needs() -> None:
    message = build_alert_message(FACTS, alert_id=42)
    assert message.text.startswith("Acme Robotics dropped from green (78) to red (34)")
    assert "Invoice payment failed 4 days ago" in message.text
    kwargs = message.as_kwargs()
    blocks = kwargs["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "context", "actions"]
    assert blocks[0]["text"]["text"] == "Acme Robotics dropped from green (78) to red (34)"
    why = blocks[1]["text"]["text"]
    assert "• Invoice payment failed 4 days ago" in why
    assert "&lt;champion&gt; left &amp; budget cut" in why  # mrkdwn control characters escaped
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert "*Renewal*\n2026-05-01 (in 60 days)" in fields
    assert "*ARR*\n$120,000" in fields
    buttons = blocks[3]["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        (ACTION_ACKNOWLEDGE, "42"),
        (ACTION_SNOOZE, "42"),
        (ACTION_LOG_SENTIMENT, "42"),
        (ACTION_START_PLAYBOOK, "42"),
    ]
    assert [b["text"]["text"] for b in buttons] == [
        "Acknowledge",
        "Snooze 7 days",
        "Log sentiment",
        "Start playbook",
    ]


def test_long_content_is_shortened_to_block_kit_limits() -> None:
    huge = AlertFacts(
        account_name="A" * 400,
        score=10,
        band="red",
        previous_score=50,
        previous_band="yellow",
        as_of=date(2026, 3, 2),
        drivers=["CSM marked red: " + "x" * 5000] * 20,
    )
    message = build_alert_message(huge, alert_id=1)
    blocks = message.as_kwargs()["blocks"]
    assert len(blocks[0]["text"]["text"]) <= 150
    assert len(blocks[1]["text"]["text"]) <= 3000
    assert len(json.dumps(blocks)) < 12_000
    assert len(message.text) <= 3000
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert not any(f.startswith(("*Renewal*", "*ARR*")) for f in fields)  # unknown: left out


def test_admin_notice_lists_problems() -> None:
    lines = [f"Account {n} dropped, for ghost{n}@example.com: no Slack user" for n in range(25)]
    notice = build_admin_notice("Health alerts that could not be delivered", lines)
    body = notice.as_kwargs()["blocks"][1]["text"]["text"]
    assert "Account 0 dropped" in body
    assert "…and 5 more" in body
    assert notice.text.startswith("Health alerts that could not be delivered: ")


def test_money() -> None:
    assert format_money(120_000_00, "usd") == "$120,000"
    assert format_money(1234_56, "EUR") == "€1,234.56"
    assert format_money(5000, "JPY") == "¥5,000"
    assert format_money(99_00, "CHF") == "99 CHF"


def test_a_rules_alert_says_what_it_saw_first() -> None:
    facts = AlertFacts(
        account_name="Acme Robotics",
        score=48,
        band="yellow",
        as_of=date(2026, 3, 2),
        drivers=["Invoice payment failed 4 days ago", "Tickets 3.1x the usual volume"],
        rule="payment_failed",
        severity="high",
        title="Acme Robotics: invoice payment failed",
        reasons=["Invoice payment failed 4 days ago", "Subscription past due"],
    )
    blocks = build_alert_message(facts, alert_id=7, note="For jo@example.com.").as_kwargs()[
        "blocks"
    ]
    assert blocks[0]["text"]["text"] == "Acme Robotics: invoice payment failed"
    assert blocks[1]["elements"][0]["text"] == "For jo@example.com."
    why = blocks[2]["text"]["text"]
    assert why.splitlines()[1:] == [
        "• Invoice payment failed 4 days ago",
        "• Subscription past due",
        "• Tickets 3.1x the usual volume",
    ]
    assert "*Score*\n48 (yellow)" in [f["text"] for f in blocks[2]["fields"]]
    assert blocks[3]["elements"][0]["text"].startswith("High · Health as of 2026-03-02")


def test_old_band_drop_payloads_still_render() -> None:
    old = {"account_name": "Acme", "score": 30.0, "band": "red", "previous_score": 80.0,
           "previous_band": "green", "as_of": "2026-03-02", "drivers": [], "renewal_date": None,
           "arr_minor": None, "currency": "USD", "scorecard_version": ""}  # fmt: skip
    message = build_alert_message(AlertFacts.from_payload(old), alert_id=1)
    assert message.text == "Acme dropped from green (80) to red (30)"


def test_the_daily_summary_groups_by_rule_and_stays_within_limits() -> None:
    items = [SummaryItem(n, "sentiment_stale", "low", f"Account {n}: no CSM sentiment yet")
             for n in range(200)]  # fmt: skip
    items.insert(0, SummaryItem(999, "usage_drop", "medium", "Beta: weekly active users down 40%"))
    message = build_summary_message(date(2026, 3, 2), items, budget=5)
    blocks = message.as_kwargs()["blocks"]
    assert blocks[0]["text"]["text"] == "Your health alerts summary for 2026-03-02: 201 alerts"
    assert blocks[1]["text"]["text"].startswith("*Usage drops* (1)\n• Beta: weekly active")
    assert blocks[2]["text"]["text"].startswith("*No fresh CSM sentiment* (200)\n")
    assert "…and 141 more" in blocks[2]["text"]["text"]
    assert "daily limit is 5 alert messages" in blocks[-1]["elements"][0]["text"]
    assert len(json.dumps(blocks)) < 12_000


def test_the_escalation_says_who_it_was_for_and_since_when() -> None:
    since = datetime(2026, 2, 28, 14, 5, tzinfo=UTC)
    message = build_escalation_message(FACTS, 42, "jo@example.com", since, to_lead=True)
    blocks = message.as_kwargs()["blocks"]
    assert blocks[0]["text"]["text"].startswith("Escalated: Acme Robotics dropped")
    note = blocks[1]["elements"][0]["text"]
    assert note == (
        "Sent to jo@example.com on 2026-02-28 14:05 UTC and not acknowledged since; "
        "you lead their team."
    )
    assert blocks[-1]["elements"][0]["value"] == "42"
