"""Detection: each rule finds its case (and not its near miss), once per cooldown, set-based."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlmodel import Session

from notifications import detect_alerts, load_rules
from notifications.rules import RuleSet
from store import make_engine, session_scope
from store.models import Alert
from tests.notifications.builders import alerts, measures, score
from tests.scoring.seed import AS_OF, ago, sentiment, ticket
from tests.scoring.seed import account as seed_account

RULES = load_rules()
WEEK_AGO = AS_OF - timedelta(days=7)


def only(rule: str, **changes: Any) -> RuleSet:
    """The shipped rules with every rule but `rule` off."""
    off: dict[str, dict[str, Any]] = {n: {"enabled": False} for n in RULES.rules() if n != rule}
    return RULES.override({**off, rule: changes})


def _account(s: Session, name: str = "Acme", **fields: Any) -> int:
    fields.setdefault("owner_email", "jo@example.com")
    return seed_account(s, name, **fields)


Setup = Callable[[Session], None]


def _scored(band: str = "yellow", value: float = 50, **readings: Any) -> Setup:
    def setup(s: Session) -> None:
        score(s, _account(s), AS_OF, value, band, measures(**readings))

    return setup


def _band_drop(s: Session) -> None:
    a = _account(s)
    score(s, a, AS_OF - timedelta(days=1), 60, "yellow")
    score(s, a, AS_OF, 30, "red")


def _score_drop(points: float) -> Setup:
    def setup(s: Session) -> None:
        a = _account(s)
        score(s, a, WEEK_AGO, 80, "green")
        score(s, a, AS_OF, 80 - points, "yellow" if points > 10 else "green")

    return setup


def _urgent(hours_open: float, priority: str = "urgent", **fields: Any) -> Setup:
    def setup(s: Session) -> None:
        a = _account(s)
        score(s, a, AS_OF, 50, "yellow")
        ticket(s, a, ago(hours_open / 24), priority=priority, **fields)

    return setup


def _renewal(days: int, band: str) -> Setup:
    def setup(s: Session) -> None:
        score(s, _account(s, renewal_date=AS_OF + timedelta(days=days)), AS_OF, 50, band)

    return setup


def _sentiment(days: float | None, owner: str | None = "jo@example.com") -> Setup:
    def setup(s: Session) -> None:
        a = _account(s, owner_email=owner)
        score(s, a, AS_OF, 50, "yellow")
        if days is not None:
            sentiment(s, a, "green", ago(days))

    return setup


def _signal(s: Session) -> None:
    text = "CSM says green, the data says red (31)"
    signals = [
        {"kind": "sentiment_vs_data", "sentiment": "green", "data_band": "red", "text": text}
    ]
    score(s, _account(s), AS_OF, 50, "yellow", {"signals": signals})


FAILED = (1.0, {"count": 1, "s": "", "ago": "4 days ago", "days_ago": 4})
SPIKE = (3.0, {"recent": 12, "baseline": 4.0})
FALLING = (0.5, {"change": "down 50%", "recent_mean": 5.0, "prior_mean": 10.0})
CASES: list[tuple[str, Setup, str | None]] = [
    ("band_drop", _band_drop, "Acme dropped from yellow (60) to red (30)"),
    ("score_drop", _score_drop(20), "Acme: health fell 20 points since 2026-02-23 (80 to 60)"),
    ("score_drop", _score_drop(10), None),
    ("payment_failed", _scored(failed_payments=FAILED), "Acme: invoice payment failed"),
    ("payment_failed", _scored(subscription_state=("past_due", {"state": "past due"})),
     "Acme: subscription past due"),
    ("payment_failed", _scored(failed_payments=(0.0, {"ago": "never"})), None),
    ("ticket_spike", _scored(ticket_volume=SPIKE), "Acme: tickets at 3.0x the usual volume"),
    ("ticket_spike", _scored(ticket_volume=(3.0, {"recent": 3, "baseline": 1.0})), None),
    ("urgent_ticket", _urgent(30), "Acme: an urgent ticket open for 30 hours"),
    ("urgent_ticket", _urgent(10), None),
    ("urgent_ticket", _urgent(72, status="solved", solved_at=ago(1)), None),
    ("urgent_ticket", _urgent(72, priority="normal"), None),
    ("renewal_at_risk", _renewal(45, "yellow"), "Acme renews in 45 days and is yellow (50)"),
    ("renewal_at_risk", _renewal(45, "green"), None),
    ("renewal_at_risk", _renewal(120, "red"), None),
    ("usage_drop", _scored(usage_trend=FALLING), "Acme: weekly active users down 50%"),
    ("usage_drop", _scored(usage_trend=(0.9, {"change": "down 10%"})), None),
    ("sentiment_stale", _sentiment(None), "Acme: no CSM sentiment yet"),
    ("sentiment_stale", _sentiment(40.5), "Acme: CSM sentiment not updated for 40 days"),
    ("sentiment_stale", _sentiment(10), None),
    ("sentiment_stale", _sentiment(None, owner=None), None),
    ("sentiment_vs_data", _signal, "Acme: CSM says green, the data says red (31)"),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "setup", "title"), CASES)
def test_each_rule_finds_its_case_and_not_the_near_miss(
    engine: Engine, rule: str, setup: Setup, title: str | None
) -> None:
    with session_scope(engine) as s:
        setup(s)
    found = detect_alerts(engine, AS_OF, only(rule))
    if title is None:
        assert found.created == 0
        return
    [alert] = alerts(engine)
    assert (alert.rule, alert.status, alert.recipient_email) == (rule, "pending", "jo@example.com")
    assert alert.text == title
    assert alert.severity == ("critical" if rule == "band_drop" else getattr(RULES, rule).severity)
    assert alert.payload["rule"] == rule
    assert alert.payload["as_of"] == AS_OF.isoformat()


def test_former_customers_get_no_alerts(engine: Engine) -> None:
    with session_scope(engine) as s:
        a = _account(s)
        churned = measures(subscription_state=("churned", {"state": "canceled"}))
        score(s, a, AS_OF - timedelta(days=1), 80, "green", churned)
        score(s, a, AS_OF, 20, "red", churned)
    assert detect_alerts(engine, AS_OF).created == 0


def _failing_on(engine: Engine, days: list[date]) -> None:
    with session_scope(engine) as s:
        a = _account(s)
        for day in days:
            score(s, a, day, 45, "yellow", measures(failed_payments=FAILED))


def test_an_alert_repeats_only_after_its_cooldown(engine: Engine) -> None:
    rules = only("payment_failed", cooldown_days=7)
    start = date(2026, 3, 6)  # the last day of a 7-day window: the next day starts another
    days = [start + timedelta(days=n) for n in range(15)]
    _failing_on(engine, days)
    created = [detect_alerts(engine, day, rules).created for day in days]
    assert created == [1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    assert len({a.fingerprint for a in alerts(engine)}) == 3


def test_a_worse_band_is_news_within_the_cooldown_a_flap_is_not(engine: Engine) -> None:
    rules = only("band_drop")
    bands = [("green", 80), ("yellow", 60), ("red", 30), ("yellow", 45), ("red", 30)]
    with session_scope(engine) as s:
        a = _account(s)
        for n, (band, value) in enumerate(bands):
            score(s, a, AS_OF + timedelta(days=n), value, band)
    created = [detect_alerts(engine, AS_OF + timedelta(days=n), rules).created for n in range(5)]
    assert created == [0, 1, 1, 0, 0]  # into yellow, into red; back into red is no news
    assert [a.payload["key"] for a in alerts(engine)] == ["yellow", "red"]


def test_band_drops_recorded_before_rules_had_keys_are_not_repeated(engine: Engine) -> None:
    with session_scope(engine) as s:
        a = _account(s)
        score(s, a, AS_OF - timedelta(days=1), 80, "green")
        score(s, a, AS_OF, 30, "red")
        old = {"account_name": "Acme", "score": 30, "band": "red", "previous_score": 80,
               "previous_band": "green", "as_of": AS_OF.isoformat()}  # fmt: skip
        s.add(Alert(fingerprint=f"band_drop:{a}:green->red:{AS_OF}", account_id=a,
                    rule="band_drop", severity="critical", payload=old))  # fmt: skip
    assert detect_alerts(engine, AS_OF, only("band_drop")).created == 0


def _seed(engine: Engine, accounts: int) -> None:
    """Accounts for which most rules fire."""
    with session_scope(engine) as s:
        for n in range(accounts):
            a = _account(s, f"Account {n}", renewal_date=AS_OF + timedelta(days=30))
            score(s, a, WEEK_AGO, 90, "green")
            score(s, a, AS_OF - timedelta(days=1), 80, "green")
            score(s, a, AS_OF, 30, "red", measures(failed_payments=FAILED, ticket_volume=SPIKE))
            ticket(s, a, ago(3), priority="urgent")


def _statements(engine: Engine) -> tuple[int, int]:
    """Statements one detection run issues, and the alerts it created."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        created = detect_alerts(engine, AS_OF).created
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen), created


def test_detection_is_set_based(engine: Engine) -> None:
    _seed(engine, 3)
    few, created = _statements(engine)
    assert created == 3 * 7  # band, score, payment, spike, urgent, renewal, stale sentiment
    _seed(engine, 30)
    many, created = _statements(engine)
    assert created == 30 * 7
    assert many == few, "detection must not issue a query per account"


def test_two_instances_detecting_at_once_record_each_alert_once(engine: Engine) -> None:
    with session_scope(engine) as s:
        for n in range(20):
            a = _account(s, f"Account {n}")
            score(s, a, AS_OF - timedelta(days=1), 80, "green")
            score(s, a, AS_OF, 30, "red", measures(failed_payments=FAILED))
    url = engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url), make_engine(url)]
    start = threading.Barrier(2)
    created: list[int] = []
    errors: list[BaseException] = []

    def run(other: Engine) -> None:
        try:
            start.wait()
            for _ in range(3):
                created.append(detect_alerts(other, AS_OF).created)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for e in engines:
        e.dispose()
    assert errors == []
    rows = alerts(engine)
    assert len(rows) == len({a.fingerprint for a in rows})
    assert sum(created) == len(rows)  # each alert counted as new by exactly one instance
    assert {a.rule for a in rows} >= {"band_drop", "payment_failed"}
