"""The sliding-window limiter and the fault switchboard."""

from __future__ import annotations

from sandbox.ratelimit import Budget, Faults, Limits, RateLimiter, retry_after_header


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_with_time_scale() -> None:
    clock = _Clock()
    limiter = RateLimiter(Limits({"incremental": Budget(10, 60)}, time_scale=60), clock)
    assert all(limiter.hit("incremental").allowed for _ in range(10))
    refused = limiter.hit("incremental")
    assert not refused.allowed
    assert refused.budget == "incremental"
    assert 0 < refused.retry_after_s <= 1.0
    assert retry_after_header(refused.retry_after_s) == "1"
    clock.now += 1.0
    allowed = limiter.hit("incremental")
    assert allowed.allowed
    assert allowed.remaining == 9
    assert allowed.window_s == 1.0


def test_every_named_budget_counts_and_unknown_ones_are_free() -> None:
    clock = _Clock()
    limiter = RateLimiter(Limits({"default": Budget(5, 60), "incremental": Budget(1, 60)}), clock)
    assert limiter.hit("default", "incremental").allowed
    refused = limiter.hit("default", "incremental")
    assert not refused.allowed
    assert refused.budget == "incremental"
    decision = limiter.hit("default", "search")
    assert decision.allowed
    assert decision.remaining == 3
    assert limiter.hit("nothing").allowed
    assert limiter.hit("nothing").limit is None
    limiter.reset()
    assert limiter.hit("default", "incremental").allowed


def test_vendor_defaults() -> None:
    assert Limits.vendor("zendesk").budgets["incremental"] == Budget(10, 60.0)
    assert Limits.vendor("hubspot").budgets["search"].limit == 5
    assert Limits.unlimited().budgets == {}


def test_faults_count_down_and_match_prefixes() -> None:
    faults = Faults()
    faults.fail("/v1/events", status=500, times=2)
    assert faults.take("/v1/customers") is None
    assert [
        f.status if f else None
        for f in (faults.take("/v1/events?x"), faults.take("/v1/events"), faults.take("/v1/events"))
    ] == [500, 500, None]
    faults.malform("tickets")
    assert faults.malformed("tickets", "42") == "42"
    faults.malform("tickets", "7")
    assert faults.malformed("tickets", "42") == "7"
    assert faults.malformed("events", "1") is None
    faults.clear()
    assert faults.malformed("tickets", "42") is None
