"""One message per account: alerts that fire together for one CSM reach them as one DM.

Against the Slack emulator: the most severe alert (ties: the oldest) leads and lists the
others; all are recorded sent with its message; the budget counts one message; the lead's
Acknowledge and Snooze cover the others; and they never escalate on their own.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from notifications import deliver
from notifications.actions import acknowledge, active_snooze, snooze
from notifications.outbox import claim, update_pending
from settings import AlertSettings
from store import make_engine, session_scope
from store.models import Alert
from tests.notifications.builders import NOW, account, alert, alerts, csm, hours, team
from tests.notifications.conftest import SandboxFactory
from tests.notifications.test_delivery import (
    ADMIN,
    JO,
    LENA,
    SAM,
    UNLIMITED,
    _deliver,
    _get,
    _sandbox,
    _to,
)


def _title(engine: Engine, alert_id: int) -> str:
    return _get(engine, alert_id).text


def _failed_payment(engine: Engine, account_id: int, ago: float = 0) -> list[int]:
    """What a failed payment makes fire: the lead is the oldest of the two high ones."""
    at = hours(ago)
    return [
        alert(engine, account_id, JO, rule="band_drop", severity="high", created=NOW - at),
        alert(engine, account_id, JO, rule="payment_failed", created=NOW - at - hours(0.1)),
        alert(engine, account_id, JO, rule="renewal_at_risk", severity="medium", created=NOW - at),
    ]


def test_three_alerts_about_one_account_are_one_dm_that_counts_once(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        acme, beta, gamma = (account(s, name, JO) for name in ("Acme", "Beta", "Gamma"))
    band, payment, renewal = _failed_payment(engine, acme)
    other = alert(engine, beta, JO, created=NOW - hours(1))
    policy = AlertSettings(daily_budget=2, summary_only="none")
    summary = _deliver(slack, engine, settings=policy)
    assert (summary.sent, summary.folded, summary.rolled) == (4, 2, 0)
    first, second = _to(slack, JO)  # Beta's alert is older: it goes first
    assert first.startswith(_title(engine, other))
    assert second.startswith(_title(engine, payment))  # the oldest of the most severe leads
    assert f"Also: {_title(engine, band)} (high); {_title(engine, renewal)} (medium)" in second
    lead = _get(engine, payment)
    for folded in (band, renewal):
        row = _get(engine, folded)
        assert (row.status, row.channel, row.message_ts) == ("sent", lead.channel, lead.message_ts)
        assert (row.rolled_into, row.sent_at) == (payment, NOW)
    assert (lead.status, lead.rolled_into) == ("sent", None)
    [posted] = [m for m in slack.recorder.messages if m["text"] == second]
    listed = next(b for b in posted["blocks"] if "Also about this account" in str(b))
    assert listed["text"]["text"].startswith("*Also about this account* (2)\n• *High* · Account")
    buttons = [b for b in posted["blocks"] if b["type"] == "actions"]
    assert [e["value"] for e in buttons[0]["elements"]] == [str(payment)] * 4

    late = alert(engine, gamma, JO, created=NOW + hours(1))  # two DMs today: the budget is spent
    later = _deliver(slack, engine, settings=policy, now=NOW + hours(2))
    assert (later.sent, later.rolled, later.summaries) == (0, 1, 1)
    assert _get(engine, late).status == "rolled"


def test_alerts_about_two_accounts_are_two_dms(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        acme, beta = account(s, "Acme", JO), account(s, "Beta", JO)
        gamma = account(s, "Gamma", SAM)
    ids = [
        alert(engine, acme, JO, rule="band_drop"),
        alert(engine, beta, JO, rule="band_drop"),
        alert(engine, gamma, SAM, rule="band_drop"),
        alert(engine, gamma, SAM, rule="usage_drop", severity="medium"),
    ]
    summary = _deliver(slack, engine, settings=UNLIMITED)
    assert (summary.sent, summary.folded) == (4, 1)
    assert len(_to(slack, JO)) == 2
    [for_sam] = _to(slack, SAM)
    assert _title(engine, ids[3]) in for_sam
    rows = {a.id: a for a in alerts(engine)}
    assert len({rows[i].message_ts for i in ids}) == 3
    assert [rows[i].rolled_into for i in ids] == [None, None, None, ids[2]]


def test_acknowledging_or_snoozing_the_lead_covers_the_folded_alerts(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        acme, beta = account(s, "Acme", JO), account(s, "Beta", JO)
    band, payment, renewal = _failed_payment(engine, acme)
    _, other_lead, other = _failed_payment(engine, beta)
    _deliver(slack, engine, settings=UNLIMITED)
    acknowledge(engine, band, "ana@corp.test", now=NOW + hours(1))  # a folded one alone
    done = acknowledge(engine, payment, JO, now=NOW + hours(2))
    assert done.first
    rows = {a.id: a for a in alerts(engine)}
    assert (rows[payment].acknowledged_by, rows[payment].acknowledged_at) == (JO, NOW + hours(2))
    assert (rows[renewal].acknowledged_by, rows[renewal].acknowledged_at) == (JO, NOW + hours(2))
    assert rows[band].acknowledged_by == "ana@corp.test"  # the first acknowledgement stands
    assert rows[other].acknowledged_at is None  # another account's message

    held = snooze(engine, other_lead, 7, "call booked", SAM, now=NOW + hours(3))
    assert (held.rule, held.also) == ("payment_failed", ("band_drop", "renewal_at_risk"))
    assert _get(engine, other).acknowledged_by == SAM
    with Session(engine) as s:
        for rule in ("payment_failed", "band_drop", "renewal_at_risk"):
            assert active_snooze(s, beta, rule, NOW + hours(4)) is not None
        assert active_snooze(s, beta, "usage_drop", NOW + hours(4)) is None


def test_folded_alerts_never_escalate_on_their_own(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        team(s, "t1", lead=LENA)
        csm(s, JO, "t1")
        acme, beta = account(s, "Acme", JO), account(s, "Beta", JO)
    _, acked, _ = _failed_payment(engine, acme, ago=50)
    _, ignored, renewal = _failed_payment(engine, beta, ago=50)
    assert _deliver(slack, engine, now=NOW - hours(49)).sent == 6
    acknowledge(engine, acked, JO, now=NOW - hours(30))
    first = _deliver(slack, engine)
    again = _deliver(slack, engine, now=NOW + hours(1))
    assert (first.escalated, again.escalated) == (1, 0)  # Beta's lead only, once
    [text] = _to(slack, LENA)
    assert text.startswith(f"Escalated: {_title(engine, ignored)}")
    assert f"{_title(engine, renewal)} (medium)" in text  # its folded alerts, listed
    rows = [a for a in alerts(engine) if a.id != ignored]
    assert all(a.escalated_at is None for a in rows)


def test_a_folded_alert_another_instance_claimed_is_left_out(
    engine: Engine, slack_sandbox: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        acme = account(s, "Acme", JO)
    band, payment, renewal = _failed_payment(engine, acme)

    def claimed_elsewhere_first(session: Session, row: Alert) -> bool:
        if row.id == band:  # the other instance was quicker for this one
            with Session(engine) as other:
                assert update_pending(other, band, status="sending")
        return claim(session, row)

    monkeypatch.setattr(deliver, "claim", claimed_elsewhere_first)
    summary = _deliver(slack, engine, settings=UNLIMITED)
    assert (summary.sent, summary.folded) == (2, 1)
    [text] = _to(slack, JO)
    assert text.startswith(_title(engine, payment))
    assert _title(engine, renewal) in text
    assert _title(engine, band) not in text
    assert _get(engine, band).status == "sending"  # the other instance's to send
    assert _get(engine, renewal).rolled_into == payment


def test_two_notifiers_racing_send_each_grouped_alert_once(
    engine: Engine, slack_sandbox: SandboxFactory
) -> None:
    slack = _sandbox(slack_sandbox)
    with session_scope(engine) as s:
        accounts = {o: account(s, f"Account of {o}", o) for o in (JO, SAM, LENA)}
    ids = [
        alert(engine, accounts[o], o, rule=f"r{n}", severity=("high", "medium")[n % 2])
        for n in range(5)
        for o in accounts
    ]
    url = engine.url.render_as_string(hide_password=False)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        other = make_engine(url)
        try:
            start.wait()
            deliver.deliver_pending(
                other, slack.client(), admin_channel=ADMIN, now=NOW, settings=UNLIMITED
            )
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
    assert all(rows[i].status == "sent" for i in ids)
    posted = {m["ts"]: m["text"] for m in slack.recorder.messages}
    assert 3 <= len(posted) <= 15
    for i in ids:  # in exactly one message, the one it records
        having = [ts for ts, text in posted.items() if rows[i].text in text]
        assert having == [rows[i].message_ts]
    leads = {rows[i].rolled_into or i for i in ids}
    assert {rows[i].message_ts for i in leads} == set(posted)
