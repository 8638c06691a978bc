"""Delivery against the Slack emulator: routing, fatigue controls, escalation, outages, races."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from notifications import deliver_pending
from notifications.actions import acknowledge, snooze
from sandbox.slack import SLACK_BOT_TOKEN, channel_id, dm_channel_id, user_id
from settings import AlertSettings
from store import make_engine, session_scope
from store.models import Alert, SlackUser
from tests.notifications.builders import NOW, account, alert, alerts, csm, hours, team
from tests.notifications.conftest import SandboxFactory, SlackSandbox

JO, SAM, LENA = "jo@example.com", "sam@example.com", "lena@example.com"
GHOST = "ghost@example.com"
PEOPLE = [(JO, "Jo Park"), (SAM, "Sam Reyes"), (LENA, "Lena Ortiz")]
ADMIN = "#cs-alerts"
UNLIMITED = AlertSettings(daily_budget=0, summary_only="none")


def _sandbox(slack_sandbox: SandboxFactory, **kwargs: Any) -> SlackSandbox:
    kwargs.setdefault("channels", ["cs-alerts", "cs-growth"])
    kwargs.setdefault("rate_limit", None)
    return slack_sandbox(users=PEOPLE, **kwargs)


def _deliver(sandbox: SlackSandbox, engine: Engine, **kwargs: Any) -> Any:
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("admin_channel", ADMIN)
    client = kwargs.pop("client", None) or sandbox.client(backoff_seconds=0.01)
    return deliver_pending(engine, client, **kwargs)


def _to(sandbox: SlackSandbox, email: str) -> list[str]:
    dm = dm_channel_id(user_id(email))
    return [m["text"] for m in sandbox.recorder.messages if m["channel"] == dm]


def _in(sandbox: SlackSandbox, channel: str) -> list[str]:
    return [m["text"] for m in sandbox.recorder.messages if m["channel"] == channel_id(channel)]


def _get(engine: Engine, alert_id: int) -> Alert:
    with Session(engine) as s:
        found = s.get(Alert, alert_id)
        assert found is not None
        return found


# ---- routing ---------------------------------------------------------------------------


def test_owner_without_slack_goes_to_the_team_channel_and_the_admin_hears_once(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        team(s, "t1", channel="#cs-growth")
        csm(s, GHOST, "t1")
        a = account(s, "Ghost Inc", GHOST)
    first = [alert(engine, a, GHOST, rule="band_drop"), alert(engine, a, GHOST, rule="usage_drop")]
    summary = _deliver(slack, engine, settings=UNLIMITED)
    later = alert(engine, a, GHOST, rule="ticket_spike", created=NOW + hours(1))
    again = _deliver(slack, engine, settings=UNLIMITED, now=NOW + hours(2))
    assert (summary.sent, summary.admin_notices, again.sent, again.admin_notices) == (2, 1, 1, 0)
    for alert_id in [*first, later]:
        row = _get(engine, alert_id)
        assert (row.status, row.channel) == ("sent", channel_id("cs-growth"))
    posted = _in(slack, "cs-growth")
    assert len(posted) == 2  # the first two, about one account, went out as one message
    assert all(f"For {GHOST}, who has no Slack account" in text for text in posted)
    [notice] = _in(slack, "cs-alerts")
    assert GHOST in notice
    assert "their alerts go to #cs-growth" in notice


def test_routing_problems_wait_for_an_admin_channel_then_go_once(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        a = account(s, "Ghost Inc", GHOST)
    ghostly = alert(engine, a, GHOST)
    unset = _deliver(slack, engine, admin_channel=None)
    assert unset.unroutable == 1
    assert f"alert {ghostly}: no Slack user has the email {GHOST}" in unset.problems
    assert any("wait to be reported: set SLACK__ADMIN_CHANNEL" in p for p in unset.problems)
    assert slack.recorder.messages == []
    alert(engine, a, GHOST, rule="usage_drop", created=NOW + hours(1))
    told = _deliver(slack, engine, now=NOW + hours(2))
    again = _deliver(slack, engine, now=NOW + hours(3))
    assert (told.admin_notices, again.admin_notices) == (1, 0)
    [notice] = _in(slack, "cs-alerts")
    assert f"No Slack user has the email {GHOST}: their alerts are not delivered" in notice


def test_an_unowned_account_goes_to_the_lead_of_its_last_owners_team(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        team(s, "t1", lead=LENA)
        left = csm(s, "gone@example.com", "t1", deleted_at=NOW - timedelta(days=30))
        a = account(s, "Orphan Ltd", None, owner_external_id=left)
        b = account(s, "Nobody's", None)
    to_lead, to_admin = alert(engine, a, None), alert(engine, b, None)
    assert _deliver(slack, engine).sent == 2
    [text] = _to(slack, LENA)
    assert "This account has no owner in the CRM. You lead the team of its last owner." in text
    assert _get(engine, to_lead).channel == dm_channel_id(user_id(LENA))
    assert _get(engine, to_admin).channel == channel_id("cs-alerts")


def test_slack_users_are_cached_and_asked_again_after_a_day(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox, timezones={JO: "America/New_York"})
    with session_scope(engine) as s:
        a = account(s, "Acme", JO)
    lookups = []
    for n, at in enumerate([NOW, NOW + hours(3), NOW + hours(27)]):
        alert(engine, a, JO, rule=f"rule_{n}", created=at)
        _deliver(slack, engine, now=at)
        lookups.append(slack.recorder.methods().count("users.lookupByEmail"))
    assert lookups == [1, 1, 2]
    with Session(engine) as s:
        cached = s.get(SlackUser, JO)
        assert cached is not None
        assert (cached.user_id, cached.timezone) == (user_id(JO), "America/New_York")
        assert cached.checked_at == NOW + hours(27)
    assert len(_to(slack, JO)) == 3


# ---- fatigue ---------------------------------------------------------------------------


def test_beyond_the_budget_alerts_roll_into_one_daily_summary(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        accounts = [account(s, f"Account {n}", JO) for n in range(9)]
    severities = ["high", "low", "critical", "high", "medium", "high", "low", "high", "medium"]
    ids = [
        alert(engine, a, JO, severity=sev, rule=f"r{n}", created=NOW - hours(9 - n))
        for n, (a, sev) in enumerate(zip(accounts, severities, strict=True))
    ]
    policy = AlertSettings(daily_budget=3, summary_only="low")
    summary = _deliver(slack, engine, settings=policy)
    assert (summary.sent, summary.rolled, summary.summaries) == (3, 6, 1)
    rows = {a.id: a for a in alerts(engine)}
    sent = [i for i in ids if rows[i].status == "sent"]
    assert [rows[i].severity for i in sent] == ["high", "critical", "high"]  # oldest highs
    [daily] = [a for a in rows.values() if a.rule == "daily_summary"]
    assert daily.status == "sent"
    assert daily.fingerprint == f"daily_summary:{JO}:{NOW.date().isoformat()}"
    rolled = [i for i in ids if rows[i].status == "rolled"]
    assert len(rolled) == 6
    assert all(rows[i].rolled_into == daily.id for i in rolled)
    assert sorted(item["alert_id"] for item in daily.payload["items"]) == sorted(rolled)
    texts = _to(slack, JO)
    assert len(texts) == 4
    assert texts[-1].startswith(f"Your health alerts summary for {NOW.date()}: 6 alerts")

    late = alert(engine, accounts[0], JO, severity="medium", rule="late", created=NOW + hours(1))
    urgent = alert(engine, accounts[1], JO, severity="critical", rule="now", created=NOW + hours(1))
    later = _deliver(slack, engine, settings=policy, now=NOW + hours(2))
    assert (later.sent, later.held) == (1, 1)  # the critical one goes; the other waits a day
    assert _get(engine, urgent).status == "sent"
    waiting = _get(engine, late)
    assert (waiting.status, waiting.deliver_after) == (
        "pending",
        datetime(2026, 3, 3, tzinfo=NOW.tzinfo),
    )
    assert _deliver(slack, engine, settings=policy, now=NOW + hours(18)).sent == 1


def test_quiet_hours_hold_dms_until_morning_in_the_csms_time_zone(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    zones = {JO: "America/New_York", SAM: "Asia/Tokyo"}
    slack = _sandbox(slack_sandbox, timezones=zones)
    night_in_new_york = datetime.fromisoformat("2026-03-02T03:00+00:00")  # 22:00 EST, noon JST
    with session_scope(engine) as s:
        a, b = account(s, "Acme", JO), account(s, "Beta", SAM)
    for_jo = alert(engine, a, JO, created=night_in_new_york)
    for_sam = alert(engine, b, SAM, created=night_in_new_york)
    policy = AlertSettings(quiet_hours="20:00-08:00")
    first = _deliver(slack, engine, settings=policy, now=night_in_new_york)
    assert (first.sent, first.held) == (1, 1)
    assert _get(engine, for_sam).status == "sent"
    held = _get(engine, for_jo)
    morning = datetime.fromisoformat("2026-03-02T13:00+00:00")  # 08:00 EST
    assert (held.status, held.deliver_after) == ("pending", morning)
    assert _deliver(slack, engine, settings=policy, now=morning - hours(1)).sent == 0
    assert _deliver(slack, engine, settings=policy, now=morning).sent == 1
    assert len(_to(slack, JO)) == 1


def test_a_snooze_holds_its_accounts_alerts_of_that_rule(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        a = account(s, "Acme", JO)
    first = alert(engine, a, JO, rule="band_drop", created=NOW - hours(2))
    _deliver(slack, engine, now=NOW - hours(1))
    snooze(engine, first, 7, "renewal call booked", JO, now=NOW - hours(1))
    held = alert(engine, a, JO, rule="band_drop")
    other = alert(engine, a, JO, rule="usage_drop")
    summary = _deliver(slack, engine)
    assert (summary.sent, summary.snoozed) == (1, 1)
    row = _get(engine, held)
    assert row.status == "snoozed"
    assert (row.error or "").startswith("snoozed until 2026-03-09")
    assert _get(engine, other).status == "sent"
    after = alert(engine, a, JO, rule="band_drop", created=NOW + timedelta(days=8))
    assert _deliver(slack, engine, now=NOW + timedelta(days=8)).sent == 1
    assert _get(engine, after).status == "sent"


# ---- escalation ------------------------------------------------------------------------


def test_an_unacknowledged_alert_goes_to_the_team_lead_once(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        team(s, "t1", lead=LENA)
        csm(s, JO, "t1")
        csm(s, SAM, None)
        a = account(s, "Acme", JO)
        b = account(s, "Beta", SAM)
    sent_at = NOW - hours(49)
    overdue = alert(engine, a, JO, status="sent", sent_at=sent_at, created=sent_at)
    acked = alert(engine, a, JO, status="sent", sent_at=sent_at, created=sent_at)
    acknowledge(engine, acked, JO, now=NOW - hours(30))
    alert(engine, a, JO, severity="medium", status="sent", sent_at=sent_at, created=sent_at)
    alert(engine, a, JO, status="sent", sent_at=NOW - hours(10), created=NOW - hours(10))
    no_lead = alert(engine, b, SAM, status="sent", sent_at=sent_at, created=sent_at)
    first = _deliver(slack, engine)
    again = _deliver(slack, engine, now=NOW + hours(1))
    assert (first.escalated, again.escalated) == (2, 0)
    [text] = _to(slack, LENA)
    assert text.startswith("Escalated: Account")
    assert f"Sent to {JO} on {sent_at:%Y-%m-%d %H:%M} UTC and not acknowledged since" in text
    assert "you lead their team" in text
    row = _get(engine, overdue)
    assert (row.escalated_at, row.escalated_to) == (NOW, LENA)
    [admin] = _in(slack, "cs-alerts")
    assert f"Sent to {SAM} on" in admin
    assert "their team has no lead in Slack" in admin
    assert _get(engine, no_lead).escalated_to == ADMIN
    assert _get(engine, acked).escalated_at is None


# ---- Slack failing ---------------------------------------------------------------------


def _three(engine: Engine) -> list[int]:
    with session_scope(engine) as s:
        a = account(s, "Acme", JO)
        b = account(s, "Beta", SAM)
        c = account(s, "Gamma", JO)
    return [
        alert(engine, owner_account, owner, rule=f"r{n}", created=NOW - hours(3 - n))
        for n, (owner_account, owner) in enumerate([(a, JO), (b, SAM), (c, JO)])
    ]


def test_slack_down_keeps_alerts_pending_and_they_go_out_in_order(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    ids = _three(engine)
    slack.recorder.outage(503)
    down = _deliver(slack, engine)
    assert (down.sent, down.deferred, down.failed) == (0, 3, 0)
    assert any("HTTP 503" in p for p in down.problems)
    assert all(a.status == "pending" for a in alerts(engine))
    slack.recorder.outage(None)
    slack.recorder.inject("chat.postMessage", 503, times=3)  # fails again while posting
    flaky = _deliver(
        slack, engine, client=slack.client(server_error_retries=2, backoff_seconds=0.01)
    )
    assert (flaky.sent, flaky.deferred) == (0, 3)
    back = _deliver(slack, engine, now=NOW + hours(1))
    assert back.sent == 3
    by_ts = sorted(alerts(engine), key=lambda a: a.message_ts or "")
    assert [a.id for a in by_ts] == ids  # posted oldest first
    assert [m["ts"] for m in slack.recorder.messages] == [a.message_ts for a in by_ts]


def test_slack_unreachable_keeps_alerts_pending(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    _three(engine)
    closed = slack_sandbox(users=PEOPLE)  # started, then pointed at a port nobody listens on
    dead = closed.client(connection_retries=1, backoff_seconds=0.01)
    dead.base_url = "http://127.0.0.1:9/api/"
    away = deliver_pending(engine, dead, admin_channel=ADMIN, now=NOW)
    assert (away.sent, away.deferred) == (0, 3)
    assert any("Slack unreachable" in p for p in away.problems)
    assert _deliver(slack, engine).sent == 3


def test_a_missing_admin_channel_is_one_line_naming_the_setting(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        a = account(s, "Orphan Ltd", None)
    orphan = alert(engine, a, None)
    summary = _deliver(slack, engine, admin_channel="#no-such-channel")
    assert summary.sent == 0
    [line] = summary.problems
    assert "channel_not_found" in line
    assert "set SLACK__ADMIN_CHANNEL to a channel the app was invited to" in line
    assert SLACK_BOT_TOKEN not in line
    row = _get(engine, orphan)
    assert (row.status, row.error) == ("pending", line)
    assert _deliver(slack, engine).sent == 1  # fixed: it goes out


# ---- two instances -----------------------------------------------------------------------


def test_two_notifiers_racing_send_each_alert_once(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        owners = [JO, SAM, LENA, GHOST]
        accounts = {(o, n): account(s, f"Account {n} of {o}", o) for o in owners for n in range(5)}
    ids = [
        alert(engine, accounts[o, n], o, rule=f"r{n}", created=NOW - hours(n))
        for n in range(5)
        for o in owners
    ]
    url = engine.url.render_as_string(hide_password=False)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        other = make_engine(url)
        try:
            start.wait()
            deliver_pending(other, slack.client(), admin_channel=ADMIN, now=NOW, settings=UNLIMITED)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            other.dispose()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    rows = {a.id: a for a in alerts(engine)}
    posted = [m for m in slack.recorder.messages if m["channel"] != channel_id("cs-alerts")]
    assert len(posted) == 15
    assert sorted(rows[i].message_ts or "" for i in ids if rows[i].status == "sent") == sorted(
        m["ts"] for m in posted
    )
    assert [rows[i].status for i in ids].count("unroutable") == 5  # the ghost's
    assert len(_in(slack, "cs-alerts")) == 1  # one notice about the ghost
    with Session(engine) as s:
        notices = s.exec(select(Alert).where(col(Alert.rule) == "routing_problem")).all()
        assert [n.fingerprint for n in notices] == [f"routing_problem:{GHOST}"]
