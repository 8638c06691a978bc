"""Rate limits and injected faults for the vendor emulators.

A `Limits` holds the named budgets of one vendor (`Budget(limit, window_s)`: at most
`limit` requests in any sliding window of `window_s` seconds), a `time_scale` that
compresses every window (with `time_scale=60`, Zendesk's 10 requests per minute become 10
per second), and a `Faults` switchboard. Budgets left out of a `Limits` are not enforced,
so a test can set one tiny budget and provoke a 429 deterministically:

    limits = Limits(budgets={"incremental": Budget(1, 60)})

`Faults` makes the next N requests to a path fail with a given status, or serves one
malformed record in a stream so that quarantine can be tested. It is thread-safe: a test
may arm it while the emulator serves from another thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "HUBSPOT_BUDGETS",
    "STRIPE_BUDGETS",
    "VENDOR_BUDGETS",
    "ZENDESK_BUDGETS",
    "Budget",
    "Decision",
    "Fault",
    "Faults",
    "Limits",
    "RateLimiter",
    "retry_after_header",
]


@dataclass(frozen=True)
class Budget:
    """At most `limit` requests in any window of `window_s` seconds; `policy` names it."""

    limit: int
    window_s: float
    policy: str = ""


HUBSPOT_BUDGETS: Final[Mapping[str, Budget]] = {
    # Free/Starter apps: 100 per 10 s rolling; Pro/Enterprise have 190. Search: 5 per second.
    "default": Budget(100, 10.0, "TEN_SECONDLY_ROLLING"),
    "search": Budget(5, 1.0, "SECONDLY"),
}
ZENDESK_BUDGETS: Final[Mapping[str, Budget]] = {
    # Support Professional: 400 per minute; incremental exports 10 per minute.
    "default": Budget(400, 60.0),
    "incremental": Budget(10, 60.0),
}
STRIPE_BUDGETS: Final[Mapping[str, Budget]] = {
    # Test mode: 25 read requests per second.
    "default": Budget(25, 1.0),
}
VENDOR_BUDGETS: Final[Mapping[str, Mapping[str, Budget]]] = {
    "hubspot": HUBSPOT_BUDGETS,
    "zendesk": ZENDESK_BUDGETS,
    "stripe": STRIPE_BUDGETS,
}


@dataclass(frozen=True)
class Fault:
    """An injected failure: answer `status` (429 carries `retry_after_s`)."""

    status: int
    retry_after_s: float = 1.0


class Faults:
    """Failures and malformed records to inject, armed by tests or a demo."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[tuple[str, Fault, list[int]]] = []
        self._malformed: dict[str, str | None] = {}

    def fail(
        self, path: str, *, status: int = 500, times: int = 1, retry_after_s: float = 1.0
    ) -> None:
        """Make the next `times` requests whose path starts with `path` answer `status`.

        `path` is relative to the vendor's base URL, e.g. `/crm/v3/objects/companies/search`.
        """
        with self._lock:
            self._failures.append((path, Fault(status, retry_after_s), [times]))

    def take(self, path: str) -> Fault | None:
        """The fault for a request to `path`, if one is armed; consumes one occurrence."""
        with self._lock:
            for prefix, fault, left in self._failures:
                if left[0] > 0 and path.startswith(prefix):
                    left[0] -= 1
                    return fault
        return None

    def malform(self, stream: str, record_id: str | None = None) -> None:
        """Serve record `record_id` of `stream` (default: the stream's first) in a broken shape.

        Streams: hubspot `owners`, `companies`, `deals`; zendesk `tickets`, `organizations`,
        `satisfaction_ratings`; stripe `customers`, `subscriptions`, `invoices`, `events`.
        """
        with self._lock:
            self._malformed[stream] = record_id

    def malformed(self, stream: str, first_id: str) -> str | None:
        """The id of the record of `stream` to break, or None when none is armed."""
        with self._lock:
            if stream not in self._malformed:
                return None
            return self._malformed[stream] or first_id

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._failures.clear()
            self._malformed.clear()


@dataclass
class Limits:
    """The budgets an emulator enforces, how fast its clock runs, and its faults."""

    budgets: Mapping[str, Budget] = field(default_factory=dict)
    time_scale: float = 1.0
    faults: Faults = field(default_factory=Faults)

    @classmethod
    def vendor(cls, name: str, *, time_scale: float = 1.0, faults: Faults | None = None) -> Limits:
        """The vendor's real default budgets (`hubspot`, `zendesk` or `stripe`)."""
        return cls(dict(VENDOR_BUDGETS[name]), time_scale, faults or Faults())

    @classmethod
    def unlimited(cls, faults: Faults | None = None) -> Limits:
        """No budget enforced (faults still apply)."""
        return cls({}, 1.0, faults or Faults())


@dataclass(frozen=True)
class Decision:
    """The limiter's answer for one request, for the headers of the response."""

    allowed: bool
    budget: str | None = None
    limit: int | None = None
    remaining: int | None = None
    window_s: float | None = None
    retry_after_s: float = 0.0
    policy: str = ""


def retry_after_header(seconds: float) -> str:
    """Retry-After as whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class RateLimiter:
    """Sliding-window counters for the budgets of one `Limits`."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def _window(self, budget: Budget) -> float:
        return budget.window_s / self.limits.time_scale

    def hit(self, *names: str) -> Decision:
        """Count one request against every named budget, unless one of them is exhausted.

        The decision describes the first budget that refused or, when allowed, the first
        enforced budget in `names` (the one whose headers the vendor reports).
        """
        now = self._clock()
        with self._lock:
            enforced = [(n, self.limits.budgets[n]) for n in names if n in self.limits.budgets]
            for name, budget in enforced:
                hits = self._hits.setdefault(name, deque())
                window = self._window(budget)
                while hits and hits[0] <= now - window:
                    hits.popleft()
                if len(hits) >= budget.limit:
                    wait = hits[0] + window - now
                    return Decision(False, name, budget.limit, 0, window, wait, budget.policy)
            for name, _ in enforced:
                self._hits[name].append(now)
            if not enforced:
                return Decision(True)
            name, budget = enforced[0]
            left = budget.limit - len(self._hits[name])
            return Decision(
                True, name, budget.limit, left, self._window(budget), 0.0, budget.policy
            )

    def reset(self) -> None:
        """Forget every counted request."""
        with self._lock:
            self._hits.clear()
