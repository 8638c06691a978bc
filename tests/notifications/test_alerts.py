"""Band-drop alerts: found once, routed to the owner's DM over real HTTP, never sent twice.

These tests turn the other rules off (`BAND_DROPS`) to look at band drops alone; the last
one scores real data with every rule on.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from notifications import SlackAuthError, deliver_pending, detect_alerts, fingerprint, load_rules
from sandbox.slack import RateLimit, channel_id, dm_channel_id, user_id
from scoring import score_accounts
from store import bulk_upsert, session_scope
from store.models import Alert, HealthScore
from tests.notifications.conftest import SandboxFactory
from tests.scoring.seed import AS_OF, account, ago, healthy, invoice, sentiment, ticket

DAY_BEFORE = AS_OF - timedelta(days=1)
DEFAULT_RULES = load_rules()
BAND_DROPS = DEFAULT_RULES.override(
    {name: {"enabled": False} for name in DEFAULT_RULES.rules() if name != "band_drop"}
)


def _detect(engine: Engine) -> int:
    return detect_alerts(engine, AS_OF, BAND_DROPS).created


def _score(s: Session, account_id: int, day: date, score: float, band: str) -> None:
    drivers: list[dict[str, Any]] = [
        {"text": "Invoice payment failed 4 days ago", "direction": "negative", "impact": -9.1},
        {"text": "Seats in use", "direction": "positive", "impact": 2.0},
    ]
    row = {
        "account_id": account_id,
        "as_of": day,
        "score": score,
        "band": band,
        "drivers": drivers,
        "components": {},
        "weights": {},
        "scorecard_version": "test",
    }
    bulk_upsert(s, HealthScore, [row], keys=("account_id", "as_of"))


def _dropped(engine: Engine, name: str, owner: str | None, *, old: str = "green") -> int:
    with session_scope(engine) as s:
        a = account(s, name, owner_email=owner, renewal_date=date(2026, 5, 1), arr_minor=12_000_00)
        _score(s, a, DAY_BEFORE - timedelta(days=6), 90, "green")
        _score(s, a, DAY_BEFORE, 78, old)
        _score(s, a, AS_OF, 34, "red")
    return a


def _alerts(engine: Engine) -> list[Alert]:
    with Session(engine) as s:
        return list(s.exec(select(Alert).order_by(col(Alert.id))))


def test_pipeline_twice_one_alert_one_message(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = slack_sandbox()
    acme = _dropped(engine, "Acme Robotics", "jo@example.com")
    with session_scope(engine) as s:
        steady = account(s, "Steady", owner_email="sam@example.com")
        _score(s, steady, DAY_BEFORE, 50, "yellow")
        _score(s, steady, AS_OF, 80, "green")  # better: no alert
        newcomer = account(s, "New", owner_email="sam@example.com")
        _score(s, newcomer, AS_OF, 20, "red")  # no previous score: no alert
    client = slack.client()
    first = detect_alerts(engine, AS_OF, BAND_DROPS)
    sent = deliver_pending(engine, client)
    second = detect_alerts(engine, AS_OF, BAND_DROPS)
    again = deliver_pending(engine, client)
    assert (first.drops, first.created, second.drops, second.created) == (1, 1, 1, 0)
    assert (sent.sent, again.sent) == (1, 0)
    [alert] = _alerts(engine)
    assert alert.fingerprint == fingerprint("band_drop", acme, AS_OF, 7, "red")
    assert alert.fingerprint.startswith(f"band_drop:{acme}:red:")
    assert (alert.status, alert.severity, alert.recipient_email) == (
        "sent",
        "critical",
        "jo@example.com",
    )
    jo = user_id("jo@example.com")
    assert alert.channel == dm_channel_id(jo)
    assert alert.sent_at is not None
    [message] = slack.recorder.messages
    assert alert.message_ts == message["ts"]
    assert (message["channel"], message["user"]) == (dm_channel_id(jo), jo)
    assert message["text"].startswith("Acme Robotics dropped from green (78) to red (34)")
    assert "Seats in use" not in message["text"]
    actions = message["blocks"][-1]["elements"]
    assert {a["value"] for a in actions} == {str(alert.id)}
    lookups = slack.recorder.methods()
    assert lookups == ["users.lookupByEmail", "conversations.open", "chat.postMessage"]


def test_lookups_are_cached_per_run(engine: Engine, slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox(rate_limit=None)
    for n in range(3):
        _dropped(engine, f"Account {n}", "sam@example.com")
    _detect(engine)
    summary = deliver_pending(engine, slack.client())
    assert summary.sent == 3
    assert slack.recorder.methods().count("users.lookupByEmail") == 1
    assert slack.recorder.methods().count("conversations.open") == 1


def test_owner_without_slack_user_is_unroutable_and_admin_hears(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = slack_sandbox(channels=["cs-alerts"])
    _dropped(engine, "Ghost Inc", "ghost@example.com", old="yellow")
    _dropped(engine, "Orphan Ltd", None)
    _dropped(engine, "Acme Robotics", "jo@example.com")
    _detect(engine)
    summary = deliver_pending(engine, slack.client(), admin_channel="#cs-alerts")
    assert (summary.sent, summary.unroutable, summary.admin_notices) == (2, 1, 1)
    by_name = {a.text.split(" dropped")[0]: a for a in _alerts(engine)}
    ghost = by_name["Ghost Inc"]
    assert ghost.status == "unroutable"
    assert ghost.error == "no Slack user has the email ghost@example.com"
    assert ghost.channel is None
    orphan = by_name["Orphan Ltd"]
    assert (orphan.status, orphan.channel) == ("sent", channel_id("cs-alerts"))
    admin = [m for m in slack.recorder.messages if m["channel"] == channel_id("cs-alerts")]
    assert len(admin) == 2  # the orphan's alert and one notice about the ghost
    assert any("ghost@example.com" in m["text"] for m in admin)
    assert deliver_pending(engine, slack.client(), admin_channel="#cs-alerts").admin_notices == 0


def test_unroutable_without_admin_channel(engine: Engine, slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox()
    _dropped(engine, "Orphan Ltd", None)
    _detect(engine)
    summary = deliver_pending(engine, slack.client())
    assert summary.unroutable == 1
    [alert] = _alerts(engine)
    assert alert.status == "unroutable"
    assert "no owner" in (alert.error or "")
    assert slack.recorder.messages == []


def test_rate_limited_posts_are_waited_out(engine: Engine, slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox(rate_limit=RateLimit(per_second=1.0, burst=1))
    _dropped(engine, "First", "jo@example.com")
    _dropped(engine, "Second", "jo@example.com")
    _detect(engine)
    summary = deliver_pending(engine, slack.client())
    assert summary.sent == 2
    assert slack.recorder.rate_limited >= 1  # the second post met a 429 + Retry-After
    assert len(slack.recorder.messages) == 2
    assert all(a.status == "sent" for a in _alerts(engine))


def test_server_errors_are_retried(engine: Engine, slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox()
    _dropped(engine, "Acme", "jo@example.com")
    slack.recorder.inject("chat.postMessage", 503)
    _detect(engine)
    assert deliver_pending(engine, slack.client()).sent == 1
    assert len(slack.recorder.messages) == 1


def test_lasting_rate_limit_defers_without_sending(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = slack_sandbox()
    _dropped(engine, "Acme", "jo@example.com")
    slack.recorder.inject("chat.postMessage", 429, times=5)
    _detect(engine)
    summary = deliver_pending(engine, slack.client(rate_limit_retries=1))
    assert (summary.sent, summary.deferred) == (0, 1)
    [alert] = _alerts(engine)
    assert alert.status == "pending"
    assert "rate limit" in (alert.error or "")
    assert slack.recorder.messages == []


def test_refused_token_stops_and_keeps_alerts_pending(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = slack_sandbox()
    _dropped(engine, "Acme", "jo@example.com")
    _detect(engine)
    with pytest.raises(SlackAuthError, match="SLACK__BOT_TOKEN"):
        deliver_pending(engine, slack.client(token="xoxb-revoked"))
    [alert] = _alerts(engine)
    assert alert.status == "pending"
    assert deliver_pending(engine, slack.client()).sent == 1


def test_claimed_alerts_are_never_sent_again(engine: Engine, slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox()
    _dropped(engine, "Acme", "jo@example.com")
    _detect(engine)
    with session_scope(engine) as s:  # as if an instance crashed mid-delivery
        alert = s.exec(select(Alert)).one()
        alert.status = "sending"
        s.add(alert)
    assert deliver_pending(engine, slack.client()).sent == 0
    assert slack.recorder.messages == []


def test_scored_drop_end_to_end(engine: Engine, slack_sandbox: SandboxFactory) -> None:
    """Real scores, every rule on: each thing that went wrong is its own alert, once, and
    they reach the CSM as one message about the account."""
    slack = slack_sandbox()
    with session_scope(engine) as s:
        acme = account(s, "Acme Robotics", owner_email="jo@example.com")
        healthy(s, acme)
    score_accounts(engine, AS_OF - timedelta(days=7))
    with session_scope(engine) as s:
        sentiment(s, acme, "red", ago(1), note="champion left")
        invoice(s, acme, ago(4.5), status="open", attempt_count=2, amount_remaining_minor=900)
        for k in range(6):
            ticket(s, acme, ago(1 + k / 2), priority="urgent")
    score_accounts(engine, AS_OF)
    found = detect_alerts(engine, AS_OF)
    rules = {"band_drop", "score_drop", "payment_failed", "ticket_spike", "urgent_ticket"}
    assert {rule for rule, n in found.new.items() if n} == rules
    assert found.created == len(rules)
    assert detect_alerts(engine, AS_OF).created == 0
    delivered = deliver_pending(engine, slack.client())
    assert (delivered.sent, delivered.folded) == (len(rules), len(rules) - 1)
    [message] = slack.recorder.messages  # one message: the most severe leads
    assert message["text"].startswith("Acme Robotics dropped from green")
    assert "CSM marked red: champion left" in message["text"]
    assert "Also: Acme Robotics: invoice payment failed (high)" in message["text"]
    assert "urgent tickets open" in message["text"]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == len(rules)
        rows = s.exec(select(Alert)).all()
    [lead] = [a for a in rows if a.rolled_into is None]
    assert lead.rule == "band_drop"
    assert {(a.status, a.message_ts) for a in rows} == {("sent", lead.message_ts)}
    assert {a.rolled_into for a in rows if a is not lead} == {lead.id}
