"""Acknowledging and snoozing an alert: once, idempotent, and a snooze holds the rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from notifications.actions import ActionError, acknowledge, active_snooze, snooze
from store.db import session_scope
from store.models import Account, Alert

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _alert(engine: Engine, rule: str = "band_drop") -> tuple[int, int]:
    with session_scope(engine) as session:
        account = Account(source="crm", external_id="1", name="Acme")
        session.add(account)
        session.flush()
        assert account.id is not None
        alert = Alert(fingerprint=f"{rule}:1", account_id=account.id, rule=rule)
        session.add(alert)
        session.flush()
        assert alert.id is not None
        return alert.id, account.id


def test_the_first_acknowledgement_stands(engine: Engine) -> None:
    alert_id, _ = _alert(engine)
    first = acknowledge(engine, alert_id, "ana@corp.test", now=NOW)
    again = acknowledge(engine, alert_id, "ben@corp.test", now=NOW + timedelta(hours=1))
    assert (first.first, again.first) == (True, False)
    assert (again.by, again.at) == ("ana@corp.test", NOW)
    with Session(engine) as session:
        stored = session.get(Alert, alert_id)
        assert stored is not None
        assert (stored.acknowledged_by, stored.acknowledged_at) == ("ana@corp.test", NOW)
    with pytest.raises(ActionError, match="alert 999 no longer exists"):
        acknowledge(engine, 999, "ana@corp.test")


def test_a_snooze_holds_the_rule_for_the_account_and_never_shortens(engine: Engine) -> None:
    alert_id, account_id = _alert(engine)
    held = snooze(engine, alert_id, 7, "on holiday", "ana@corp.test", now=NOW)
    assert (held.rule, held.until) == ("band_drop", NOW + timedelta(days=7))
    shorter = snooze(engine, alert_id, 2, "", "ana@corp.test", now=NOW)
    assert shorter.until == NOW + timedelta(days=7)
    with Session(engine) as session:
        assert active_snooze(session, account_id, "band_drop", NOW + timedelta(days=6))
        assert active_snooze(session, account_id, "payment_failed", NOW) is None
        assert active_snooze(session, account_id, "band_drop", NOW + timedelta(days=8)) is None
        alert = session.get(Alert, alert_id)
        assert alert is not None
        assert alert.acknowledged_at == NOW  # a snooze is acting on the alert
    everything = snooze(engine, alert_id, 3, all_rules=True, now=NOW)
    assert everything.rule is None
    with Session(engine) as session:
        assert active_snooze(session, account_id, "payment_failed", NOW + timedelta(days=1))
    with pytest.raises(ValueError, match="at least a day"):
        snooze(engine, alert_id, 0)
