"""Each measure on hand-built rows, on SQLite and PostgreSQL, as of `AS_OF`.

Every test also plants rows that must not count: rows known only after `AS_OF`, deleted
rows and rows of no account.
"""

from __future__ import annotations

from sqlalchemy import Engine

from scoring.measures import (
    csat,
    csm_sentiment,
    failed_payments,
    mrr_trend,
    seat_utilisation,
    subscription_state,
    ticket_volume,
    urgent_open_tickets,
    usage_trend,
)
from store import session_scope
from tests.scoring.seed import (
    AS_OF,
    account,
    ago,
    invoice,
    later,
    sentiment,
    subscription,
    survey,
    ticket,
    usage,
    weeks_back,
)


def test_ticket_volume_against_own_baseline(engine: Engine) -> None:
    with session_scope(engine) as s:
        busy, quiet, none = account(s, "Busy"), account(s, "Quiet"), account(s, "None")
        for k in range(12):
            ticket(s, busy, ago(1 + 2 * k))  # 12 in the last 30 days
        for k in range(24):
            ticket(s, busy, ago(31 + 7 * k))  # 24 in the 180 days before: 4 per 30 days
        ticket(s, busy, later(1))
        ticket(s, busy, ago(2), deleted_at=ago(1))
        ticket(s, None, ago(2))
        ticket(s, quiet, ago(100))
    with session_scope(engine) as s:
        readings = ticket_volume(s, AS_OF)
    assert readings[busy].value == 3.0
    assert readings[busy].details == {"recent": 12, "baseline": 4.0}
    assert readings[quiet].value == 0.0  # known to the helpdesk, nothing recent
    assert none not in readings


def test_urgent_open_tickets_point_in_time(engine: Engine) -> None:
    with session_scope(engine) as s:
        a, b = account(s, "A"), account(s, "B")
        ticket(s, a, ago(5), priority="urgent")  # open
        ticket(s, a, ago(5), priority="High", status="solved", solved_at=later(2))  # open then
        ticket(s, a, ago(5), priority="high", status="closed", updated_at=later(1))  # open then
        ticket(s, a, ago(5), priority="high", status="solved", updated_at=ago(2))  # solved
        ticket(s, a, ago(5), priority="urgent", status="solved", solved_at=ago(1))  # solved
        ticket(s, a, ago(5), priority="low")  # not urgent
        ticket(s, a, later(1), priority="urgent")  # not yet created
        ticket(s, b, ago(5), priority="normal")
    with session_scope(engine) as s:
        readings = urgent_open_tickets(s, AS_OF)
    assert readings[a].value == 3
    assert readings[a].details == {"count": 3, "s": "s"}
    assert readings[b].value == 0


def test_csat_from_surveys_then_ticket_ratings(engine: Engine) -> None:
    with session_scope(engine) as s:
        surveyed, rated, fivescale = account(s, "S"), account(s, "R"), account(s, "F")
        for score in (1, 1, 1, 0):
            survey(s, surveyed, ago(10), score)
        survey(s, surveyed, ago(91), 0)  # too old
        survey(s, surveyed, later(1), 0)  # not yet
        survey(s, surveyed, ago(5), 0, kind="nps", scale_max=10)  # not csat
        ticket(s, surveyed, ago(20), satisfaction="bad")  # surveys win
        ticket(s, rated, ago(20), satisfaction="good")
        ticket(s, rated, ago(20), satisfaction="bad")
        ticket(s, rated, ago(20), satisfaction="bad", updated_at=later(1))  # rated later
        survey(s, fivescale, ago(3), 4, scale_max=5)
        survey(s, fivescale, ago(3), 3, scale_max=5)
    with session_scope(engine) as s:
        readings = csat(s, AS_OF)
    assert readings[surveyed].value == 75.0
    assert readings[surveyed].details == {"ratings": 4, "source": "surveys"}
    assert readings[rated].value == 50.0
    assert readings[rated].details["source"] == "ticket ratings"
    assert readings[fivescale].value == 70.0  # 4 and 3 of 5: the mean, not a share


def test_subscription_state_as_of(engine: Engine) -> None:
    with session_scope(engine) as s:
        ids = {
            n: account(s, n) for n in ("ok", "gone", "left_later", "late", "stale", "new", "mix")
        }
        subscription(s, ids["ok"], "active")
        subscription(s, ids["gone"], "canceled", canceled_at=ago(40), ended_at=ago(10))
        subscription(s, ids["left_later"], "canceled", canceled_at=ago(1), ended_at=later(5))
        subscription(s, ids["late"], "past_due")
        invoice(s, ids["late"], ago(4), status="open", attempt_count=2, amount_remaining_minor=9)
        subscription(s, ids["stale"], "past_due")  # no failed invoice as of then
        invoice(s, ids["stale"], later(1), status="open", attempt_count=1, amount_remaining_minor=9)
        subscription(s, ids["new"], "active", started_at=later(3))
        subscription(s, ids["mix"], "active")
        subscription(s, ids["mix"], "paused")
        subscription(s, ids["mix"], "canceled", ended_at=ago(100))
    with session_scope(engine) as s:
        readings = subscription_state(s, AS_OF)
    got = {n: readings[i].value for n, i in ids.items() if i in readings}
    assert got == {
        "ok": "active",
        "gone": "churned",
        "left_later": "active",
        "late": "past_due",
        "stale": "active",
        "mix": "paused",
    }
    assert readings[ids["gone"]].details["state"].startswith("canceled")


def test_failed_payments_last_60_days(engine: Engine) -> None:
    with session_scope(engine) as s:
        failing, fine, recovered, fresh = (account(s, n) for n in ("F", "OK", "Rec", "Fresh"))
        invoice(s, failing, ago(4.5), status="open", attempt_count=2, amount_remaining_minor=5000)
        invoice(s, failing, ago(90), status="open", attempt_count=3, amount_remaining_minor=500)
        invoice(s, failing, ago(3), status="void", attempt_count=1, amount_remaining_minor=500)
        invoice(s, failing, ago(3), status="open", attempt_count=0, amount_remaining_minor=500)
        invoice(s, fine, ago(20), paid_at=ago(20))
        invoice(s, recovered, ago(10), attempt_count=3, paid_at=later(2))  # failing then
        invoice(s, fresh, later(1), status="open", attempt_count=1, amount_remaining_minor=1)
    with session_scope(engine) as s:
        readings = failed_payments(s, AS_OF)
    assert readings[failing].value == 1
    assert readings[failing].details["ago"] == "4 days ago"
    assert readings[fine].value == 0
    assert readings[fine].details["ago"] == "never"
    assert readings[recovered].value == 1
    assert fresh not in readings


def test_mrr_trend_against_90_days_before(engine: Engine) -> None:
    with session_scope(engine) as s:
        shrinking, new, flat = account(s, "Shrink"), account(s, "New"), account(s, "Flat")
        subscription(s, shrinking, mrr_minor=100_00)
        subscription(s, shrinking, "canceled", mrr_minor=50_00, ended_at=ago(30))
        subscription(s, new, started_at=ago(10))
        subscription(s, flat)
        subscription(s, flat, started_at=later(1), mrr_minor=500_00)
    with session_scope(engine) as s:
        readings = mrr_trend(s, AS_OF)
    assert readings[shrinking].value == 0.667
    assert readings[shrinking].details["change"] == "down 33%"
    assert new not in readings  # no MRR 90 days ago: no trend yet
    assert readings[flat].value == 1.0
    assert readings[flat].details["change"] == "unchanged"


def test_seat_utilisation_latest_complete_week(engine: Engine) -> None:
    with session_scope(engine) as s:
        a, stale, unlicensed = account(s, "A"), account(s, "Stale"), account(s, "Unlicensed")
        usage(s, a, weeks_back(2), 15)
        usage(s, a, weeks_back(1), 8)
        usage(s, a, weeks_back(0), 20, recorded=ago(0.5))  # week not over yet
        usage(s, a, weeks_back(1), 30, recorded=later(1))  # a late-recorded row
        usage(s, stale, weeks_back(8), 10)
        usage(s, unlicensed, weeks_back(1), 10, seats=None)
    with session_scope(engine) as s:
        readings = seat_utilisation(s, AS_OF)
    assert readings[a].value == 0.4
    assert readings[a].details == {"active": 8, "seats": 20, "week": weeks_back(1).isoformat()}
    assert stale not in readings
    assert unlicensed not in readings


def test_usage_trend_last_4_weeks_vs_8_before(engine: Engine) -> None:
    with session_scope(engine) as s:
        falling, steady, young = account(s, "Falling"), account(s, "Steady"), account(s, "Young")
        for n in range(1, 13):
            usage(s, falling, weeks_back(n), 6 if n <= 4 else 10)
            usage(s, steady, weeks_back(n), 10)
        usage(s, young, weeks_back(1), 5)
    with session_scope(engine) as s:
        readings = usage_trend(s, AS_OF)
    assert readings[falling].value == 0.6
    assert readings[falling].details["change"] == "down 40%"
    assert readings[steady].value == 1.0
    assert young not in readings


def test_csm_sentiment_latest_within_90_days(engine: Engine) -> None:
    with session_scope(engine) as s:
        a, old, future = account(s, "A"), account(s, "Old"), account(s, "Future")
        sentiment(s, a, "green", ago(20))
        sentiment(s, a, "red", ago(5), note="exec sponsor left")
        sentiment(s, a, "green", later(1))
        sentiment(s, old, "red", ago(91))
        sentiment(s, future, "red", later(1))
    with session_scope(engine) as s:
        readings = csm_sentiment(s, AS_OF)
    assert readings[a].value == "red"
    assert readings[a].details["note"] == ": exec sponsor left"
    assert old not in readings
    assert future not in readings
