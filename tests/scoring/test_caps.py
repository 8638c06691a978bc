"""Caps: rules that hold a score down when something serious is wrong, whatever the mean."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session, select

from scoring import AccountScore, ScorecardError, compute_score, load_scorecard, score_accounts
from scoring.measures import MEASURES, Reading
from scoring.scorecard import Bands, CapRule, Scorecard
from store import session_scope
from store.models import HealthScore
from tests.scoring.seed import AS_OF, MECHANICS, account, ago, healthy, invoice, subscription

DEFAULT = MECHANICS.read_text()
CARD = load_scorecard(MECHANICS)


def _without_caps(tmp_path: Path) -> Scorecard:
    """The default scorecard with its caps section cut off, loaded from a file."""
    path = tmp_path / "no-caps.toml"
    path.write_text(DEFAULT.split("# ---- caps")[0])
    return load_scorecard(path)


HEALTHY: dict[str, Reading] = {
    "ticket_volume": Reading(1.0, {"recent": 2, "baseline": 2.0}),
    "urgent_open_tickets": Reading(0.0, {"count": 0, "s": "s"}),
    "csat": Reading(95.0, {"ratings": 10, "source": "surveys"}),
    "subscription_state": Reading("active", {"state": "active"}),
    "failed_payments": Reading(0.0, {"count": 0, "s": "s", "ago": "never", "days_ago": None}),
    "mrr_trend": Reading(1.0, {"change": "unchanged", "mrr_minor": 100, "before_minor": 100}),
    "seat_utilisation": Reading(0.9, {"active": 18, "seats": 20, "week": "2026-02-23"}),
    "usage_trend": Reading(1.0, {"change": "unchanged", "recent_mean": 18.0, "prior_mean": 18.0}),
    "csm_sentiment": Reading("green", {"note": "", "ago": "10 days ago", "days_ago": 10}),
}
PAST_DUE = {"subscription_state": Reading("past_due", {"state": "past due"})}
FAILED = {
    "failed_payments": Reading(1.0, {"count": 1, "s": "", "ago": "3 days ago", "days_ago": 3})
}
RED = {
    "csm_sentiment": Reading("red", {"note": ": champion left", "ago": "3 days ago", "days_ago": 3})
}
COLLAPSING = {  # support scores 16.25, usage 0
    "ticket_volume": Reading(4.0, {"recent": 8, "baseline": 2.0}),
    "urgent_open_tickets": Reading(2.0, {"count": 2, "s": "s"}),
    "csat": Reading(60.0, {"ratings": 10, "source": "surveys"}),
    "seat_utilisation": Reading(0.2, {"active": 4, "seats": 20, "week": "2026-02-23"}),
    "usage_trend": Reading(0.5, {"change": "down 50%", "recent_mean": 4.0, "prior_mean": 8.0}),
}


def _score(*changes: dict[str, Reading], card: Scorecard = CARD) -> AccountScore:
    readings = dict(HEALTHY)
    for change in changes:
        readings.update(change)
    result = compute_score(card, readings)
    assert result is not None
    return result


def _fired(result: AccountScore) -> list[str]:
    return [f["name"] for f in result.components.get("caps", {}).get("fired", [])]


def _texts(result: AccountScore) -> list[str]:
    return [d["text"] for d in result.drivers]


def test_healthy_account_hits_no_cap() -> None:
    result = _score()
    assert (result.score, result.band) == (100.0, "green")
    assert "caps" not in result.components


@pytest.mark.parametrize(
    ("change", "rules", "first_driver"),
    [
        (PAST_DUE, ["subscription_past_due"], "Capped at 50 — subscription past due"),
        (
            {"subscription_state": Reading("unpaid", {"state": "unpaid after failed payments"})},
            ["subscription_past_due"],
            "Capped at 50 — subscription unpaid after failed payments",
        ),
        (FAILED, ["payment_failed"], "Capped at 50 — invoice payment failed 3 days ago"),
    ],
)
def test_billing_trouble_caps_at_50(
    change: dict[str, Reading], rules: list[str], first_driver: str
) -> None:
    result = _score(change)
    assert result.score == 50.0
    assert result.band == "yellow"
    assert _fired(result) == rules
    assert result.drivers[0]["text"] == first_driver
    assert result.drivers[0]["direction"] == "negative"
    assert result.drivers[0]["component"] == "billing"
    assert result.drivers[0]["cap"] == rules[0]
    caps = result.components["caps"]
    assert caps["score"] == 50.0
    assert caps["uncapped"] > 70  # green by the weighted mean alone
    assert caps["fired"][0]["cap"] == 50.0
    assert caps["fired"][0]["lowered"] is True


def test_red_sentiment_caps_just_below_green() -> None:
    result = _score(RED)
    assert result.components["caps"]["uncapped"] == pytest.approx(86.5)
    assert (result.score, result.band) == (69.0, "yellow")
    assert _texts(result) == ["Capped at yellow — CSM marked red: champion left"]
    assert result.components["caps"]["fired"] == [
        {
            "name": "csm_red",
            "cap": 69.0,
            "reason": "CSM marked red: champion left",
            "lowered": True,
        }
    ]


def test_collapsing_usage_with_struggling_support_caps_at_red() -> None:
    result = _score(COLLAPSING)
    assert result.components["caps"]["uncapped"] == pytest.approx(49.9, abs=0.1)
    assert (result.score, result.band) == (35.0, "red")
    assert result.drivers[0]["text"] == "Capped at 35 — usage collapsing while tickets climb"
    assert (result.drivers[0]["component"], result.drivers[0]["measure"]) == (None, None)
    assert len(result.drivers) == 3  # the measures behind it follow
    # both conditions must hold: usage alone is not enough
    usage_only = {k: v for k, v in COLLAPSING.items() if k in ("seat_utilisation", "usage_trend")}
    assert _fired(_score(usage_only)) == []


def test_lowest_cap_wins_and_every_cap_is_recorded() -> None:
    result = _score(RED, PAST_DUE)
    assert result.components["caps"]["uncapped"] == pytest.approx(76.9)
    assert (result.score, result.band) == (50.0, "yellow")
    assert _fired(result) == ["subscription_past_due", "csm_red"]
    assert result.components["caps"]["score"] == 50.0
    assert _texts(result)[:2] == [
        "Capped at 50 — subscription past due",
        "Capped at yellow — CSM marked red: champion left",
    ]
    # the order in the file does not matter
    reversed_card = CARD.model_copy(update={"caps": list(reversed(CARD.caps))})
    assert _score(RED, PAST_DUE, card=reversed_card) == result
    # and a lower cap beats both
    collapsing = _score(RED, PAST_DUE, COLLAPSING)
    assert collapsing.score == min(35.0, collapsing.components["caps"]["uncapped"])
    assert _fired(collapsing)[0] == "usage_collapsing"


def test_caps_come_first_and_their_measure_is_not_repeated() -> None:
    result = _score(PAST_DUE, {"csat": Reading(50.0, {"ratings": 4, "source": "surveys"})})
    texts = _texts(result)
    assert texts[0] == "Capped at 50 — subscription past due"
    assert "Subscription past due" not in texts
    assert "CSAT 50% over the last 90 days (4 surveys)" in texts
    assert all(d["direction"] == "negative" for d in result.drivers)


def test_a_cap_above_the_score_is_recorded_but_changes_nothing() -> None:
    no_caps = CARD.model_copy(update={"caps": []})
    usage = {k: v for k, v in COLLAPSING.items() if k in ("seat_utilisation", "usage_trend")}
    changes = (PAST_DUE, FAILED, RED, usage)
    result, plain = _score(*changes), _score(*changes, card=no_caps)
    assert result.score == plain.score == pytest.approx(44.5, abs=0.1)
    assert result.drivers == plain.drivers
    fired = result.components["caps"]["fired"]
    assert [f["name"] for f in fired] == ["subscription_past_due", "payment_failed", "csm_red"]
    assert not any(f["lowered"] for f in fired)


def test_numeric_cap_above_green_keeps_positive_drivers() -> None:
    rule = CapRule.model_validate(
        {"name": "watch", "cap": 80, "when": [{"measure": "csm_sentiment", "value_in": ["red"]}]}
    )
    card = CARD.model_copy(update={"caps": [rule]})
    result = _score(RED, card=card)
    assert (result.score, result.band) == (80.0, "green")
    assert result.drivers[0]["text"] == "Capped at 80 — CSM marked red: champion left"
    assert any(d["direction"] == "positive" for d in result.drivers)


def test_band_caps_follow_the_bands() -> None:
    assert Bands(green=80, yellow=50).top_of("yellow") == 79
    assert Bands(green=80, yellow=50).top_of("red") == 49
    narrow = Bands(green=41, yellow=40.5)
    assert narrow.band(narrow.top_of("yellow")) == "yellow"
    assert narrow.band(narrow.top_of("red")) == "red"
    card = CARD.model_copy(update={"bands": Bands(green=80, yellow=50)})
    assert _score(RED, card=card).score == 79.0


def test_conditions_without_data_never_hold() -> None:
    readings = {k: v for k, v in HEALTHY.items() if k != "csm_sentiment"}
    readings.update(COLLAPSING)
    del readings["ticket_volume"], readings["urgent_open_tickets"], readings["csat"]
    result = compute_score(CARD, readings)  # no support data: the usage rule cannot fire
    assert result is not None
    assert "caps" not in result.components


def test_without_caps_the_score_is_the_weighted_mean(tmp_path: Path) -> None:
    no_caps = _without_caps(tmp_path)
    assert no_caps.caps == []
    for changes in ((), (RED,), (PAST_DUE, FAILED), (COLLAPSING,)):
        plain = _score(*changes, card=no_caps)
        capped = _score(*changes)
        assert "caps" not in plain.components
        assert plain.score == capped.components.get("caps", {}).get("uncapped", capped.score)
        assert not any("cap" in d for d in plain.drivers)


_values: dict[str, st.SearchStrategy[Any]] = {
    name: (
        st.sampled_from(spec.categories)
        if spec.categories
        else st.floats(min_value=0, max_value=5, allow_nan=False)
    )
    for name, spec in MEASURES.items()
}
_NO_CAPS = CARD.model_copy(update={"caps": []})


@given(
    st.fixed_dictionaries(
        {}, optional={n: v.map(lambda x: Reading(x, {})) for n, v in _values.items()}
    )
)
def test_caps_only_ever_lower_the_score(readings: dict[str, Reading]) -> None:
    details = {n: Reading(r.value, dict(MEASURES[n].example_details)) for n, r in readings.items()}
    capped, plain = compute_score(CARD, details), compute_score(_NO_CAPS, details)
    if plain is None:
        assert capped is None
        return
    assert capped is not None
    assert capped.score <= plain.score
    assert len([d for d in capped.drivers if d["direction"] == "negative"]) <= 3
    for result in (capped, plain):  # the data's own view depends on the caps: compared apart
        result.components.pop("signals", None)
    caps = capped.components.pop("caps", None)
    if caps is None:
        assert capped == plain
        return
    assert caps["uncapped"] == plain.score
    assert capped.score == min(plain.score, caps["score"])
    assert capped.components == plain.components
    assert replace(capped, score=plain.score, band=plain.band, drivers=plain.drivers) == plain


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    assert old in DEFAULT
    path = tmp_path / "card.toml"
    path.write_text(DEFAULT.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'measure = "csm_sentiment", value_in',
            'measure = "sentiment", value_in',
            "caps[2]: rule 'csm_red', when[0]: unknown measure 'sentiment'; this scorecard has:",
        ),
        (
            'component = "support", score_at_most',
            'component = "tickets", score_at_most',
            "caps[3]: rule 'usage_collapsing', when[1]: unknown component 'tickets'; "
            "this scorecard has: billing, sentiment, support, usage",
        ),
        (
            'value_in = ["red"]',
            'value_in = ["purple"]',
            "caps[2]: rule 'csm_red', when[0]: csm_sentiment is never 'purple'; "
            "its values: green, yellow, red",
        ),
        (
            '{ measure = "failed_payments", score_at_most = 30 }',
            '{ measure = "failed_payments", value_in = ["many"] }',
            "rule 'payment_failed', when[0]: failed_payments is a number",
        ),
        (
            '{ component = "usage", score_at_most = 25 }',
            '{ component = "usage", value_in = ["low"] }',
            "rule 'usage_collapsing', when[0]: value_in tests a measure's value",
        ),
        (
            '{ component = "usage", score_at_most = 25 }',
            '{ component = "usage", measure = "usage_trend", score_at_most = 25 }',
            "caps[3]: rule 'usage_collapsing', when[0]: give exactly one of measure and component",
        ),
        (
            '{ component = "usage", score_at_most = 25 }',
            '{ component = "usage" }',
            "caps[3]: rule 'usage_collapsing', when[0]: give exactly one of score_at_most and",
        ),
        ('cap = "yellow"', 'cap = "green"', "caps[2].cap: cap must be a score from 0 to 100"),
        ("cap = 35", "cap = 135", "caps[3].cap: cap must be a score from 0 to 100"),
        ("score_at_most = 30", "score_at_most = 300", "caps[1].when[0].score_at_most"),
        ('name = "csm_red"', 'name = "payment_failed"', "rule 'payment_failed' appears twice"),
        ('name = "csm_red"', 'nmae = "csm_red"', "caps[2].name: Field required"),
        ('when = [{ measure = "csm_sentiment"', "when = [] #", "caps[2].when: List should"),
        ("[components.sentiment]", "[components.caps]", "the name 'caps' is kept for the caps"),
    ],
)
def test_invalid_cap_rules_name_file_and_rule(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = _broken(tmp_path, old, new)
    if "components.caps" in new:  # rename every reference to the component
        path.write_text(path.read_text().replace("components.sentiment", "components.caps"))
    with pytest.raises(ScorecardError) as info:
        load_scorecard(path)
    message = str(info.value)
    assert re.match(rf"{re.escape(str(path))}(:\d+)?: ", message), message
    assert expected in message
    assert "\n" not in message
    assert info.value.__cause__ is None


def test_stored_scores_carry_their_caps(engine: Engine) -> None:
    with session_scope(engine) as s:
        late, fine = account(s, "Late Payer"), account(s, "Fine")
        healthy(s, late)
        healthy(s, fine)
        subscription(s, late, "past_due", mrr_minor=0)
        invoice(s, late, ago(3.5), status="open", attempt_count=2, amount_remaining_minor=100_00)
    summary = score_accounts(engine, AS_OF, CARD)
    assert summary.bands == {"green": 1, "yellow": 1, "red": 0}
    assert summary.scorecard_version == "2026.1"
    with Session(engine) as s:
        rows = {row.account_id: row for row in s.exec(select(HealthScore)).all()}
    row = rows[late]
    assert (row.score, row.band) == (50.0, "yellow")
    assert [f["name"] for f in row.components["caps"]["fired"]] == [
        "subscription_past_due",
        "payment_failed",
    ]
    assert [d["text"] for d in row.drivers[:2]] == [
        "Capped at 50 — subscription past due",
        "Capped at 50 — invoice payment failed 3 days ago",
    ]
    assert "caps" not in rows[fine].components
