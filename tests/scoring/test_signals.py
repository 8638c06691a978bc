"""CSM and data disagreeing by two bands is a signal of its own, kept with the score."""

from __future__ import annotations

from scoring import load_scorecard
from scoring.health import compute_score
from scoring.measures import Reading

CARD = load_scorecard()
TROUBLE = {
    "subscription_state": Reading("past_due", {"state": "past due"}),
    "failed_payments": Reading(2.0, {"count": 2, "s": "s", "ago": "3 days ago", "days_ago": 3}),
    "usage_trend": Reading(0.3, {"change": "down 70%", "recent_mean": 3.0, "prior_mean": 10.0}),
    "seat_utilisation": Reading(0.1, {"active": 2, "seats": 20, "week": "2026-02-23"}),
}
FINE = {
    "subscription_state": Reading("active", {"state": "active"}),
    "usage_trend": Reading(1.1, {"change": "up 10%", "recent_mean": 11.0, "prior_mean": 10.0}),
}


def _call(value: str) -> dict[str, Reading]:
    return {"csm_sentiment": Reading(value, {"note": "", "ago": "2 days ago", "days_ago": 2})}


def test_csm_green_on_red_data_is_flagged_with_the_data_view() -> None:
    result = compute_score(CARD, {**TROUBLE, **_call("green")})
    assert result is not None
    (signal,) = result.components["signals"]
    assert signal["kind"] == "sentiment_vs_data"
    assert (signal["sentiment"], signal["data_band"]) == ("green", "red")
    assert signal["data_score"] < CARD.bands.yellow
    assert signal["text"] == f"CSM says green, the data says red ({signal['data_score']:.0f})"


def test_csm_red_on_green_data_is_flagged_too() -> None:
    result = compute_score(CARD, {**FINE, **_call("red")})
    assert result is not None
    assert result.band == "yellow"  # the red call caps it
    (signal,) = result.components["signals"]
    assert (signal["sentiment"], signal["data_band"]) == ("red", "green")


def test_agreement_a_band_apart_or_no_call_is_no_signal() -> None:
    for readings in (
        {**FINE, **_call("green")},
        {**TROUBLE, **_call("red")},
        {**FINE, **_call("yellow")},
        TROUBLE,
        _call("green"),  # nothing but the call: no data to disagree with
    ):
        result = compute_score(CARD, readings)
        assert result is not None
        assert "signals" not in result.components
