"""Measures declared over signals, on hand-built rows, on SQLite and PostgreSQL.

Each kind of signal is read for every account with one query; rows known only after the day
scored, rows of no account and accounts without the signal never count.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from scoring.health import compute_score
from scoring.readings import read_readings
from scoring.scorecard import Measure, Scorecard, check_scorecard, load_scorecard
from store import session_scope
from store.models import UsageMetric
from store.traits import TraitValue, write_traits
from tests.scoring.seed import (
    AS_OF,
    account,
    ago,
    later,
    sentiment,
    subscription,
    survey,
    ticket,
    usage,
    weeks_back,
)

_ids = count(1)


def metric(
    session: Session,
    account_id: int | None,
    day: date,
    name: str,
    value: float,
    *,
    period_days: int = 1,
    recorded: datetime | None = None,
) -> None:
    end = datetime.combine(day + timedelta(days=period_days), datetime.min.time(), UTC)
    recorded = recorded or end - timedelta(minutes=1)  # as the period closes
    session.add(
        UsageMetric(
            source="product",
            external_id=f"m{next(_ids)}",
            account_id=account_id,
            day=day,
            period_days=period_days,
            metric=name,
            value=value,
            recorded_at=recorded,
        )
    )


def measure(signal: dict[str, Any], **extra: Any) -> Measure:
    fields: dict[str, Any] = {
        "name": "declared",
        "weight": 1.0,
        "normalise": {"kind": "linear", "good": 10, "bad": 0},
        "signal": signal,
    }
    fields.update(extra)
    return Measure.model_validate(fields)


def read(engine: Engine, m: Measure, as_of: date = AS_OF) -> dict[int, Any]:
    with Session(engine) as session:
        return read_readings(session, as_of, [m])[m.name]


def days_back(n: int) -> date:
    return AS_OF - timedelta(days=n)


def test_metric_window_aggregates_with_zero_for_reporting_accounts(engine: Engine) -> None:
    with session_scope(engine) as s:
        busy, idle, silent = account(s, "Busy"), account(s, "Idle"), account(s, "Silent")
        for d in range(5):  # 5 days of logins in the window, 2 of them zero
            metric(s, busy, days_back(d), "logins", [4, 0, 6, 0, 2][d])
        metric(s, busy, days_back(40), "logins", 100)  # before the 30-day window
        metric(s, busy, AS_OF + timedelta(days=1), "logins", 50)  # after the day scored
        metric(s, busy, days_back(2), "logins", 70, recorded=later(1))  # recorded later
        metric(s, idle, days_back(3), "api_calls", 9)  # reports usage, but no logins
        metric(s, None, days_back(1), "logins", 5)  # of no account
    got = {
        agg: read(engine, measure({"kind": "metric", "metric": "logins", "agg": agg}))
        for agg in ("sum", "mean", "max", "latest", "days_active")
    }
    assert got["sum"][busy].value == 12
    assert got["mean"][busy].value == pytest.approx(12 / 5)
    assert got["max"][busy].value == 6
    assert got["latest"][busy].value == 4  # AS_OF's own day
    assert got["days_active"][busy].value == 3
    assert got["sum"][idle].value == 0  # a real zero: the account reports usage
    assert idle not in got["latest"]  # no period to be the latest
    assert silent not in got["sum"]  # no usage feed at all: missing, not zero


def test_weekly_snapshots_read_as_metrics_and_incomplete_weeks_wait(engine: Engine) -> None:
    with session_scope(engine) as s:
        a = account(s, "Weekly")
        usage(s, a, weeks_back(1), active=8, seats=20)
        usage(s, a, weeks_back(2), active=6, seats=20)
        usage(s, a, weeks_back(0), active=99, seats=20, recorded=ago(0.5))  # week not over
    active = read(engine, measure({"kind": "metric", "metric": "active_users", "agg": "sum"}))
    seats = read(engine, measure({"kind": "metric", "metric": "licensed_seats", "agg": "latest"}))
    assert active[a].value == 14
    assert seats[a].value == 20


def test_breadth_of_a_list_and_of_a_prefix(engine: Engine) -> None:
    with session_scope(engine) as s:
        wide, narrow, other = account(s, "Wide"), account(s, "Narrow"), account(s, "Other")
        for f in ("reports", "dashboards", "exports"):
            metric(s, wide, days_back(3), f"feature_{f}", 5)
        metric(s, narrow, days_back(3), "feature_reports", 1)
        metric(s, narrow, days_back(4), "feature_api", 0)  # zero is not use
        metric(s, narrow, days_back(60), "feature_exports", 9)  # outside the window
        metric(s, other, days_back(2), "logins", 3)
    by_prefix = read(engine, measure({"kind": "breadth", "prefix": "feature_"}))
    assert by_prefix[wide].value == 3
    assert by_prefix[wide].details["of"] == 4  # every feature_ metric the book holds
    assert by_prefix[narrow].value == 1
    assert by_prefix[narrow].details["unused"] == "api, dashboards, exports"
    assert by_prefix[other].value == 0
    shares = read(engine, measure({"kind": "breadth", "prefix": "feature_", "share": True}))
    assert shares[wide].value == 0.75
    assert shares[narrow].value == 0.25
    listed = read(
        engine, measure({"kind": "breadth", "metrics": ["feature_reports", "feature_api"]})
    )
    assert listed[wide].value == 1
    assert listed[wide].details["of"] == 2


def test_depth_trend_and_recency_of_a_metric(engine: Engine) -> None:
    with session_scope(engine) as s:
        a, b = account(s, "A"), account(s, "B")
        for w in range(1, 9):  # weekly active users 10, reports 30 a week in the last 4
            metric(s, a, weeks_back(w), "active_users", 10, period_days=7)
            metric(s, a, weeks_back(w), "reports", 30 if w <= 4 else 60, period_days=7)
        metric(s, b, days_back(200), "reports", 1)
        metric(s, b, days_back(10), "logins", 1)
    depth = read(
        engine,
        measure({"kind": "depth", "metric": "reports", "per": "active_users", "window_days": 28}),
    )
    assert depth[a].value == pytest.approx(4 * 30 / 10)  # 4 weeks end in the last 28 days
    trend = read(engine, measure({"kind": "trend", "metric": "reports", "window_days": 28}))
    assert trend[a].value == pytest.approx(0.5)
    assert trend[a].details["change"] == "down 50%"
    assert b not in trend  # no periods in the window before
    recency = read(engine, measure({"kind": "recency", "of": "metric", "metric": "reports"}))
    assert recency[a].value == 7  # the latest complete week began 7 days before
    assert recency[b].value == 200
    assert recency[b].details["ago"] == "200 days ago"


def test_recency_of_tickets_sentiment_and_surveys(engine: Engine) -> None:
    with session_scope(engine) as s:
        a, quiet = account(s, "A"), account(s, "Quiet")
        ticket(s, a, ago(12.5))
        ticket(s, a, later(1))
        sentiment(s, a, "green", ago(40.5))
        survey(s, a, ago(3.5), 9, kind="nps", scale_max=10)

    def of(kind: str) -> dict[int, Any]:
        return read(engine, measure({"kind": "recency", "of": kind}))

    assert of("ticket")[a].value == 12
    assert of("sentiment")[a].value == 40
    assert of("survey")[a].value == 3
    assert quiet not in of("ticket")


def test_tenure_from_start_known_then(engine: Engine) -> None:
    with session_scope(engine) as s:
        old = account(s, "Old", created_at=ago(400.5))
        billed = account(s, "Billed")
        subscription(s, billed, started_at=ago(100.5))
        future = account(s, "Future", created_at=later(3))
    tenure = read(
        engine, measure({"kind": "tenure"}, normalise={"kind": "linear", "good": 365, "bad": 0})
    )
    assert tenure[old].value == 400
    assert tenure[old].details["months"] == 13
    assert tenure[billed].value == 100
    assert future not in tenure


def test_surveys_as_mean_share_and_nps_on_their_scale(engine: Engine) -> None:
    with session_scope(engine) as s:
        a, b = account(s, "A"), account(s, "B")
        for score in (10, 9, 6, 8):  # one promoter short of two, one detractor
            survey(s, a, ago(10), score, kind="nps", scale_max=10)
        survey(s, a, ago(400), 0, kind="nps", scale_max=10)  # outside the window
        survey(s, b, ago(5), 4, kind="csat", scale_max=5)
        survey(s, b, ago(6), 8, kind="csat", scale_max=10)
    nps = read(engine, measure({"kind": "survey", "survey": "nps", "stat": "nps"}))
    assert nps[a].value == pytest.approx(100 * (2 - 1) / 4)
    mean = read(engine, measure({"kind": "survey", "survey": "nps", "stat": "mean"}))
    assert mean[a].value == pytest.approx(33 / 4)
    csat10 = read(
        engine, measure({"kind": "survey", "survey": "csat", "stat": "mean", "scale": 10})
    )
    assert csat10[b].value == pytest.approx(8.0)  # 4 of 5 and 8 of 10, both 8 of 10
    share = read(engine, measure({"kind": "survey", "survey": "csat", "stat": "share"}))
    assert share[b].value == pytest.approx(100.0)


def test_traits_are_point_in_time_and_typed(engine: Engine) -> None:
    with session_scope(engine) as s:
        a, b = account(s, "A"), account(s, "B")
        write_traits(
            s,
            "crm",
            {
                a: {
                    "contract": TraitValue.parse("category", "monthly"),
                    "employees": TraitValue.parse("number", "40"),
                    "renewed_on": TraitValue.parse("date", "2026-02-20"),
                },
                b: {"contract": TraitValue.parse("category", "two_year")},
            },
            ago(30),
        )
        write_traits(s, "crm", {a: {"contract": TraitValue.parse("category", "annual")}}, later(1))
    contract = measure(
        {"kind": "trait", "trait": "contract"},
        normalise={"kind": "categories", "scores": {"monthly": 20, "annual": 80}},
    )
    words = read(engine, contract)
    assert words[a].value == "monthly"  # "annual" was seen only after the day scored
    assert b not in words  # a word the scorecard does not score, without `otherwise`
    later_words = read(engine, contract, AS_OF + timedelta(days=2))
    assert later_words[a].value == "annual"
    employees = read(engine, measure({"kind": "trait", "trait": "employees"}))
    assert employees[a].value == 40
    renewed = read(engine, measure({"kind": "trait", "trait": "renewed_on"}))
    assert renewed[a].value == (AS_OF - date(2026, 2, 20)).days
    assert a not in read(engine, measure({"kind": "trait", "trait": "contract"}))  # not a number


def test_a_declared_scorecard_scores_and_explains(engine: Engine) -> None:
    text = """
version = "declared-1"
[components.adoption]
weight = 1
[[components.adoption.measures]]
name = "feature_breadth"
weight = 1
signal = { kind = "breadth", prefix = "feature_" }
normalise = { kind = "linear", good = 3, bad = 0 }
[[components.adoption.measures]]
name = "contract"
weight = 1
signal = { kind = "trait", trait = "contract" }
normalise = { kind = "categories", scores = { monthly = 30, annual = 90 }, otherwise = 60 }
[[caps]]
name = "monthly_contract"
cap = "yellow"
when = [{ measure = "contract", value_in = ["monthly"] }]
"""
    card = Scorecard.model_validate(tomllib.loads(text))
    with session_scope(engine) as s:
        a = account(s, "A")
        metric(s, a, days_back(2), "feature_reports", 3)
        metric(s, a, days_back(2), "feature_exports", 0)
        write_traits(s, "crm", {a: {"contract": TraitValue.parse("category", "monthly")}}, ago(9))
    with Session(engine) as session:
        readings = read_readings(session, AS_OF, card.measures())
    result = compute_score(card, {n: r[a] for n, r in readings.items() if a in r})
    assert result is not None
    entry = result.components["adoption"]["measures"]["feature_breadth"]
    assert entry["value"] == 1
    assert entry["reads"] == ["usage_metrics"]
    texts = [d["text"] for d in result.drivers]
    assert "1 of 2 features used in the last 30 days" in texts
    assert result.band != "green"


@pytest.mark.parametrize(
    ("signal", "normalise", "problem"),
    [
        ({"kind": "metric", "metric": "logins", "agg": "median"}, None, "agg"),
        ({"kind": "breadth"}, None, "exactly one of metrics"),
        ({"kind": "recency", "of": "metric"}, None, "name a metric"),
        ({"kind": "survey", "survey": "csat", "stat": "nps"}, None, "survey = 'nps'"),
        (
            {"kind": "metric", "metric": "logins"},
            {"kind": "categories", "scores": {"a": 1}},
            "is a number",
        ),
        ({"kind": "wormhole"}, None, "signal"),
    ],
)
def test_a_wrong_declaration_names_its_line(
    tmp_path: Any, signal: dict[str, Any], normalise: dict[str, Any] | None, problem: str
) -> None:
    norm = normalise or {"kind": "linear", "good": 1, "bad": 0}
    inline = ", ".join(f"{k} = {_toml(v)}" for k, v in signal.items())
    text = f"""version = "x"

[components.usage]
weight = 1

[[components.usage.measures]]
name = "declared"
weight = 1
signal = {{ {inline} }}
normalise = {_toml(norm)}
"""
    path = tmp_path / "card.toml"
    path.write_text(text, encoding="utf-8")
    card, problems = check_scorecard(path)
    assert card is None
    lines = (f"{path}:6:", f"{path}:9:")  # the measure's table, or its signal line
    assert any(problem in p and p.startswith(lines) for p in problems), problems


def test_a_declared_name_must_not_be_a_preset() -> None:
    with pytest.raises(ValueError, match="preset measure"):
        measure({"kind": "tenure"}, name="csat")


def test_labels_are_checked_against_the_signal_details() -> None:
    with pytest.raises(ValueError, match="available: value, used, of"):
        measure({"kind": "breadth", "prefix": "f_"}, label="{nonsense} used")
    ok = measure({"kind": "breadth", "prefix": "f_"}, label="{used}/{of} ({unused} idle)")
    assert ok.describe(2.0, {"used": 2, "of": 5, "unused": "x"}, positive=False) == "2/5 (x idle)"


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def test_the_default_scorecard_reads_every_signal_it_declares(engine: Engine) -> None:
    card = load_scorecard()
    with session_scope(engine) as s:
        ids = [account(s, f"A{n}", created_at=ago(300 + n)) for n in range(12)]
        for n, a in enumerate(ids):
            for w in range(1, 10):
                usage(s, a, weeks_back(w), active=8 + n, seats=20)
                metric(s, a, weeks_back(w), "active_users", 8 + n, period_days=7)
                metric(s, a, weeks_back(w), "logins", 20 + n * w, period_days=7)
                metric(s, a, weeks_back(w), "feature_reports", n % 3, period_days=7)
                metric(s, a, weeks_back(w), "feature_api", 1, period_days=7)
            survey(s, a, ago(20), 6 + n % 5, kind="nps", scale_max=10)
            survey(s, a, ago(20), 3 + n % 3, kind="csat", scale_max=5)
            ticket(s, a, ago(5))
            subscription(s, a)
            sentiment(s, a, "green", ago(3))
        write_traits(
            s,
            "crm",
            {a: {"contract_type": TraitValue.parse("category", "Month-to-month")} for a in ids},
            ago(100),
        )
    from scoring.health import score_accounts

    score_accounts(engine, AS_OF, card)
    with Session(engine) as session:
        from scoring.health import explain

        latest = explain(session, ids[0]).latest
    assert latest is not None
    measures = {
        m: entry
        for comp in latest.components.values()
        if isinstance(comp, dict)
        for m, entry in (comp.get("measures") or {}).items()
    }
    missing = sorted(m for m, entry in measures.items() if entry["value"] is None)
    assert missing == ["failed_payments"], missing  # no invoices
    assert measures["contract"]["value"] == "Month-to-month"
    assert measures["contract"]["score"] == 30
    from scoring.breakdown import measure_lines

    with Session(engine) as session:
        lines = {
            line.measure: line for line in measure_lines(session, latest, None, scorecards=[card])
        }
    assert lines["contract"].text == "Contract: Month-to-month"
    assert lines["feature_breadth"].text.startswith("1 of 2 product modules")
    assert lines["login_recency"].text == "Last login 7 days ago"
    assert lines["nps"].text.startswith("NPS ")
    assert lines["failed_payments"].text == ""  # no data: nothing to say
    assert all(line.text for name, line in lines.items() if name != "failed_payments")


def test_scorecard_check_names_unknown_metrics_and_traits_with_their_line(engine: Engine) -> None:
    from scoring.signals.catalog import signal_problems, store_catalog

    text = """version = "x"

[components.usage]
weight = 1

[[components.usage.measures]]
name = "logins_30d"
weight = 1
signal = { kind = "metric", metric = "loggins" }
normalise = { kind = "percentile" }

[[components.usage.measures]]
name = "plan"
weight = 1
signal = { kind = "trait", trait = "plan" }
normalise = { kind = "categories", scores = { pro = 90 }, otherwise = 50 }

[[components.usage.measures]]
name = "breadth"
weight = 1
signal = { kind = "breadth", prefix = "module_" }
normalise = { kind = "percentile" }
"""
    card = Scorecard.model_validate(tomllib.loads(text))
    with session_scope(engine) as s:
        a = account(s, "A")
        metric(s, a, days_back(1), "logins", 3)
        metric(s, a, days_back(1), "feature_api", 3)
        write_traits(s, "crm", {a: {"contract_type": TraitValue.parse("category", "x")}}, ago(1))
    with Session(engine) as session:
        catalog = store_catalog(session)
    problems = signal_problems("card.toml", text, card, catalog)
    assert problems == [
        "card.toml:9: components.usage.measures[0]: unknown metric 'loggins' in logins_30d; "
        "the store holds: feature_api, logins",
        "card.toml:15: components.usage.measures[1]: unknown trait 'plan' in plan; "
        "the store holds: contract_type",
        "card.toml:21: components.usage.measures[2]: no metric starts with 'module_' in "
        "breadth; the store holds: feature_api, logins",
    ]
