"""CSM and team performance: periods, and a small book whose every figure is worked by hand.

The book (2026-Q3, so "at the start" is the end of 2026-06-30 and "at the end" the end of
2026-09-30; MRR in dollars, ARR = 12 x MRR):

| account | owner | MRR start -> end | story |
| --- | --- | --- | --- |
| Alpha | Ana | 1000 -> 1500 | a second subscription from Aug 1: expansion |
| Bravo | Ana | 1000 -> 0 | canceled, ended Aug 15: churn (MRR from the CRM's 12,000 ARR) |
| Charlie | Ana | 2000 -> 1500 | one of two ended Sep 10, its MRR kept: contraction |
| Delta | Ana | 0 -> 400 | created Jul 6, value in the week of Jul 20: 21 days |
| Zulu | Ana | - | deleted in May: not in the report |
| Kilo | Ana | - | created in October: not in the report |
| Echo | Ben | 3000 -> 3000 | |
| Foxtrot | Ben | no billing | ARR 12,000 from the CRM |
| Golf | Ben | 0 -> 1000 | created Sep 1, below half its seats: censored at 30 days |
| Hotel | Cara | 2000 -> 2000 | owner's email in another case |
| India | Cara | 1000 -> 1000 | |
| Juliet | gone@ (no CSM) | 500 -> 500 | "(unowned)" |

Health (score x ARR in thousands, over ARR in thousands):

- Ana at the start: (80x12 + 30x12 + 60x24) / 48 = 57.5; at the end (Delta unscored):
  (70x18 + 50x18) / 36 = 60.0; change +2.5.
- Ben: (90x36 + 40x12) / 48 = 77.5; (76x36 + 40x12) / 48 = 67.0 (Foxtrot's June score is
  still its latest); change -10.5.
- Cara: (50x24 + 80x12) / 36 = 60.0; (65x24 + 35x12) / 36 = 55.0; change -5.0.
- Enterprise (Ana and Ben): 6480 / 96 = 67.5; 5376 / 84 = 64.0; change -3.5.
- Everyone: (6480 + 2160 + 55x6) / 138 = 65.0; (5376 + 1980 + 76x6) / 126 = 62.0; -3.0.

Retention: Ana GRR = (1000 + 0 + 1500) / 4000 = 0.625, NRR = (1500 + 0 + 1500) / 4000 =
0.75; Enterprise GRR = 5500 / 7000, NRR = 6000 / 7000; everyone GRR = 9000 / 10500, NRR =
9500 / 10500.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import Engine, event
from sqlmodel import Session
from typer.testing import CliRunner

from cli import app
from scoring.team import (
    Bands,
    BookFigures,
    Period,
    PeriodError,
    TeamReport,
    TeamReportError,
    choose_period,
    last_complete_quarter,
    parse_period,
    print_team_report,
    team_report,
)
from store import make_engine, session_scope
from store.models import (
    Account,
    Alert,
    Csm,
    HealthScore,
    Opportunity,
    PlaybookTask,
    SentimentEntry,
    Subscription,
    Team,
    UsageSnapshot,
)
from store.money import ExchangeRate, Rates

Q3 = parse_period("2026-Q3")
OLD = datetime(2024, 1, 10, tzinfo=UTC)
_IDS = count(1)


def at(day: str, hour: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


# ---- periods ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label", "start", "end"),
    [
        ("2026-Q3", "2026-Q3", date(2026, 7, 1), date(2026, 9, 30)),
        ("2026-q1", "2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
        ("2026-Q4", "2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
        ("2026-09", "2026-09", date(2026, 9, 1), date(2026, 9, 30)),
        ("2028-02", "2028-02", date(2028, 2, 1), date(2028, 2, 29)),
        ("2026-W37", "2026-W37", date(2026, 9, 7), date(2026, 9, 13)),
        ("2026-w01", "2026-W01", date(2025, 12, 29), date(2026, 1, 4)),
        ("2026-W53", "2026-W53", date(2026, 12, 28), date(2027, 1, 3)),
        (" 2026-Q2 ", "2026-Q2", date(2026, 4, 1), date(2026, 6, 30)),
    ],
)
def test_parse_period(text: str, label: str, start: date, end: date) -> None:
    assert parse_period(text) == Period(label, start, end)


@pytest.mark.parametrize("text", ["2026-Q5", "2026-Q0", "2026-13", "2026-00", "2025-W53", "Q3", ""])
def test_parse_period_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(PeriodError):
        parse_period(text)


@pytest.mark.parametrize(
    ("today", "label"),
    [
        (date(2026, 11, 23), "2026-Q3"),
        (date(2026, 10, 1), "2026-Q3"),
        (date(2026, 9, 30), "2026-Q2"),
        (date(2026, 1, 15), "2025-Q4"),
    ],
)
def test_last_complete_quarter(today: date, label: str) -> None:
    assert last_complete_quarter(today).label == label


def test_choose_period() -> None:
    today = date(2026, 11, 23)
    assert choose_period(None, None, None, today=today) == Q3
    assert choose_period("2026-09", None, None, today=today).start == date(2026, 9, 1)
    dates = choose_period(None, "2026-07-01", "2026-08-15", today=today)
    assert dates == Period("2026-07-01..2026-08-15", date(2026, 7, 1), date(2026, 8, 15))
    assert dates.opening_day == date(2026, 6, 30)
    for args, message in [
        (("2026-Q3", "2026-07-01", None), "not both"),
        ((None, "2026-07-01", None), "go together"),
        ((None, None, "2026-07-01"), "go together"),
        ((None, "2026-08-15", "2026-07-01"), "ends"),
        ((None, "July", "2026-08-01"), "--from 'July' is not a date"),
    ]:
        with pytest.raises(PeriodError, match=message):
            choose_period(*args, today=today)


# ---- the worked example ----------------------------------------------------------------


class Book:
    """Adds the rows of the worked example, with unique external ids."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def _ext(self) -> str:
        return f"x{next(_IDS)}"

    def account(self, name: str, owner: str | None, **fields: Any) -> int:
        fields.setdefault("created_at", OLD)
        row = Account(source="crm", external_id=self._ext(), name=name, owner_email=owner, **fields)
        self.s.add(row)
        self.s.flush()
        assert row.id is not None
        return row.id

    def sub(self, account_id: int, mrr: int, started: datetime = OLD, **fields: Any) -> None:
        fields.setdefault("status", "active")
        self.s.add(
            Subscription(
                source="billing",
                external_id=self._ext(),
                account_id=account_id,
                mrr_minor=mrr * 100,
                started_at=started,
                **fields,
            )
        )

    def scores(self, account_id: int, *scores: tuple[str, float, str]) -> None:
        for day, score, band in scores:
            self.s.add(
                HealthScore(
                    account_id=account_id,
                    as_of=date.fromisoformat(day),
                    score=score,
                    band=band,
                    scorecard_version="test",
                )
            )

    def renewal(self, account_id: int, close: str, *, won: bool, closed: bool, **kw: Any) -> None:
        kw.setdefault("kind", "renewal")
        self.s.add(
            Opportunity(
                source="crm",
                external_id=self._ext(),
                account_id=account_id,
                close_date=date.fromisoformat(close),
                is_won=won,
                is_closed=closed,
                **kw,
            )
        )

    def alert(self, to: str | None, sent: datetime | None, acked: datetime | None = None) -> None:
        self.s.add(
            Alert(
                fingerprint=self._ext(),
                rule="band_drop",
                recipient_email=to,
                status="sent" if sent else "pending",
                sent_at=sent,
                acknowledged_at=acked,
            )
        )

    def task(self, to: str, due: str, done: datetime | None = None) -> None:
        self.s.add(
            PlaybookTask(
                fingerprint=self._ext(),
                playbook="renewal",
                title="Call the sponsor",
                assignee_email=to,
                due_on=date.fromisoformat(due),
                completed_at=done,
            )
        )

    def sentiment(self, account_id: int, recorded: datetime) -> None:
        self.s.add(SentimentEntry(account_id=account_id, sentiment="green", recorded_at=recorded))

    def usage(
        self, account_id: int, week: str, active: int, recorded: datetime | None = None
    ) -> None:
        start = date.fromisoformat(week)
        self.s.add(
            UsageSnapshot(
                source="usage",
                external_id=self._ext(),
                account_id=account_id,
                period_start=start,
                active_users=active,
                licensed_seats=10,
                recorded_at=recorded or at(week) + timedelta(days=7),
            )
        )


ANA, BEN, CARA = "ana@example.com", "ben@example.com", "cara@example.com"


def _people(book: Book) -> None:
    book.s.add_all(
        [
            Team(source="crm", external_id="t1", name="Enterprise", lead_email="lena@example.com"),
            Team(source="crm", external_id="t2", name="Growth", lead_email="gus@example.com"),
            Csm(source="crm", external_id="c1", email=ANA, name="Ana", team_external_id="t1"),
            Csm(source="crm", external_id="c2", email=BEN, name="Ben", team_external_id="t1"),
            Csm(source="crm", external_id="c3", email=CARA, name="Cara", team_external_id="t2"),
        ]
    )


def _anas_book(book: Book) -> None:
    alpha, charlie = book.account("Alpha", ANA), book.account("Charlie", ANA)
    bravo = book.account("Bravo", ANA, arr_minor=12_000_00)
    delta = book.account("Delta", ANA, created_at=at("2026-07-06"))
    book.sub(alpha, 1000)
    book.sub(alpha, 500, at("2026-08-01"))
    # billing keeps no MRR on a canceled subscription: the CRM's ARR tells what Bravo paid
    book.sub(bravo, 0, status="canceled", canceled_at=at("2026-07-20"), ended_at=at("2026-08-15"))
    book.sub(charlie, 1500)
    book.sub(charlie, 500, status="canceled", ended_at=at("2026-09-10"))
    book.sub(delta, 400, at("2026-07-06"))
    zulu = book.account("Zulu", ANA, deleted_at=at("2026-05-01"))
    book.sub(zulu, 900)
    kilo = book.account("Kilo", ANA, created_at=at("2026-10-10"))
    book.sub(kilo, 700, at("2026-10-10"))
    book.scores(alpha, ("2026-06-29", 80, "green"), ("2026-09-28", 70, "green"))
    book.scores(alpha, ("2026-10-05", 10, "red"))  # after the period: not known at its end
    book.scores(bravo, ("2026-06-29", 30, "red"), ("2026-09-28", 20, "red"))
    book.scores(charlie, ("2026-06-29", 60, "yellow"), ("2026-09-28", 50, "yellow"))
    book.renewal(alpha, "2026-08-20", won=True, closed=True)
    book.renewal(bravo, "2026-08-10", won=False, closed=True, kind="existingbusiness")
    book.renewal(charlie, "2026-09-25", won=False, closed=False)
    book.sentiment(alpha, at("2026-09-15"))
    book.sentiment(charlie, at("2026-08-01"))  # stale at the end
    book.sentiment(bravo, at("2026-09-20"))  # churned: not a customer at the end
    for week, active in {"07-06": 2, "07-13": 4, "07-20": 5, "07-27": 8}.items():
        book.usage(delta, f"2026-{week}", active)


def _bens_and_caras(book: Book) -> None:
    echo = book.account("Echo", BEN)
    foxtrot = book.account("Foxtrot", BEN, arr_minor=12_000_00)
    golf = book.account("Golf", BEN, created_at=at("2026-09-01"))
    book.sub(echo, 3000)
    book.sub(golf, 1000, at("2026-09-01"))
    book.scores(echo, ("2026-06-29", 90, "green"), ("2026-09-28", 76, "green"))
    book.scores(foxtrot, ("2026-06-20", 40, "yellow"))
    book.renewal(echo, "2026-10-15", won=True, closed=True)  # next quarter
    book.renewal(echo, "2026-07-15", won=True, closed=True, kind="newbusiness")
    book.sentiment(echo, at("2026-09-29"))
    book.sentiment(foxtrot, at("2026-10-05"))  # after the end
    book.sentiment(golf, at("2026-09-01"))  # exactly 30 days before the end: fresh
    book.usage(golf, "2026-09-07", 2)
    book.usage(golf, "2026-09-14", 3)
    book.usage(golf, "2026-09-21", 6, recorded=at("2026-10-02"))  # recorded after the end
    book.usage(golf, "2026-09-28", 9)  # ends after the period
    hotel = book.account("Hotel", "Cara@Example.com")
    india = book.account("India", CARA)
    book.sub(hotel, 2000)
    book.sub(india, 1000)
    book.scores(hotel, ("2026-06-29", 50, "yellow"), ("2026-09-28", 65, "yellow"))
    book.scores(india, ("2026-06-29", 80, "green"), ("2026-09-28", 35, "red"))
    book.renewal(hotel, "2026-07-30", won=True, closed=True)
    book.renewal(india, "2026-08-30", won=False, closed=True, deleted_at=at("2026-09-01"))
    book.sentiment(hotel, at("2026-09-10"))
    book.sentiment(india, at("2026-08-31", 23))  # 30 days and an hour before the end
    juliet = book.account("Juliet", "gone@example.com")
    book.sub(juliet, 500)
    book.scores(juliet, ("2026-06-29", 55, "yellow"), ("2026-09-28", 76, "green"))


def _follow_up(book: Book) -> None:
    book.alert(ANA, at("2026-07-10", 9), at("2026-07-10", 11))
    book.alert("Ana@Example.com", at("2026-08-01", 9), at("2026-08-01", 15))
    book.alert(ANA, at("2026-09-29", 9))
    book.alert(ANA, at("2026-06-20", 9), at("2026-06-20", 10))  # before the period
    book.alert(BEN, at("2026-09-30", 20), at("2026-10-01", 8))  # acknowledged after the end
    book.alert(CARA, at("2026-07-02", 10), at("2026-07-03", 10))
    book.alert(None, at("2026-08-05", 9))  # a channel alert: nobody's
    book.alert(ANA, None)  # never sent
    book.task(ANA, "2026-07-15", at("2026-07-15", 18))
    book.task(ANA, "2026-08-01", at("2026-08-03", 9))
    book.task(ANA, "2026-09-30")
    book.task(ANA, "2026-10-02")
    book.task(BEN, "2026-09-01", at("2026-08-30", 12))


def seed_book(engine: Engine) -> None:
    with session_scope(engine) as s:
        book = Book(s)
        _people(book)
        _anas_book(book)
        _bens_and_caras(book)
        _follow_up(book)


def _figures(**given: Any) -> BookFigures:
    """Figures of a book with nothing, overridden by `given`."""
    empty: dict[str, Any] = {name: 0 for name in BookFigures.__dataclass_fields__}
    for name in (
        "health",
        "health_at_start",
        "health_change",
        "grr",
        "nrr",
        "median_hours_to_acknowledge",
        "sentiment_freshness",
        "time_to_value_days",
    ):
        empty[name] = None
    empty["bands"] = Bands()
    return BookFigures(**(empty | given))


ANA_FIGURES = _figures(
    logos=3,
    arr_minor=40_800_00,
    health=60.0,
    health_at_start=57.5,
    health_change=2.5,
    bands=Bands(green=1, yellow=1, unscored=1),
    mrr_at_start_minor=4000_00,
    grr=0.625,
    nrr=0.75,
    churned_logos=1,
    churned_arr_minor=12_000_00,
    contracted_arr_minor=6_000_00,
    expanded_arr_minor=6_000_00,
    renewals_due=3,
    renewals_won=1,
    renewals_lost=1,
    alerts_received=3,
    alerts_acknowledged=2,
    median_hours_to_acknowledge=4.0,
    tasks_due=3,
    tasks_on_time=1,
    sentiment_fresh=1,
    sentiment_freshness=0.3333,
    onboarding_accounts=1,
    onboarding_reached_value=1,
    time_to_value_days=21.0,
)
BEN_FIGURES = _figures(
    logos=3,
    arr_minor=60_000_00,
    health=67.0,
    health_at_start=77.5,
    health_change=-10.5,
    bands=Bands(green=1, yellow=1, unscored=1),
    mrr_at_start_minor=3000_00,
    grr=1.0,
    nrr=1.0,
    alerts_received=1,
    tasks_due=1,
    tasks_on_time=1,
    sentiment_fresh=2,
    sentiment_freshness=0.6667,
    onboarding_accounts=1,
)
CARA_FIGURES = _figures(
    logos=2,
    arr_minor=36_000_00,
    health=55.0,
    health_at_start=60.0,
    health_change=-5.0,
    bands=Bands(yellow=1, red=1),
    mrr_at_start_minor=3000_00,
    grr=1.0,
    nrr=1.0,
    renewals_due=1,
    renewals_won=1,
    alerts_received=1,
    alerts_acknowledged=1,
    median_hours_to_acknowledge=24.0,
    sentiment_fresh=1,
    sentiment_freshness=0.5,
)
UNOWNED_FIGURES = _figures(
    logos=1,
    arr_minor=6_000_00,
    health=76.0,
    health_at_start=55.0,
    health_change=21.0,
    bands=Bands(green=1),
    mrr_at_start_minor=500_00,
    grr=1.0,
    nrr=1.0,
    alerts_received=1,
    sentiment_freshness=0.0,
)
ENTERPRISE_FIGURES = _figures(
    logos=6,
    arr_minor=100_800_00,
    health=64.0,
    health_at_start=67.5,
    health_change=-3.5,
    bands=Bands(green=2, yellow=2, unscored=2),
    mrr_at_start_minor=7000_00,
    grr=0.7857,
    nrr=0.8571,
    churned_logos=1,
    churned_arr_minor=12_000_00,
    contracted_arr_minor=6_000_00,
    expanded_arr_minor=6_000_00,
    renewals_due=3,
    renewals_won=1,
    renewals_lost=1,
    alerts_received=4,
    alerts_acknowledged=2,
    median_hours_to_acknowledge=4.0,
    tasks_due=4,
    tasks_on_time=2,
    sentiment_fresh=3,
    sentiment_freshness=0.5,
    onboarding_accounts=2,
    onboarding_reached_value=1,
    time_to_value_days=21.0,
)
TOTAL_FIGURES = _figures(
    logos=9,
    arr_minor=142_800_00,
    health=62.0,
    health_at_start=65.0,
    health_change=-3.0,
    bands=Bands(green=3, yellow=3, red=1, unscored=2),
    mrr_at_start_minor=10_500_00,
    grr=0.8571,
    nrr=0.9048,
    churned_logos=1,
    churned_arr_minor=12_000_00,
    contracted_arr_minor=6_000_00,
    expanded_arr_minor=6_000_00,
    renewals_due=4,
    renewals_won=2,
    renewals_lost=1,
    alerts_received=6,
    alerts_acknowledged=3,
    median_hours_to_acknowledge=6.0,
    tasks_due=4,
    tasks_on_time=2,
    sentiment_fresh=4,
    sentiment_freshness=0.4444,
    onboarding_accounts=2,
    onboarding_reached_value=1,
    time_to_value_days=21.0,
)


def test_worked_example(engine: Engine) -> None:
    seed_book(engine)
    report = team_report(engine, Q3)
    assert (report.period, report.currency, report.accounts) == (Q3, "USD", 10)
    assert [(t.name, t.lead_email) for t in report.teams] == [
        ("Enterprise", "lena@example.com"),
        ("Growth", "gus@example.com"),
        ("(unowned)", None),
    ]
    enterprise, growth, unowned = report.teams
    assert [(c.email, c.name) for c in enterprise.csms] == [(ANA, "Ana"), (BEN, "Ben")]
    assert enterprise.csms[0].figures == ANA_FIGURES
    assert enterprise.csms[1].figures == BEN_FIGURES
    assert enterprise.total == ENTERPRISE_FIGURES
    assert [(c.email, c.name) for c in growth.csms] == [(CARA, "Cara")]
    assert growth.csms[0].figures == growth.total == CARA_FIGURES
    assert [(c.email, c.name) for c in unowned.csms] == [(None, "(unowned)")]
    assert unowned.total == UNOWNED_FIGURES
    assert report.total == TOTAL_FIGURES


def test_one_team(engine: Engine) -> None:
    seed_book(engine)
    report = team_report(engine, Q3, team="growth")
    assert [t.name for t in report.teams] == ["Growth"]
    assert report.total == CARA_FIGURES
    with pytest.raises(TeamReportError, match="Enterprise, Growth, \\(unowned\\)"):
        team_report(engine, Q3, team="Sales")


def test_a_month_sees_only_its_own_days(engine: Engine) -> None:
    seed_book(engine)
    report = team_report(engine, parse_period("2026-09"))
    ana = report.teams[0].csms[0].figures
    # Aug 31 -> Sep 30: Alpha 1500 -> 1500, Charlie 2000 -> 1500, Delta 400 -> 400
    assert (ana.mrr_at_start_minor, ana.grr, ana.churned_logos) == (3900_00, 0.8718, 0)
    assert (ana.renewals_due, ana.alerts_received, ana.tasks_due) == (1, 1, 1)


def test_csms_without_a_known_team(engine: Engine) -> None:
    with session_scope(engine) as s:
        s.add(Csm(source="crm", external_id="c9", email="solo@example.com", name="Solo"))
        s.add(Csm(source="crm", external_id="c8", email="lost@example.com", team_external_id="t9"))
        book = Book(s)
        book.sub(book.account("Papa", "solo@example.com"), 250)
        book.task("lost@example.com", "2026-08-01", at("2026-07-30"))
    report = team_report(engine, Q3)
    [no_team] = report.teams
    assert no_team.name == "(no team)"
    assert [c.name for c in no_team.csms] == ["lost@example.com", "Solo"]
    total = no_team.total
    assert (total.logos, total.arr_minor) == (1, 3_000_00)
    assert (total.tasks_due, total.tasks_on_time) == (1, 1)


def _mixed_book(engine: Engine) -> None:
    """EUR and USD: 1,000.00 EUR of CRM ARR, 100 EUR and 100 USD of MRR, and 50 EUR of MRR
    that churned in the quarter."""
    with session_scope(engine) as s:
        book = Book(s)
        book.account("Euro CRM", ANA, arr_minor=1_000_00, currency="EUR")
        book.sub(book.account("Euro", ANA), 100, currency="EUR")
        book.sub(book.account("Dollar", ANA), 100)
        gone = book.account("Euro gone", ANA)
        book.sub(gone, 50, currency="EUR", ended_at=at("2026-08-15"))
        s.add(Csm(source="crm", external_id="c1", email=ANA, name="Ana"))


def _eur_rates(**more: str) -> Rates:
    rates = {"EUR": "1.10", **more}
    return Rates("USD", [ExchangeRate(c, date(2026, 1, 1), Decimal(r)) for c, r in rates.items()])


def test_mixed_currencies_are_converted(engine: Engine) -> None:
    _mixed_book(engine)
    report = team_report(engine, Q3, rates=_eur_rates())
    total = report.total
    assert (report.currency, report.missing_rates) == ("USD", ())
    # 1,000.00 EUR at 1.10 counts 1,100.00 USD; 12 x 100 EUR 1,320.00; 12 x 100 USD 1,200.00
    assert (total.logos, total.arr_minor) == (3, 3_620_00)
    assert total.mrr_at_start_minor == 110_00 + 100_00 + 55_00
    assert (total.churned_logos, total.churned_arr_minor) == (1, 660_00)
    assert (total.grr, total.nrr) == (0.7925, 0.7925)
    assert report.teams[0].csms[0].figures == total


def test_a_rate_dated_after_the_period_still_converts(engine: Engine) -> None:
    _mixed_book(engine)
    later = Rates("USD", [ExchangeRate("EUR", date(2027, 1, 1), Decimal("1.10"))])
    assert team_report(engine, Q3, rates=later).total.arr_minor == 3_620_00


def test_reporting_in_eur(engine: Engine) -> None:
    _mixed_book(engine)
    rates = Rates("EUR", [ExchangeRate("USD", date(2026, 1, 1), Decimal("0.8"))])
    report = team_report(engine, Q3, rates=rates)
    assert (report.currency, report.missing_rates) == ("EUR", ())
    assert report.total.arr_minor == 1_000_00 + 1_200_00 + 960_00
    assert report.total.churned_arr_minor == 600_00


def test_a_currency_without_a_rate_is_left_out_and_named(engine: Engine) -> None:
    _mixed_book(engine)
    report = team_report(engine, Q3)  # USD, and no rates at all
    assert (report.currency, report.missing_rates) == ("USD", ("EUR",))
    assert (report.total.logos, report.total.arr_minor) == (3, 1_200_00)
    console = Console(width=200, record=True)
    print_team_report(console, report)
    [note] = [line for line in console.export_text().splitlines() if "EUR" in line]
    assert note.startswith("partial: amounts in EUR are left out (no exchange rate to USD)")


def test_an_empty_store(engine: Engine) -> None:
    report = team_report(engine, Q3)
    assert (report.accounts, report.teams, report.total) == (0, (), _figures())


def test_query_count_does_not_grow_with_the_book(engine: Engine) -> None:
    def statements() -> int:
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(args[2])

        event.listen(engine, "before_cursor_execute", count)
        try:
            team_report(engine, Q3)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(seen)

    seed_book(engine)
    small = statements()
    with session_scope(engine) as s:
        book = Book(s)
        for n in range(30):
            account_id = book.account(f"More {n}", BEN if n % 2 else "nobody@example.com")
            book.sub(account_id, 100)
            book.scores(account_id, ("2026-09-28", 50, "yellow"))
            book.alert(BEN, at("2026-08-01", 9))
    assert statements() == small


# ---- the command -----------------------------------------------------------------------


def test_team_command(sqlite_url: str) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": sqlite_url, "COLUMNS": "220"}
    empty = runner.invoke(app, ["team", "--period", "2026-Q3"], env=env)
    assert empty.exit_code == 1
    assert "no accounts" in empty.stderr
    assert "health-agent sync" in empty.stderr

    engine = make_engine(sqlite_url)
    seed_book(engine)
    engine.dispose()
    shown = runner.invoke(app, ["team", "--period", "2026-Q3"], env=env)
    assert shown.exit_code == 0, shown.output
    for text in ("Team performance 2026-Q3", "Enterprise", "Ana", "40.8k", "(unowned)", "All"):
        assert text in shown.stdout
    as_json = runner.invoke(
        app, ["team", "--from", "2026-07-01", "--to", "2026-09-30", "--json"], env=env
    )
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["period"]["label"] == "2026-07-01..2026-09-30"
    assert data["teams"][0]["csms"][0]["figures"]["arr_minor"] == 40_800_00
    assert data["total"]["grr"] == 0.8571
    bad = runner.invoke(app, ["team", "--period", "2026-Q5"], env=env)
    assert bad.exit_code == 2
    assert "not a period" in bad.stderr
    unknown = runner.invoke(app, ["team", "--team", "Sales"], env=env)
    assert unknown.exit_code == 1
    assert "no team is named 'Sales'" in unknown.stderr


def test_team_command_in_the_reporting_currency(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    _mixed_book(engine)
    engine.dispose()
    runner, rates = CliRunner(), tmp_path / "rates.csv"
    rates.write_text("date,currency,rate\n2026-01-01,EUR,1.10\n")
    env = {"DATABASE_URL": sqlite_url, "COLUMNS": "220", "EXCHANGE_RATES_FILE": str(rates)}
    shown = runner.invoke(app, ["team", "--period", "2026-Q3", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert (data["currency"], data["total"]["arr_minor"], data["missing_rates"]) == (
        "USD",
        3_620_00,
        [],
    )
    rates.write_text("date,currency,rate\n2026-01-01,USD,0.8\n")
    in_eur = runner.invoke(
        app, ["team", "--period", "2026-Q3"], env=env | {"REPORTING_CURRENCY": "eur"}
    )
    assert in_eur.exit_code == 0, in_eur.output
    assert "money in EUR" in in_eur.stdout
    assert "3.2k" in in_eur.stdout  # 1,000 + 1,200 + 960 EUR
    missing = runner.invoke(app, ["team", "--period", "2026-Q3", "--json"], env=env)
    assert missing.exit_code == 0, missing.output
    assert json.loads(missing.stdout)["missing_rates"] == ["EUR"]
    [line] = missing.stderr.strip().splitlines()
    assert line.startswith("partial: amounts in EUR are left out (no exchange rate to USD)")
    assert "add EUR to [exchange_rates] in the sources file or to EXCHANGE_RATES_FILE" in line
    rates.write_text("date,currency,rate\n2026-01-01,EUR,lots\n")
    broken = runner.invoke(app, ["team", "--period", "2026-Q3"], env=env)
    assert broken.exit_code == 1
    [line] = broken.stderr.strip().splitlines()
    assert "rates.csv, line 2: rate 'lots' is not a number" in line


def test_report_is_frozen() -> None:
    report = TeamReport(Q3, "USD", 0, (), _figures())
    with pytest.raises(AttributeError):
        report.currency = "EUR"  # type: ignore[misc]  # the point of the test
