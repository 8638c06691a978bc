"""A stop request (SIGTERM to `health-agent run`) ends a delivery between two Slack messages.

The message being posted when the stop comes is finished and recorded; the alerts after it
stay pending, and the next run sends them, each once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from notifications import deliver, deliver_pending
from notifications.grouping import Group
from sandbox.slack import dm_channel_id, user_id
from settings import AlertSettings
from store import session_scope, stopping
from store.models import Alert
from tests.notifications.builders import NOW, account, alert, hours
from tests.notifications.conftest import SandboxFactory

JO = "jo@example.com"
UNLIMITED = AlertSettings(daily_budget=0, summary_only="none")


@pytest.fixture(autouse=True)
def _no_stop_left_behind() -> Iterator[None]:
    stopping.reset()
    yield
    stopping.reset()


def _statuses(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(Alert.status).order_by(col(Alert.id))).all())


def test_a_stop_ends_delivery_after_the_message_in_flight(
    engine: Engine, slack_sandbox: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = slack_sandbox(users=[(JO, "Jo Park")], rate_limit=None)
    with session_scope(engine) as session:
        accounts = [account(session, name, JO) for name in ("Acme", "Beta", "Gamma")]
    for account_id, rule in zip(accounts, ("band_drop", "usage_drop", "ticket_spike"), strict=True):
        alert(engine, account_id, JO, rule=rule)
    send = deliver._Run.send

    def send_while_a_stop_comes(run: deliver._Run, group: Group) -> bool:
        stopping.request_stop()  # SIGTERM arrives while this message is being posted
        return send(run, group)

    monkeypatch.setattr(deliver._Run, "send", send_while_a_stop_comes)
    client = slack.client(backoff_seconds=0.01)
    first = deliver_pending(engine, client, settings=UNLIMITED, now=NOW)
    assert (first.sent, first.deferred) == (1, 2)
    assert _statuses(engine) == ["sent", "pending", "pending"]
    assert len(slack.recorder.messages) == 1

    monkeypatch.undo()
    stopping.reset()  # the next run of the process
    later = deliver_pending(engine, client, settings=UNLIMITED, now=NOW + hours(1))
    assert (later.sent, later.deferred) == (2, 0)
    assert _statuses(engine) == ["sent", "sent", "sent"]
    dm = dm_channel_id(user_id(JO))
    assert [m["channel"] for m in slack.recorder.messages] == [dm, dm, dm], "each once"
