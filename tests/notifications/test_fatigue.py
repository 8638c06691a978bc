"""The pure rules of fatigue: quiet hours in a time zone, the daily budget, snoozes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from notifications.fatigue import Candidate, allot, day_bounds, quiet_until, snoozed_until, zone

NIGHT = (time(20), time(8))
BERLIN = zone("Europe/Berlin")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "until"),
    [
        ("2026-03-02T12:00", None),  # 13:00 in Berlin
        ("2026-03-02T19:30", "2026-03-03T07:00"),  # 20:30 in Berlin: until 08:00 tomorrow
        ("2026-03-02T05:00", "2026-03-02T07:00"),  # 06:00 in Berlin: until 08:00 today
        ("2026-03-02T07:00", None),  # 08:00 in Berlin: quiet hours are over
        ("2026-03-28T22:00", "2026-03-29T06:00"),  # the night clocks go forward: 08:00 CEST
    ],
)
def test_quiet_hours_in_the_recipients_time_zone(now: str, until: str | None) -> None:
    expected = _utc(until) if until else None
    assert quiet_until(_utc(now), NIGHT, BERLIN) == expected


def test_a_daytime_window_and_no_window() -> None:
    lunch = (time(12), time(13, 30))
    assert quiet_until(_utc("2026-03-02T12:15"), lunch, zone("UTC")) == _utc("2026-03-02T13:30")
    assert quiet_until(_utc("2026-03-02T14:00"), lunch, zone("UTC")) is None
    assert quiet_until(_utc("2026-03-02T23:00"), None, BERLIN) is None


def test_unknown_time_zones_are_utc() -> None:
    assert zone("Mars/Olympus") == zone(None) == zone("UTC")


def test_the_local_day() -> None:
    start, end = day_bounds(_utc("2026-03-02T23:30"), BERLIN)  # 00:30 on the 3rd in Berlin
    assert (start, end) == (_utc("2026-03-02T23:00"), _utc("2026-03-03T23:00"))


def _candidates(*severities: str) -> list[Candidate]:
    base = _utc("2026-03-02T09:00")
    return [
        Candidate(n + 1, severity, base + timedelta(minutes=n))
        for n, severity in enumerate(severities)
    ]


def test_the_budget_goes_to_the_most_severe_then_the_oldest() -> None:
    found = _candidates("medium", "high", "critical", "medium", "high", "low")
    share = allot(found, used=0, budget=3, summary_only="low")
    assert share.send == [3, 2, 5]
    assert share.roll == [1, 4, 6]


def test_critical_alerts_always_go_out_and_count() -> None:
    share = allot(_candidates("critical", "critical", "high"), used=5, budget=5, summary_only=None)
    assert (share.send, share.roll) == ([1, 2], [3])


def test_no_budget_and_no_summary_only() -> None:
    share = allot(_candidates("low", "medium", "high"), used=50, budget=0, summary_only=None)
    assert (sorted(share.send), share.roll) == ([1, 2, 3], [])


def test_summary_only_severities_never_go_alone() -> None:
    share = allot(_candidates("medium", "low"), used=0, budget=0, summary_only="medium")
    assert (share.send, share.roll) == ([], [1, 2])


def test_alerts_about_one_account_go_together_and_count_once() -> None:
    at = _utc("2026-03-02T09:00")
    found = [
        Candidate(1, "high", at, group=7),
        Candidate(2, "medium", at, group=7),  # rides with 1: same account
        Candidate(3, "low", at, group=7),  # summary only, even with its account going out
        Candidate(4, "high", at + timedelta(minutes=1), group=8),
        Candidate(5, "high", at + timedelta(minutes=2)),  # the budget is spent
    ]
    share = allot(found, used=0, budget=2, summary_only="low")
    assert (share.send, share.roll) == ([1, 4, 2], [5, 3])


def test_snoozes_hold_their_rule_or_every_rule() -> None:
    week, month = _utc("2026-03-09T09:00"), _utc("2026-04-01T09:00")
    snoozes = {7: [("band_drop", week)], 8: [(None, week), ("usage_drop", month)]}
    assert snoozed_until(snoozes, 7, "band_drop") == week
    assert snoozed_until(snoozes, 7, "usage_drop") is None
    assert snoozed_until(snoozes, 8, "usage_drop") == month
    assert snoozed_until(snoozes, 8, "ticket_spike") == week
    assert snoozed_until(snoozes, 9, "band_drop") is None
    assert snoozed_until(snoozes, None, "band_drop") is None
