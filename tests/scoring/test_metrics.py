"""The metrics library: hand-computed examples for each metric, and its invariants.

Examples pin the definitions to numbers worked out by hand; the hypothesis properties
check what must hold for any input (bounds, symmetries, sums, complements).
"""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scoring.metrics as metrics
from scoring.metrics import (
    CES_1_5,
    CES_1_7,
    CustomerCounts,
    CustomerLifetime,
    EffortAnswer,
    EffortScale,
    FeatureUsage,
    MovementKind,
    MrrMovement,
    ScaleMismatchError,
    SubscriptionSnapshot,
    TicketTimes,
    ValueObservation,
    adoption,
    arpu,
    arr,
    backlog,
    ces,
    csat,
    customer_counts,
    customer_lifetime_value,
    customer_retention_cost,
    customer_retention_rate,
    expansion_revenue,
    feature_adoption,
    feature_breadth,
    gross_revenue_retention,
    logo_churn_rate,
    median_first_response_time,
    median_resolution_time,
    mrr,
    mrr_by_customer,
    mrr_movement_series,
    mrr_movements,
    net_revenue_retention,
    nps,
    nps_breakdown,
    product_adoption,
    retention,
    revenue,
    support,
    surveys,
    ticket_volume,
    time_to_value,
    usage_depth,
    value_observation,
)

Sub = SubscriptionSnapshot

# ---- strategies ------------------------------------------------------------------------

CUSTOMERS = st.sampled_from([f"c{i}" for i in range(8)])
snapshots = st.lists(
    st.builds(Sub, customer=CUSTOMERS, mrr_minor=st.integers(0, 50_000)), max_size=12
)
DAY0 = date(2025, 1, 1)
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def _swap_promoters_and_detractors(score: int) -> int:
    if score >= 9:
        return score - 9  # 9 -> 0, 10 -> 1: detractors
    if score <= 6:
        return 9 + score % 2  # promoters
    return score


# ---- exports ---------------------------------------------------------------------------


def test_package_exports_every_public_name() -> None:
    for module in (surveys, revenue, retention, support, adoption):
        assert set(module.__all__) <= set(metrics.__all__), module.__name__
    exported = {n for m in (surveys, revenue, retention, support, adoption) for n in m.__all__}
    assert set(metrics.__all__) == exported
    assert all(hasattr(metrics, name) for name in metrics.__all__)


# ---- surveys ---------------------------------------------------------------------------


def test_nps_example() -> None:
    scores = [10, 9, 8, 7, 6, 0, 10, 3, 9, 10]  # 5 promoters, 2 passives, 3 detractors
    breakdown = nps_breakdown(scores)
    assert (breakdown.promoters, breakdown.passives, breakdown.detractors) == (5, 2, 3)
    assert nps(scores) == 20.0
    assert nps([10, 9]) == 100.0
    assert nps([0, 6]) == -100.0
    assert nps([7, 8]) == 0.0


def test_nps_undefined_without_answers() -> None:
    assert nps([]) is None
    assert nps_breakdown([]).responses == 0


@pytest.mark.parametrize("bad", [-1, 11, 100])
def test_nps_rejects_scores_off_the_scale(bad: int) -> None:
    with pytest.raises(ValueError, match="outside its 0-10 scale"):
        nps([9, bad])


@pytest.mark.parametrize("bad", [9.5, True, "9"])
def test_nps_rejects_scores_that_are_not_whole_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match="not a whole number"):
        nps([bad])  # type: ignore[list-item]  # the wrong type is the point


@given(st.lists(st.integers(0, 10), min_size=1))
def test_nps_bounds_and_sign_symmetry(scores: list[int]) -> None:
    score = nps(scores)
    assert score is not None
    assert -100 <= score <= 100
    assert nps([_swap_promoters_and_detractors(s) for s in scores]) == -score
    assert nps(scores * 3) == pytest.approx(score)


def test_csat_example() -> None:
    assert csat([5, 4, 3, 2, 1, 5, 4, 4]) == 5 / 8
    assert csat([]) is None
    with pytest.raises(ValueError, match="outside its 1-5 scale"):
        csat([0])
    with pytest.raises(ValueError, match="outside its 1-5 scale"):
        csat([6])


@given(st.lists(st.integers(1, 5), min_size=1))
def test_csat_is_a_share(scores: list[int]) -> None:
    value = csat(scores)
    assert value is not None
    assert 0 <= value <= 1
    assert value == sum(s >= 4 for s in scores) / len(scores)


def test_ces_example() -> None:
    answers = [EffortAnswer(s, CES_1_7) for s in (2, 3, 7, 4)]
    assert ces(answers, CES_1_7) == 4.0
    assert ces([], CES_1_5) is None


def test_ces_never_mixes_scales() -> None:
    mixed = [EffortAnswer(3, CES_1_7), EffortAnswer(3, CES_1_5)]
    with pytest.raises(ScaleMismatchError, match="1-5 answer"):
        ces(mixed, CES_1_7)
    with pytest.raises(ValueError, match="outside its 1-5 scale"):
        EffortAnswer(6, CES_1_5)
    with pytest.raises(ValueError, match="lowest < highest"):
        EffortScale(5, 5)


@given(st.integers(0, 3), st.integers(1, 9), st.data())
def test_ces_stays_within_its_scale(lowest: int, width: int, data: st.DataObject) -> None:
    scale = EffortScale(lowest, lowest + width)
    scores = data.draw(st.lists(st.integers(scale.lowest, scale.highest), min_size=1))
    value = ces([EffortAnswer(s, scale) for s in scores], scale)
    assert value is not None
    assert min(scores) <= value <= max(scores)


# ---- revenue: MRR, ARR and movements ---------------------------------------------------


def test_mrr_arr_and_arpu_example() -> None:
    snapshot = [Sub("a", 5_000), Sub("a", 3_000), Sub("b", 10_000), Sub("z", 0)]
    assert mrr_by_customer(snapshot) == {"a": 8_000, "b": 10_000}  # z pays nothing
    assert mrr(snapshot) == 18_000
    assert arr(snapshot) == 216_000
    assert arpu(snapshot) == 9_000.0
    assert arpu([Sub("z", 0)]) is None
    assert mrr([]) == 0


def test_money_checks() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        Sub("a", -1)
    with pytest.raises(ValueError, match="several currencies"):
        mrr([Sub("a", 100, "USD"), Sub("b", 100, "EUR")])
    with pytest.raises(ValueError, match="several currencies"):
        mrr_movements([Sub("a", 100, "USD")], [Sub("a", 100, "EUR")])


# Start: a has two subscriptions (8,000), b 10,000, c 2,000, d 4,000.
# End: a cancelled one of its two (5,000), b expanded (12,000), c is gone, d is unchanged,
# e is new (1,500), f had churned before the start and is back (2,500).
START = [Sub("a", 5_000), Sub("a", 3_000), Sub("b", 10_000), Sub("c", 2_000), Sub("d", 4_000)]
END = [Sub("a", 5_000), Sub("b", 12_000), Sub("d", 4_000), Sub("e", 1_500), Sub("f", 2_500)]


def test_mrr_movements_example() -> None:
    moves = mrr_movements(START, END, previously_active={"f"})
    assert (moves.start_mrr_minor, moves.end_mrr_minor) == (24_000, 25_000)
    assert moves.new_minor == 1_500
    assert moves.expansion_minor == 2_000
    assert moves.contraction_minor == -3_000
    assert moves.churn_minor == -2_000
    assert moves.reactivation_minor == 2_500
    assert moves.net_new_minor == 1_000
    assert moves.movements == (
        MrrMovement("a", MovementKind.CONTRACTION, -3_000),
        MrrMovement("b", MovementKind.EXPANSION, 2_000),
        MrrMovement("c", MovementKind.CHURN, -2_000),
        MrrMovement("e", MovementKind.NEW, 1_500),
        MrrMovement("f", MovementKind.REACTIVATION, 2_500),
    )


def test_cancelling_one_of_two_subscriptions_is_contraction_not_churn() -> None:
    before = [Sub("acme", 4_900), Sub("acme", 2_900)]
    one_left = mrr_movements(before, [Sub("acme", 4_900)])
    assert one_left.movements == (MrrMovement("acme", MovementKind.CONTRACTION, -2_900),)
    assert one_left.churn_minor == 0
    none_left = mrr_movements(before, [])
    assert none_left.movements == (MrrMovement("acme", MovementKind.CHURN, -7_800),)


def test_without_history_a_returning_customer_looks_new() -> None:
    assert mrr_movements(START, END).new_minor == 4_000
    assert mrr_movements(START, END).reactivation_minor == 0


def test_reactivation_over_a_series() -> None:
    series = [
        [Sub("x", 1_000)],
        [Sub("y", 700)],  # x churns, y is new
        [Sub("x", 1_500), Sub("y", 700)],  # x is back: reactivation
        [Sub("x", 1_500), Sub("y", 700), Sub("w", 300)],  # w is new
    ]
    first, second, third = mrr_movement_series(series)
    assert first.movements == (
        MrrMovement("x", MovementKind.CHURN, -1_000),
        MrrMovement("y", MovementKind.NEW, 700),
    )
    assert second.movements == (MrrMovement("x", MovementKind.REACTIVATION, 1_500),)
    assert third.movements == (MrrMovement("w", MovementKind.NEW, 300),)
    later = mrr_movement_series([[], [Sub("v", 10)]], previously_active={"v"})
    assert later[0].reactivation_minor == 10
    assert mrr_movement_series([[Sub("x", 1)]]) == []


@given(snapshots, snapshots, st.sets(CUSTOMERS))
def test_movements_sum_to_the_mrr_change(
    start: list[Sub], end: list[Sub], previously_active: set[str]
) -> None:
    moves = mrr_movements(start, end, previously_active=previously_active)
    assert moves.net_new_minor == mrr(end) - mrr(start)
    assert sum(m.amount_minor for m in moves.movements) == mrr(end) - mrr(start)
    assert min(moves.new_minor, moves.expansion_minor, moves.reactivation_minor) >= 0
    assert max(moves.contraction_minor, moves.churn_minor) <= 0
    before, after = mrr_by_customer(start), mrr_by_customer(end)
    for move in moves.movements:
        was, now = before.get(move.customer, 0), after.get(move.customer, 0)
        assert move.amount_minor == now - was != 0
        assert (move.kind is MovementKind.REACTIVATION) == (
            was == 0 and move.customer in previously_active
        )
        assert (move.kind is MovementKind.CHURN) == (now == 0 and was > 0)


@settings(max_examples=50)
@given(st.lists(snapshots, min_size=2, max_size=5))
def test_series_movements_telescope(series: list[list[Sub]]) -> None:
    breakdowns = mrr_movement_series(series)
    assert len(breakdowns) == len(series) - 1
    assert sum(b.net_new_minor for b in breakdowns) == mrr(series[-1]) - mrr(series[0])
    # A customer is new at most once: the first time it ever pays.
    new = [m.customer for b in breakdowns for m in b.movements if m.kind is MovementKind.NEW]
    assert len(new) == len(set(new))
    assert not set(new) & mrr_by_customer(series[0]).keys()


# ---- revenue: retention, expansion, lifetime value -------------------------------------


def test_revenue_retention_example() -> None:
    # Customers paying at the start: a 8,000 -> 5,000, b 10,000 -> 12,000, c 2,000 -> 0,
    # d 4,000 -> 4,000; e and f are not counted.
    assert gross_revenue_retention(START, END) == 19_000 / 24_000
    assert net_revenue_retention(START, END) == 21_000 / 24_000
    assert expansion_revenue(START, END) == 2_000
    assert gross_revenue_retention([], END) is None
    assert net_revenue_retention([], END) is None


def test_expansion_keeps_grr_at_one_but_lifts_nrr() -> None:
    start, end = [Sub("a", 1_000)], [Sub("a", 1_500), Sub("new", 9_000)]
    assert gross_revenue_retention(start, end) == 1.0
    assert net_revenue_retention(start, end) == 1.5
    assert expansion_revenue(start, end) == 500


@given(snapshots, snapshots)
def test_grr_at_most_one_and_at_most_nrr(start: list[Sub], end: list[Sub]) -> None:
    grr, nrr = gross_revenue_retention(start, end), net_revenue_retention(start, end)
    if mrr(start) == 0:
        assert grr is None
        assert nrr is None
        return
    assert grr is not None
    assert nrr is not None
    assert 0 <= grr <= 1
    assert grr <= nrr
    moves = mrr_movements(start, end)
    base = moves.start_mrr_minor
    assert grr == pytest.approx((base + moves.contraction_minor + moves.churn_minor) / base)
    kept = base + moves.expansion_minor + moves.contraction_minor + moves.churn_minor
    assert nrr == pytest.approx(kept / base)
    assert expansion_revenue(start, end) == moves.expansion_minor


def test_customer_lifetime_value_example() -> None:
    assert customer_lifetime_value(5_000, 0.02) == pytest.approx(250_000)
    assert customer_lifetime_value(5_000, 0.0) == 300_000  # 60 months of ARPU
    assert customer_lifetime_value(5_000, 0.0, max_lifetime_periods=24) == 120_000
    assert customer_lifetime_value(5_000, 0.01) == 300_000  # 100 months, capped at 60
    assert customer_lifetime_value(None, 0.02) is None
    assert customer_lifetime_value(5_000, None) is None
    with pytest.raises(ValueError, match="between 0 and 1"):
        customer_lifetime_value(5_000, 1.5)
    with pytest.raises(ValueError, match="cap"):
        customer_lifetime_value(5_000, 0.1, max_lifetime_periods=0)


@given(
    st.floats(0, 1e7),
    st.floats(0, 1),
    st.floats(0, 1),
    st.floats(1, 240),
)
def test_clv_falls_as_churn_rises_and_respects_the_cap(
    arpu_minor: float, churn_a: float, churn_b: float, cap: float
) -> None:
    low, high = sorted((churn_a, churn_b))
    clv_low = customer_lifetime_value(arpu_minor, low, max_lifetime_periods=cap)
    clv_high = customer_lifetime_value(arpu_minor, high, max_lifetime_periods=cap)
    assert clv_low is not None
    assert clv_high is not None
    assert clv_high <= clv_low * (1 + 1e-12)
    assert arpu_minor * (1 - 1e-12) <= clv_low <= arpu_minor * cap * (1 + 1e-12)


# ---- retention -------------------------------------------------------------------------

JAN1, MAR31 = date(2025, 1, 1), date(2025, 3, 31)
LIFETIMES = [
    CustomerLifetime("a", date(2024, 6, 1)),  # kept
    CustomerLifetime("b", date(2024, 6, 1), date(2025, 2, 15)),  # churned
    CustomerLifetime("c", date(2024, 11, 1), JAN1),  # gone the day the period starts
    CustomerLifetime("d", date(2025, 2, 1)),  # new, kept
    CustomerLifetime("e", date(2025, 1, 10), date(2025, 3, 1)),  # new, lost in the period
    CustomerLifetime("f", date(2024, 1, 1), date(2024, 12, 1)),  # churned before...
    CustomerLifetime("f", date(2025, 3, 15)),  # ...and back: counts as acquired
    CustomerLifetime("g", date(2024, 5, 1), MAR31),  # churned on the last day
    CustomerLifetime("h", date(2024, 5, 1)),  # kept
]


def test_customer_counts_example() -> None:
    counts = customer_counts(LIFETIMES, JAN1, MAR31)
    # S = {a, b, g, h}, E = {a, d, f, h}, N = {d, e, f}, C = {b, g}
    assert counts == CustomerCounts(at_start=4, at_end=4, new=3, churned=2)
    assert counts.retained == 2
    assert customer_retention_rate(counts) == (4 - 3) / 4
    assert logo_churn_rate(counts) == 2 / 4  # e, won and lost inside, is not churn


def test_retention_and_churn_are_complements_without_new_customers() -> None:
    counts = CustomerCounts(at_start=10, at_end=8, new=0, churned=2)
    assert customer_retention_rate(counts) == 0.8
    assert logo_churn_rate(counts) == 0.2
    nobody = CustomerCounts(at_start=0, at_end=3, new=3, churned=0)
    assert customer_retention_rate(nobody) is None
    assert logo_churn_rate(nobody) is None


def test_inconsistent_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="more customers churned"):
        CustomerCounts(at_start=2, at_end=0, new=0, churned=3)
    with pytest.raises(ValueError, match="fewer customers at the end"):
        CustomerCounts(at_start=10, at_end=5, new=0, churned=2)
    with pytest.raises(ValueError, match="neither retained nor new"):
        CustomerCounts(at_start=10, at_end=12, new=1, churned=0)
    with pytest.raises(ValueError, match="must not be negative"):
        CustomerCounts(at_start=-1, at_end=0, new=0, churned=0)
    with pytest.raises(ValueError, match="end after it begins"):
        CustomerLifetime("a", JAN1, JAN1)
    with pytest.raises(ValueError, match="before it starts"):
        customer_counts(LIFETIMES, MAR31, JAN1)


lifetimes = st.lists(
    st.builds(
        lambda customer, began, length: CustomerLifetime(
            customer,
            DAY0 + timedelta(days=began),
            None if length is None else DAY0 + timedelta(days=began + length),
        ),
        CUSTOMERS,
        st.integers(0, 200),
        st.none() | st.integers(1, 200),
    ),
    max_size=15,
)


@given(lifetimes, st.integers(0, 200), st.integers(0, 200))
def test_crr_and_churn_complement_each_other_but_for_customers_won_and_lost(
    spans: list[CustomerLifetime], first: int, second: int
) -> None:
    start, end = (DAY0 + timedelta(days=d) for d in sorted((first, second)))
    counts = customer_counts(spans, start, end)
    crr, churn = customer_retention_rate(counts), logo_churn_rate(counts)
    if counts.at_start == 0:
        assert crr is None
        assert churn is None
        return
    assert crr is not None
    assert churn is not None
    assert 0 <= churn <= 1
    assert crr <= 1
    won_and_lost = counts.new - (counts.at_end - counts.retained)
    assert crr == pytest.approx(1 - churn - won_and_lost / counts.at_start)
    if counts.new == 0:
        assert crr + churn == pytest.approx(1)


@given(lifetimes, st.integers(0, 200), st.integers(0, 200))
def test_complement_holds_when_nobody_joins_in_the_period(
    spans: list[CustomerLifetime], first: int, second: int
) -> None:
    start, end = (DAY0 + timedelta(days=d) for d in sorted((first, second)))
    established = [s for s in spans if s.began <= start]
    counts = customer_counts(established, start, end)
    assert counts.new == 0
    crr, churn = customer_retention_rate(counts), logo_churn_rate(counts)
    if counts.at_start:
        assert crr is not None
        assert churn is not None
        assert crr + churn == pytest.approx(1)
        assert 0 <= crr <= 1


def test_customer_retention_cost() -> None:
    assert customer_retention_cost(1_000_000, 8) == 125_000.0
    assert customer_retention_cost(1_000_000, 0) is None
    counts = customer_counts(LIFETIMES, JAN1, MAR31)
    assert customer_retention_cost(50_000, counts.retained) == 25_000.0
    with pytest.raises(ValueError, match="must not be negative"):
        customer_retention_cost(-1, 3)


# ---- support ---------------------------------------------------------------------------


def _at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


TICKETS = [
    TicketTimes(_at(0), first_response_at=_at(1), solved_at=_at(5)),
    TicketTimes(_at(2), first_response_at=_at(2.5), solved_at=_at(24)),
    TicketTimes(_at(3)),  # never answered, still open
    TicketTimes(_at(25), first_response_at=_at(29), solved_at=_at(72)),
]


def test_ticket_volume_and_backlog_example() -> None:
    assert ticket_volume(TICKETS, _at(0), _at(24)) == 3
    assert ticket_volume(TICKETS, _at(24), _at(48)) == 1
    assert ticket_volume(TICKETS, _at(0), _at(0)) == 0
    assert backlog(TICKETS, _at(-1)) == 0
    assert backlog(TICKETS, _at(0)) == 1  # created at that very moment
    assert backlog(TICKETS, _at(5)) == 2  # the first was solved at that moment
    assert backlog(TICKETS, _at(26)) == 2  # the third and the fourth
    assert backlog(TICKETS, _at(100)) == 1
    with pytest.raises(ValueError, match="before it starts"):
        ticket_volume(TICKETS, _at(1), _at(0))


def test_response_and_resolution_medians_example() -> None:
    # First responses 1h, 30m, 4h; resolutions 5h, 22h, 47h.
    assert median_first_response_time(TICKETS) == timedelta(hours=1)
    assert median_resolution_time(TICKETS) == timedelta(hours=22)
    quick = TicketTimes(_at(30), solved_at=_at(31))  # makes four resolutions: 1h, 5h, 22h, 47h
    assert median_resolution_time([*TICKETS, quick]) == timedelta(hours=13, minutes=30)
    assert median_first_response_time([TicketTimes(_at(0))]) is None
    assert median_resolution_time([]) is None
    with pytest.raises(ValueError, match="before its creation"):
        TicketTimes(_at(2), solved_at=_at(1))


tickets = st.lists(
    st.builds(
        lambda created, response, solve: TicketTimes(
            _at(created),
            None if response is None else _at(created + response),
            None if solve is None else _at(created + solve),
        ),
        st.integers(0, 500),
        st.none() | st.integers(0, 50),
        st.none() | st.integers(0, 300),
    ),
    max_size=25,
)


@given(tickets, st.integers(-10, 900))
def test_backlog_is_what_came_in_minus_what_went_out(
    ticket_list: list[TicketTimes], hour: int
) -> None:
    at = _at(hour)
    open_now = backlog(ticket_list, at)
    created = sum(t.created_at <= at for t in ticket_list)
    solved = sum(t.solved_at is not None and t.solved_at <= at for t in ticket_list)
    assert open_now >= 0
    assert open_now == created - solved
    assert open_now <= len(ticket_list)


@given(tickets, st.integers(-10, 600), st.integers(-10, 600), st.integers(-10, 600))
def test_volume_adds_up_over_adjacent_periods(
    ticket_list: list[TicketTimes], a: int, b: int, c: int
) -> None:
    first, middle, last = (_at(h) for h in sorted((a, b, c)))
    whole = ticket_volume(ticket_list, first, last)
    assert whole == ticket_volume(ticket_list, first, middle) + ticket_volume(
        ticket_list, middle, last
    )


@given(tickets)
def test_medians_lie_between_the_extremes(ticket_list: list[TicketTimes]) -> None:
    waits = [t.solved_at - t.created_at for t in ticket_list if t.solved_at is not None]
    resolution = median_resolution_time(ticket_list)
    if not waits:
        assert resolution is None
        return
    assert resolution is not None
    assert min(waits) <= resolution <= max(waits)


# ---- adoption --------------------------------------------------------------------------


def test_product_adoption_example() -> None:
    assert product_adoption(30, 40) == 0.75
    assert product_adoption(45, 40) == 1.125  # more users than seats: not capped
    assert product_adoption(0, 0) is None
    with pytest.raises(ValueError, match="must not be negative"):
        product_adoption(-1, 10)


USAGE = [
    FeatureUsage("u1", "reports", 5),
    FeatureUsage("u2", "reports", 0),  # opened nothing: not a user of it
    FeatureUsage("u3", "export", 2),
    FeatureUsage("u5", "reports", 1),  # not in the population
]
POPULATION = {"u1", "u2", "u3", "u4"}
AVAILABLE = {"reports", "export", "dashboards", "api"}


def test_feature_adoption_breadth_and_depth_example() -> None:
    assert feature_adoption(USAGE, "reports", POPULATION) == 1 / 4
    assert feature_adoption(USAGE, "api", POPULATION) == 0.0
    assert feature_adoption(USAGE, "reports", set()) is None
    assert feature_breadth(USAGE, AVAILABLE) == 2 / 4
    assert feature_breadth(USAGE, set()) is None
    assert usage_depth(USAGE) == 8 / 3  # 8 events by u1, u3 and u5
    assert usage_depth(USAGE, "reports") == 3.0  # 6 events by u1 and u5
    assert usage_depth(USAGE, "api") is None
    with pytest.raises(ValueError, match="must not be negative"):
        FeatureUsage("u1", "reports", -1)


FEATURES = st.sampled_from(["reports", "export", "dashboards", "api", "sso"])
usage_records = st.lists(
    st.builds(FeatureUsage, CUSTOMERS, FEATURES, st.integers(0, 1_000)), max_size=20
)


@given(usage_records, FEATURES, st.sets(CUSTOMERS), st.sets(FEATURES))
def test_adoption_shares_and_depth(
    usage: list[FeatureUsage], feature: str, population: set[str], available: set[str]
) -> None:
    adopted = feature_adoption(usage, feature, population)
    assert (adopted is None) == (not population)
    assert adopted is None or 0 <= adopted <= 1
    breadth = feature_breadth(usage, available)
    assert (breadth is None) == (not available)
    assert breadth is None or 0 <= breadth <= 1
    depth = usage_depth(usage)
    active = {u.subject for u in usage if u.events > 0}
    if not active:
        assert depth is None
    else:
        assert depth is not None
        assert depth >= 1
        assert depth * len(active) == pytest.approx(sum(u.events for u in usage))


# ---- time to value ---------------------------------------------------------------------


def test_value_observation_from_timestamps() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    as_of = datetime(2025, 2, 1, tzinfo=UTC)
    reached = value_observation(start, datetime(2025, 1, 11, 12, tzinfo=UTC), as_of)
    assert reached == ValueObservation(10.5, reached=True)
    waiting = value_observation(start, None, as_of)
    assert waiting == ValueObservation(31.0, reached=False)
    not_known_yet = value_observation(start, datetime(2025, 3, 1, tzinfo=UTC), as_of)
    assert not_known_yet == ValueObservation(31.0, reached=False)
    with pytest.raises(ValueError, match="starts after"):
        value_observation(as_of, None, start)
    with pytest.raises(ValueError, match="before the start"):
        value_observation(as_of, start, as_of)
    with pytest.raises(ValueError, match="finite"):
        ValueObservation(float("nan"), reached=True)


def test_time_to_value_counts_the_not_yet_as_censored() -> None:
    observations = [
        ValueObservation(5, reached=True),  # S = 4/5
        ValueObservation(10, reached=True),  # S = 4/5 * 3/4 = 0.6
        ValueObservation(12, reached=False),  # still on the way: leaves the risk set
        ValueObservation(20, reached=True),  # S = 0.6 * 1/2 = 0.3: the median
        ValueObservation(30, reached=False),
    ]
    assert time_to_value(observations) == 20.0
    # Dropping the censored customers would have said 10 days.
    assert statistics.median(o.duration for o in observations if o.reached) == 10


def test_time_to_value_undefined_until_half_get_there() -> None:
    assert time_to_value([]) is None
    assert time_to_value([ValueObservation(3, reached=False)]) is None
    few = [ValueObservation(5, True), *(ValueObservation(d, False) for d in (6, 7, 8))]
    assert time_to_value(few) is None  # S never falls below 3/4
    assert time_to_value([ValueObservation(0, True), ValueObservation(4, True)]) == 0.0


durations = st.integers(0, 365).map(float)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 15).flatmap(
        lambda k: st.lists(durations, min_size=2 * k + 1, max_size=2 * k + 1)
    )
)
def test_km_median_is_the_plain_median_without_censoring(days: list[float]) -> None:
    observations = [ValueObservation(d, reached=True) for d in days]
    assert time_to_value(observations) == statistics.median(days)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(durations, st.booleans()), min_size=1, max_size=30))
def test_censoring_never_shortens_time_to_value(pairs: list[tuple[float, bool]]) -> None:
    observations = [ValueObservation(d, reached) for d, reached in pairs]
    median = time_to_value(observations)
    reached = sorted(d for d, r in pairs if r)
    if not reached:
        assert median is None
        return
    # Customers still on the way stay in the risk set, so the curve is never below the
    # one that ignores them: its median is never earlier than theirs (the lower median).
    if median is not None:
        assert median >= reached[(len(reached) - 1) // 2]
        assert median in reached
