"""Weekly digests: exact facts on a small book, Block Kit within Slack's limits, one post (and
one chart) per destination and week through the Slack emulator, and a preview that posts
nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from cli import app
from notifications.digest import (
    DigestError,
    choose_teams,
    default_week_ending,
    digest_fingerprint,
    gather_facts,
    send_digests,
)
from notifications.digest_facts import (
    AlertAcks,
    BandCounts,
    BandMove,
    Decline,
    DigestFacts,
    DigestTeam,
    Disagreement,
    Money,
    OverdueTask,
    Renewal,
    Scoreboard,
    WeekBands,
)
from notifications.digest_message import build_digest_message
from sandbox.slack import SLACK_BOT_TOKEN, channel_id, dm_channel_id, user_id
from scoring.team import Bands, BookFigures, CsmPerformance, Period
from scoring.trend import Move
from store import bulk_upsert, make_engine, session_scope, stopping
from store.models import Account, Alert, Csm, HealthScore, PlaybookTask, Team
from store.money import ExchangeRate, Rates
from tests.notifications.conftest import SandboxFactory
from tests.notifications.test_slack_emulator import _check
from tests.scoring.seed import AS_OF, END, account, ago, later, subscription

WEEK_BEFORE = AS_OF - timedelta(days=7)
LENA, JO, SAM, GUS = "lena@example.com", "jo@example.com", "sam@example.com", "gus@example.com"
PEOPLE = [(LENA, "Lena Ito"), (JO, "Jo Park"), (SAM, "Sam Reyes"), (GUS, "Gus Hall")]
CHANNEL = "cs-enterprise"
PNG = b"\x89PNG\r\n\x1a\n"
SIGNAL = {
    "kind": "sentiment_vs_data",
    "sentiment": "green",
    "data_score": 30.0,
    "data_band": "red",
    "text": "CSM says green, the data says red (30)",
}


def _score(s: Session, account_id: int, day: date, score: float, band: str, **parts: Any) -> None:
    """A stored score; `usage` gives it one measure (for what moved), `signals` its signals."""
    components: dict[str, Any] = {}
    if "usage" in parts:
        measure = {"score": parts["usage"], "effective_weight": 0.5, "value": 1.0}
        components["usage"] = {"score": parts["usage"], "measures": {"usage_trend": measure}}
    if "signals" in parts:
        components["signals"] = parts["signals"]
    row = {
        "account_id": account_id,
        "as_of": day,
        "score": score,
        "band": band,
        "drivers": parts.get("drivers", []),
        "components": components,
        "weights": {},
        "scorecard_version": "test",
    }
    bulk_upsert(s, HealthScore, [row], keys=("account_id", "as_of"))


def _people(s: Session) -> None:
    s.add(Team(source="crm", external_id="t1", name="Enterprise", lead_email=LENA))
    s.add(Team(source="crm", external_id="t2", name="Growth", slack_channel="cs-growth"))
    for external_id, email, name, team, lead in [
        ("u0", LENA, "Lena Ito", "t1", True),
        ("u1", JO, "Jo Park", "t1", False),
        ("u2", SAM, "Sam Reyes", "t1", False),
        ("u3", GUS, "Gus Hall", "t2", False),
    ]:
        s.add(
            Csm(
                source="crm",
                external_id=external_id,
                email=email,
                name=name,
                team_external_id=team,
                is_lead=lead,
            )
        )


def day(days: int) -> date:
    """The day `days` after `AS_OF`."""
    return AS_OF + timedelta(days=days)


def _accounts(s: Session) -> dict[str, int]:
    """Enterprise (Jo's and Sam's accounts) and one of Growth's, with their weeks' scores."""
    ids = {
        "Acme": account(s, "Acme", owner_email=JO.upper(), arr_minor=120_000_00),
        "Bolt": account(s, "Bolt", owner_email=JO, arr_minor=50_000_00),
        "Cargo": account(s, "Cargo", owner_email=SAM, arr_minor=200_000_00),
        "Delta": account(s, "Delta", owner_email=SAM, arr_minor=30_000_00),
        "Echo": account(s, "Echo", owner_email=SAM, arr_minor=10_000_00, created_at=ago(3)),
        "Gamma": account(s, "Gamma", owner_email=JO),
        "Fox": account(s, "Fox", owner_email=GUS, arr_minor=99_000_00, renewal_date=day(5)),
    }
    for name, days in [("Acme", 30), ("Bolt", 200), ("Cargo", 95), ("Echo", 10)]:
        s.get_one(Account, ids[name]).renewal_date = day(days)
    subscription(s, ids["Acme"])
    subscription(s, ids["Delta"], status="canceled", ended_at=ago(3), canceled_at=ago(20))
    drop = [{"text": "Weekly active users down 40%", "direction": "negative", "impact": -9.0}]
    _score(s, ids["Acme"], WEEK_BEFORE - timedelta(days=7), 95, "green", usage=100)
    _score(s, ids["Acme"], WEEK_BEFORE, 80, "green", usage=80)
    _score(s, ids["Acme"], AS_OF, 55, "yellow", usage=30, drivers=drop)
    _score(s, ids["Bolt"], WEEK_BEFORE - timedelta(days=2), 45, "yellow")  # latest on or before
    _score(s, ids["Bolt"], AS_OF, 30, "red", signals=[SIGNAL])
    _score(s, ids["Cargo"], WEEK_BEFORE, 90, "green")
    _score(s, ids["Cargo"], AS_OF, 92, "green")
    _score(s, ids["Delta"], WEEK_BEFORE, 85, "green")
    _score(s, ids["Delta"], AS_OF, 84, "green")
    _score(s, ids["Echo"], AS_OF, 20, "red")
    _score(s, ids["Fox"], WEEK_BEFORE, 90, "green")
    _score(s, ids["Fox"], AS_OF, 10, "red")
    _score(s, ids["Cargo"], AS_OF + timedelta(days=1), 10, "red")  # after the week: unseen
    return ids


def _task(s: Session, key: str, account_id: int, who: str, due: date, **fields: Any) -> None:
    fields.setdefault("created_at", ago(30))
    s.add(
        PlaybookTask(
            fingerprint=key,
            account_id=account_id,
            playbook="save",
            title=f"Task {key}",
            assignee_email=who,
            due_on=due,
            **fields,
        )
    )


def _alert(s: Session, key: str, who: str, sent: datetime, acked: datetime | None = None) -> None:
    rule = "weekly_digest" if key.startswith("digest") else "band_drop"
    s.add(
        Alert(
            fingerprint=key,
            rule=rule,
            recipient_email=who,
            status="sent",
            sent_at=sent,
            acknowledged_at=acked,
        )
    )


def _follow_up(s: Session, ids: dict[str, int]) -> None:
    _task(s, "late", ids["Acme"], JO, AS_OF - timedelta(days=3))
    _task(
        s, "done", ids["Cargo"], SAM, AS_OF - timedelta(days=1), status="done", completed_at=ago(2)
    )
    _task(s, "future", ids["Acme"], JO, AS_OF + timedelta(days=2))
    _task(s, "growth", ids["Fox"], GUS, AS_OF - timedelta(days=3))
    _task(
        s,
        "done-later",
        ids["Acme"],
        SAM,
        AS_OF - timedelta(days=5),
        status="done",
        completed_at=later(1),
    )
    _task(s, "closed", ids["Acme"], JO, AS_OF - timedelta(days=9), status="done")
    _alert(s, "a1", JO, ago(2), ago(1))
    _alert(s, "a2", SAM.upper(), ago(3))
    _alert(s, "a3", JO, ago(10), ago(9))  # the week before
    _alert(s, "a4", GUS, ago(2), ago(1))  # another team
    _alert(s, "digest:x", LENA, ago(2))  # a digest is not an alert
    _alert(s, "a6", JO, ago(1), later(1))  # acknowledged after the week


def _book(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as s:
        _people(s)
        ids = _accounts(s)
        _follow_up(s, ids)
    return ids


def _enterprise(engine: Engine) -> DigestTeam:
    [team] = choose_teams(engine, "enterprise")
    return team


# ---- facts ---------------------------------------------------------------------------------


def test_facts_of_a_small_book_exactly(engine: Engine) -> None:
    ids = _book(engine)
    team = _enterprise(engine)
    assert (team.name, team.lead_email, team.channel) == ("Enterprise", LENA, None)
    facts = gather_facts(engine, team, AS_OF)

    assert len(facts.history) == 12
    assert facts.history[0] == WeekBands(AS_OF - timedelta(weeks=11), BandCounts(unscored=5))
    assert facts.bands_before == BandCounts(green=3, yellow=1, red=0, unscored=1)
    assert facts.bands == BandCounts(green=1, yellow=1, red=2, unscored=1)
    assert facts.moves == (
        BandMove("green", "yellow", 1),  # Acme
        BandMove("green", None, 1),  # Delta's subscription ended: gone
        BandMove("yellow", "red", 1),  # Bolt
        BandMove(None, "red", 1),  # Echo is new
    )
    assert facts.arr == (Money("USD", 380_000_00),)
    assert facts.at_risk_arr == (Money("USD", 180_000_00),)
    assert facts.at_risk_accounts == 3

    assert [(r.name, r.renewal_date, r.band, r.csm) for r in facts.renewals] == [
        ("Echo", AS_OF + timedelta(10), "red", "Sam Reyes"),
        ("Acme", AS_OF + timedelta(30), "yellow", "Jo Park"),
    ]
    acme, bolt = facts.declines
    assert (facts.declines_total, acme.name, acme.change, bolt.name, bolt.change) == (
        2,
        "Acme",
        -25.0,
        "Bolt",
        -15.0,
    )
    assert (acme.previous_band, acme.band, acme.csm) == ("green", "yellow", "Jo Park")
    assert acme.moves == (Move("usage", "usage_trend", 40.0, 15.0),)
    assert acme.drivers == ("Weekly active users down 40%",)
    assert facts.disagreements == (
        Disagreement(
            ids["Bolt"], "Bolt", "Jo Park", SIGNAL["text"], "green", "red", Money("USD", 50_000_00)
        ),
    )
    assert [(t.title, t.account, t.assignee) for t in facts.overdue_tasks] == [
        ("Task done-later", "Acme", "Sam Reyes"),
        ("Task late", "Acme", "Jo Park"),
    ]
    assert facts.alerts == AlertAcks(sent=3, acknowledged=1)

    board = facts.scoreboard
    assert board is not None, facts.scoreboard_note
    assert board.period == Period("2026-Q1 to date", date(2026, 1, 1), AS_OF)
    assert [c.name for c in board.csms] == ["Jo Park", "Sam Reyes"]  # the lead owns nothing
    assert board.total.logos == facts.accounts == 5


def _bolt_in_eur(engine: Engine, ids: dict[str, int]) -> None:
    with session_scope(engine) as s:
        s.get_one(Account, ids["Bolt"]).currency = "EUR"  # 50,000.00 EUR, red, at risk


def _rates(reporting: str, **rates: str) -> Rates:
    day = date(2026, 1, 1)
    return Rates(reporting, [ExchangeRate(c, day, Decimal(r)) for c, r in rates.items()])


def test_money_of_several_currencies_in_the_reporting_currency(engine: Engine) -> None:
    ids = _book(engine)
    _bolt_in_eur(engine, ids)
    team = _enterprise(engine)
    facts = gather_facts(engine, team, AS_OF, rates=_rates("USD", EUR="1.10"))
    assert facts.arr == (Money("USD", 385_000_00),)  # 330,000 USD + 50,000 EUR x 1.10
    assert facts.at_risk_arr == (Money("USD", 185_000_00),)
    assert facts.disagreements[0].arr == Money("USD", 55_000_00)
    assert facts.money_note == ""
    assert facts.scoreboard is not None
    assert (facts.scoreboard.currency, facts.scoreboard.missing_rates) == ("USD", ())

    in_eur = gather_facts(engine, team, AS_OF, rates=_rates("EUR", USD="0.8"))
    assert in_eur.arr == (Money("EUR", 314_000_00),)  # 330,000 USD x 0.8 + 50,000 EUR
    assert in_eur.at_risk_arr == (Money("EUR", 154_000_00),)
    assert in_eur.scoreboard is not None
    assert in_eur.scoreboard.currency == "EUR"
    assert "at-risk ARR €154k" in build_digest_message(in_eur).text


def test_money_without_a_rate_is_shown_apart_and_called_partial(engine: Engine) -> None:
    ids = _book(engine)
    _bolt_in_eur(engine, ids)
    facts = gather_facts(engine, _enterprise(engine), AS_OF)  # USD, no rates
    assert facts.arr == (Money("USD", 330_000_00), Money("EUR", 50_000_00))
    assert facts.at_risk_arr == (Money("USD", 130_000_00), Money("EUR", 50_000_00))
    assert facts.disagreements[0].arr == Money("EUR", 50_000_00)
    assert facts.money_note.startswith("partial: amounts in EUR are left out")
    assert "\n" not in facts.money_note
    blocks = build_digest_message(facts).as_kwargs()["blocks"]
    notes = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    assert any("partial: amounts in EUR" in note for note in notes)


def test_a_team_without_accounts_and_an_unknown_team(engine: Engine) -> None:
    with session_scope(engine) as s:
        _people(s)
    [growth] = choose_teams(engine, "T2")
    facts = gather_facts(engine, growth, AS_OF)
    assert (facts.accounts, facts.declines, facts.renewals) == (0, (), ())
    assert facts.alerts == AlertAcks()
    with pytest.raises(DigestError, match="no team is named 'Sales'; the teams are: Enterprise"):
        choose_teams(engine, "Sales")


def test_default_week_is_the_last_complete_one() -> None:
    assert default_week_ending(date(2026, 3, 2)) == date(2026, 3, 1)  # a Monday
    assert default_week_ending(date(2026, 3, 8)) == date(2026, 3, 1)  # a Sunday: not complete


# ---- the message ---------------------------------------------------------------------------


def _figures(logos: int) -> BookFigures:
    return BookFigures(
        logos=logos,
        arr_minor=logos * 1_000_00,
        health=71.5,
        health_at_start=70.0,
        health_change=1.5,
        bands=Bands(green=logos),
        mrr_at_start_minor=0,
        grr=1.0,
        nrr=1.0,
        churned_logos=0,
        churned_arr_minor=0,
        contracted_arr_minor=0,
        expanded_arr_minor=0,
        renewals_due=2,
        renewals_won=1,
        renewals_lost=0,
        alerts_received=3,
        alerts_acknowledged=2,
        median_hours_to_acknowledge=4.0,
        tasks_due=1,
        tasks_on_time=1,
        sentiment_fresh=0,
        sentiment_freshness=None,
        onboarding_accounts=0,
        onboarding_reached_value=0,
        time_to_value_days=None,
    )


def _huge_facts() -> DigestFacts:
    """A team with very long names and 40 of everything."""
    long = "Very Long Account Name <&> Holdings International " * 6
    team = DigestTeam(1, "The Team " + "x" * 200, "crm", "t1", LENA, CHANNEL)
    moved = (Move("usage", "usage_trend", 40.0, 1.0), Move("caps", "usage_collapsing", 0, -18))
    why = ("A driver that goes on and on " * 20,)
    declines = tuple(
        Decline(i, f"{long}{i}", "Jo " * 50, 50.0 - i, "red", 90.0, "green", moved, why)
        for i in range(40)
    )
    renewal = Renewal(0, long, "Sam " * 40, AS_OF, Money("USD", 10**8), 40.0, "yellow")
    disagreement = Disagreement(
        0, long, "Sam", SIGNAL["text"] * 10, "green", "red", Money("USD", 1)
    )
    board = Scoreboard(
        Period("2026-Q1 to date", date(2026, 1, 1), AS_OF),
        "USD",
        tuple(CsmPerformance(f"c{i}@x.test", long, _figures(i)) for i in range(40)),
        _figures(800),
    )
    return DigestFacts(
        team=team,
        week_ending=AS_OF,
        history=tuple(
            WeekBands(AS_OF - timedelta(weeks=k), BandCounts(1, 2, 3)) for k in range(12)
        ),
        moves=(BandMove("green", "red", 40), BandMove(None, "yellow", 2)),
        arr=(Money("USD", 10**12), Money("EUR", 5 * 10**8)),
        at_risk_arr=(Money("USD", 10**11),),
        at_risk_accounts=40,
        renewals=tuple(replace(renewal, renewal_date=AS_OF + timedelta(i)) for i in range(40)),
        declines=declines,
        declines_total=40,
        disagreements=(disagreement,) * 40,
        overdue_tasks=(OverdueTask("Call " * 100, "save", long, "Sam", AS_OF),) * 40,
        alerts=AlertAcks(40, 12),
        scoreboard=board,
    )


def _limits_hold(blocks: list[dict[str, Any]]) -> None:
    assert 0 < len(blocks) <= 50
    assert len(json.dumps(blocks, ensure_ascii=False)) <= 12_000
    for block in blocks:
        Block.parse(block).to_dict()  # the SDK's validators, on what was sent
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))


def test_message_of_a_huge_team_stays_within_slack_limits() -> None:
    facts = _huge_facts()
    message = build_digest_message(facts)
    kwargs = message.as_kwargs()
    _limits_hold(kwargs["blocks"])
    assert message.text.startswith("Weekly health digest for The Team")
    assert len(message.text) <= 3000
    texts = [b["text"]["text"] for b in kwargs["blocks"] if b["type"] == "section" and "text" in b]
    declines = next(t for t in texts if t.startswith("*Largest score declines*"))
    shown = declines.count("\n• ")
    assert 1 <= shown <= 5
    assert declines.endswith(f"…and {40 - shown} more")
    assert "&lt;&amp;&gt;" in declines  # mrkdwn control characters escaped
    assert all("more" in t for t in texts if t.startswith(("*Renewals", "*CSM", "*Overdue")))


def test_message_of_the_small_book(engine: Engine) -> None:
    _book(engine)
    facts = gather_facts(engine, _enterprise(engine), AS_OF)
    message = build_digest_message(facts)
    blocks = message.as_kwargs()["blocks"]
    _limits_hold(blocks)
    assert message.text == (
        "Weekly health digest for Enterprise, week ending 2026-03-02: 1 green, 1 yellow, 2 red; "
        "at-risk ARR $180k; 2 renewals in the next 90 days; largest decline Acme (-25.0)"
    )
    assert blocks[0]["text"]["text"] == "Weekly health digest: Enterprise"
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert fields[1] == "*At-risk ARR*\n$180k in 3 yellow and red accounts, 47% of ARR"
    assert fields[3] == "*Alerts acknowledged*\n1 of 3 sent in the week"
    everything = json.dumps(blocks, ensure_ascii=False)
    assert "*Acme* (Jo Park) 80 → 55 (-25)" in everything
    assert "usage trend -25.0" in everything
    assert "CSM says green, the data says red (30)" in everything
    without_chart = build_digest_message(replace(facts, history=facts.history), chart=False)
    assert "chart below" not in json.dumps(without_chart.as_kwargs()["blocks"])


# ---- sending -------------------------------------------------------------------------------


def _digest_rows(engine: Engine) -> list[Alert]:
    with Session(engine) as s:
        stmt = select(Alert).where(col(Alert.rule) == "weekly_digest", col(Alert.sent_at) > END)
        return list(s.exec(stmt.order_by(col(Alert.fingerprint))))


def _with_channel(engine: Engine) -> None:
    with session_scope(engine) as s:
        team = s.exec(select(Team).where(col(Team.external_id) == "t1")).one()
        team.slack_channel = CHANNEL
        s.add(team)


def test_sent_once_to_the_lead_and_the_channel_with_the_chart(
    engine: Engine, slack_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    _book(engine)
    _with_channel(engine)
    slack = slack_sandbox(users=PEOPLE, channels=[CHANNEL])
    client = slack.client()
    team = _enterprise(engine)
    first = send_digests(engine, client, [team], AS_OF, tmp_path)
    assert (first.sent, first.charts, first.already_sent, first.problems) == (2, 2, 0, [])
    lena_dm = dm_channel_id(user_id(LENA))
    assert [(m["channel"], m["user"]) for m in slack.recorder.messages] == [
        (lena_dm, user_id(LENA)),
        (channel_id(CHANNEL), None),
    ]
    assert slack.recorder.messages[0]["text"].startswith("Weekly health digest for Enterprise")
    files = slack.recorder.files
    assert [(f["channel"], f["name"]) for f in files] == [
        (lena_dm, "digest-enterprise-2026-03-02.png"),
        (channel_id(CHANNEL), "digest-enterprise-2026-03-02.png"),
    ]
    assert all(f["data"].startswith(PNG) for f in files)
    assert files[0]["data"] == (tmp_path / "digest-enterprise-2026-03-02.png").read_bytes()
    rows = _digest_rows(engine)
    assert [(r.fingerprint, r.status, r.channel, r.error) for r in rows] == [
        (digest_fingerprint(team, AS_OF, "channel"), "sent", channel_id(CHANNEL), None),
        (digest_fingerprint(team, AS_OF, "lead"), "sent", lena_dm, None),
    ]
    assert all(str(r.message_ts).startswith(f"{r.channel} ") for r in rows)

    calls = len(slack.recorder.calls)
    again = send_digests(engine, client, [team], AS_OF, tmp_path)
    assert (again.sent, again.charts, again.already_sent) == (0, 0, 2)
    assert len(slack.recorder.messages) == 2
    assert len(slack.recorder.files) == 2
    assert slack.recorder.calls[calls:] == []  # not even a lookup
    assert len(_digest_rows(engine)) == 2


def test_a_stop_request_ends_the_run_between_teams_and_the_next_run_sends(
    engine: Engine, slack_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    _book(engine)
    _with_channel(engine)
    slack = slack_sandbox(users=PEOPLE, channels=[CHANNEL])
    team = _enterprise(engine)
    with stopping.interrupting():
        stopped = send_digests(engine, slack.client(), [team], AS_OF, tmp_path)
    assert (stopped.sent, stopped.skipped) == (0, ["Enterprise: stopped before it"])
    assert slack.recorder.messages == []
    later = send_digests(engine, slack.client(), [team], AS_OF, tmp_path)
    assert later.sent == 2


def test_nothing_posted_is_tried_again_and_a_failed_chart_is_noted(
    engine: Engine, slack_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    _book(engine)
    _with_channel(engine)
    slack = slack_sandbox(users=PEOPLE[1:], channels=[CHANNEL])  # Lena is not in Slack yet
    slack.recorder.inject("upload", 500)
    team = _enterprise(engine)
    first = send_digests(engine, slack.client(server_error_retries=0), [team], AS_OF, tmp_path)
    assert (first.sent, first.charts) == (1, 0)
    assert first.problems[0] == f"Enterprise (lead): no Slack user has the email {LENA}"
    assert first.problems[1].startswith("Enterprise (channel): chart not shared in C")
    [row] = _digest_rows(engine)
    assert (row.status, row.channel) == ("sent", channel_id(CHANNEL))
    assert row.error is not None
    assert row.error.startswith("chart not shared")

    later_slack = slack_sandbox(users=PEOPLE, channels=[CHANNEL])
    again = send_digests(engine, later_slack.client(), [team], AS_OF, tmp_path)
    assert (again.sent, again.charts, again.already_sent) == (1, 1, 1)
    assert [m["user"] for m in later_slack.recorder.messages] == [user_id(LENA)]


def test_a_channel_the_app_is_not_in_is_held_for_the_next_run(
    engine: Engine, slack_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    _book(engine)
    _with_channel(engine)
    slack = slack_sandbox(users=PEOPLE, channels=["elsewhere"])
    team = _enterprise(engine)
    first = send_digests(engine, slack.client(), [team], AS_OF, tmp_path)
    assert (first.sent, first.charts) == (1, 1)
    [problem] = first.problems
    assert "channel_not_found" in problem
    assert "teams.slack_channel" in problem
    assert [r.fingerprint.rsplit(":", 1)[1] for r in _digest_rows(engine)] == ["lead"]
    fixed = slack_sandbox(users=PEOPLE, channels=[CHANNEL])
    again = send_digests(engine, fixed.client(), [team], AS_OF, tmp_path)
    assert (again.sent, again.already_sent) == (1, 1)
    assert [m["channel"] for m in fixed.recorder.messages] == [channel_id(CHANNEL)]


def test_teams_without_a_destination_are_skipped(
    engine: Engine, slack_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    _book(engine)
    slack = slack_sandbox(users=PEOPLE)
    growth = replace(choose_teams(engine, "Growth")[0], channel=None)
    summary = send_digests(engine, slack.client(), [growth], AS_OF, tmp_path)
    assert summary.skipped == ["Growth: no lead email or Slack channel is set"]
    assert slack.recorder.calls == []


# ---- the command ---------------------------------------------------------------------------


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_preview_writes_the_chart_and_posts_nothing(
    sqlite_url: str, slack_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url)
    _book(engine)
    slack = slack_sandbox(users=PEOPLE)
    env = {
        "DATABASE_URL": sqlite_url,
        "COLUMNS": "200",
        "SLACK__BOT_TOKEN": SLACK_BOT_TOKEN,
        "SLACK__BASE_URL": slack.api_url,
    }
    out = tmp_path / "charts"
    args = ["digest", "--team", "Enterprise", "--week-ending", "2026-03-02", "--out", str(out)]
    shown = CliRunner().invoke(app, [*args, "--preview"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "Weekly digest: Enterprise, week 2026-02-24 to 2026-03-02" in shown.stdout
    assert "CSM says green, the data says red (30)" in shown.stdout
    chart = out / "digest-enterprise-2026-03-02.png"
    data = chart.read_bytes()
    assert _png_size(data) == (800, 360)
    assert 5_000 < len(data) < 500_000
    assert slack.recorder.calls == []
    assert _digest_rows(engine) == []

    wrong = CliRunner().invoke(app, ["digest", "--team", "Sales", "--preview"], env=env)
    assert wrong.exit_code == 1
    assert "no team is named 'Sales'" in wrong.stderr

    sent = CliRunner().invoke(app, args, env=env)
    assert sent.exit_code == 0, sent.output
    assert "1 posted, 1 charts uploaded, 0 sent before" in sent.stdout
    assert [m["user"] for m in slack.recorder.messages] == [user_id(LENA)]
    engine.dispose()


def test_uploads_answer_in_slack_shapes(slack_sandbox: SandboxFactory) -> None:
    slack = slack_sandbox()
    client = slack.client()
    url = client.files_getUploadURLExternal(filename="c.png", length=4)
    assert str(url["upload_url"]).startswith(f"{slack.base_url}/upload/v1/")
    assert slack.base_url.startswith("http://127.0.0.1:")
    dm = client.conversations_open(users=user_id(JO))["channel"]["id"]
    done = client.files_upload_v2(channel=dm, content=b"data", filename="c.txt", title="C")
    _check("#/components/schemas/objs_file", done["file"])
    assert (done["file"]["ims"], done["file"]["size"], done["file"]["title"]) == ([dm], 4, "C")
    assert slack.recorder.files[-1]["data"] == b"data"
    for files, error in [
        ('[{"id": "F404ABCDEFG"}]', "file_not_found"),
        ("[]", "invalid_arguments"),
    ]:
        with pytest.raises(SlackApiError) as refused:
            client.api_call(
                "files.completeUploadExternal", params={"files": files, "channel_id": dm}
            )
        assert refused.value.response.status_code == 200
        assert refused.value.response["error"] == error
    with pytest.raises(SlackApiError, match="channel_not_found"):
        client.files_upload_v2(channel="cs-alerts", content=b"x", filename="x.txt")  # a name


def test_week_ends_on_the_day_asked(engine: Engine) -> None:
    _book(engine)
    sunday = AS_OF - timedelta(days=1)
    facts = gather_facts(engine, _enterprise(engine), sunday)
    assert facts.history[-1].week_ending == facts.week_ending == sunday
    # the scores of the week before; Delta's subscription ended on Saturday, Echo is unscored
    assert facts.bands == BandCounts(green=2, yellow=1, red=0, unscored=2)
    assert facts.alerts == AlertAcks(sent=2, acknowledged=0)  # a1 was acknowledged on Monday
