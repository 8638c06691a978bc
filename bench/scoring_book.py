"""A generated book of any size for the scoring benchmark, as plain rows per table.

`book_rows` yields the rows of `accounts` accounts in batches, table by table, ready for a
bulk insert: accounts, tickets (about ten per account, skewed: a few accounts
have many), one subscription each (some past due, unpaid, paused or canceled), six months
of monthly invoices (failed ones for delinquent subscriptions and a few retried late),
NPS and CSAT survey answers for a third of the accounts, CSM sentiment for two in five, 52
weekly usage snapshots per account, as many rows of long-form usage metrics (the last 26
weeks of `logins`, and as many rows again of six `feature_*` metrics, a zero not being a
row) and about three traits per account (`contract_type`, with some accounts' earlier
value, `payment_method` and `plan`). A latent health per account ties these together, and
one account in ten declines over the last two months (fewer active users and logins, fewer
features, more tickets), so the scores spread over every band. Rows come in the order syncs
over time would have stored them (tickets oldest first, usage week by week), so the
tables' physical order is realistic, not grouped by account.

Timestamps are text in the store's own format (`YYYY-MM-DD HH:MM:SS.ffffff`, naive UTC),
which SQLite compares as text and PostgreSQL parses on COPY; dates are ISO text. The same
arguments give the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

__all__ = ["COLUMNS", "book_rows"]

COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": (
        "id", "source", "external_id", "name", "owner_email", "segment", "arr_minor",
        "currency", "created_at", "deleted_at",
    ),
    "tickets": (
        "source", "external_id", "account_ref", "account_id", "status", "priority",
        "satisfaction", "created_at", "updated_at", "solved_at", "deleted_at",
    ),
    "subscriptions": (
        "source", "external_id", "account_id", "status", "mrr_minor", "currency",
        "started_at", "canceled_at", "ended_at", "created_at",
    ),
    "invoices": (
        "source", "external_id", "account_id", "status", "amount_due_minor",
        "amount_remaining_minor", "currency", "attempt_count", "paid_at", "created_at",
    ),
    "survey_responses": (
        "source", "external_id", "account_id", "kind", "score", "scale_max", "responded_at",
    ),
    "sentiment_entries": ("account_id", "sentiment", "note", "origin", "recorded_at"),
    "usage_snapshots": (
        "source", "external_id", "account_id", "period_start", "active_users",
        "licensed_seats", "recorded_at",
    ),
    "usage_metrics": (
        "source", "external_id", "account_id", "day", "period_days", "metric", "value",
        "recorded_at",
    ),
    "account_traits": ("account_id", "name", "kind", "text", "source", "seen_at"),
}  # fmt: skip
"""The columns each table's rows fill, in order; parents before children."""

Row = tuple[str | int | float | None, ...]
_Tables = dict[str, list[Row]]

TICKETS_PER_ACCOUNT = 10
WEEKS = 52
METRIC_WEEKS = 26
"""Weeks of long-form usage metrics: a row of `logins` each, and as many `feature_*` rows
in all, so the long-form table holds as many rows as the weekly snapshots."""
FEATURES = (
    "feature_reports",
    "feature_dashboards",
    "feature_exports",
    "feature_integrations",
    "feature_automations",
    "feature_api",
)
_EVENTS_PER_USER = (2.0, 3.0, 0.8, 1.5, 4.0, 20.0)
_CONTRACTS = ("monthly", "annual", "two_year")
_PAYMENT_METHODS = ("card", "invoice", "direct_debit")
_PLANS = {"SMB": "starter", "Mid-Market": "growth", "Enterprise": "enterprise"}
INVOICE_MONTHS = 6
_SEGMENTS = (("SMB", 0.6, 5, 30), ("Mid-Market", 0.3, 30, 200), ("Enterprise", 0.1, 200, 2000))
_PRIORITIES = (None, "low", "normal", "high", "urgent")
_PRIORITY_WEIGHTS = (40, 15, 32, 10, 3)
_STATES = ("active", "trialing", "past_due", "unpaid", "paused", "incomplete", "canceled")
_STATE_WEIGHTS = (84, 3, 4, 1, 1, 1, 6)
_STORED_BY = {
    "invoices": "created_at",
    "tickets": "created_at",
    "survey_responses": "responded_at",
    "sentiment_entries": "recorded_at",
    "account_traits": "seen_at",
}
"""The tables a sync fills over time, and the column that orders them."""
_NOTES = ("", "renewal on track", "exec sponsor left", "asked about pricing", "expanding")


class _Clock:
    """Instants counted in minutes before the end of `as_of`, rendered once each."""

    def __init__(self, as_of: date) -> None:
        self.end = datetime.combine(as_of + timedelta(days=1), time())
        self._text: dict[int, str] = {}

    def stamp(self, minutes_ago: int) -> str:
        text = self._text.get(minutes_ago)
        if text is None:
            instant = self.end - timedelta(minutes=minutes_ago)
            text = self._text[minutes_ago] = f"{instant.isoformat(' ')}.000000"
        return text


@dataclass(frozen=True)
class _Account:
    """The hidden truth one account's rows are drawn from."""

    id: int
    segment: str
    seats: int
    health: float
    """0 (about to leave) to 1 (thriving)."""
    declining: bool
    age_days: int


def _accounts(accounts: int, seed: int) -> list[_Account]:
    r = random.Random(f"{seed}-accounts")
    rows = []
    for i in range(1, accounts + 1):
        pick = r.random()
        for segment, share, low, high in _SEGMENTS:  # noqa: B007  # the loop picks one
            pick -= share
            if pick < 0:
                break
        seats = int(low * (high / low) ** r.random())
        declining = r.random() < 0.1
        health = r.betavariate(5, 2) * (0.6 if declining else 1.0)
        rows.append(_Account(i, segment, seats, health, declining, r.randint(100, 1800)))
    return rows


def _ticket_counts(book: list[_Account], seed: int) -> list[int]:
    """About `TICKETS_PER_ACCOUNT` each on average, skewed by a log-normal draw and size;
    largest remainders make the total exact."""
    r = random.Random(f"{seed}-ticket-load")
    scale = {"SMB": 1.0, "Mid-Market": 2.5, "Enterprise": 6.0}
    weights = [r.lognormvariate(0, 1) * scale[a.segment] * (1.5 - a.health) for a in book]
    total, target = sum(weights), TICKETS_PER_ACCOUNT * len(book)
    exact = [w * target / total for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(book)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: target - sum(counts)]:
        counts[i] += 1
    return counts


def _tickets(r: random.Random, clock: _Clock, a: _Account, n: int) -> list[Row]:
    rows: list[Row] = []
    for k in range(n):
        surge = a.declining and r.random() < 0.4
        created = r.randint(0, 30 * 1440) if surge else r.randint(0, 365 * 1440)
        if created < 14 * 1440 and r.random() < 0.5:
            status, solved = r.choice(("new", "open", "pending")), None
        elif r.random() < 0.05:
            status, solved = "open", None
        else:
            status, solved = r.choice(("solved", "closed")), created - r.randint(60, 10 * 1440)
        solved = None if solved is None else max(solved, 0)
        updated = solved if solved is not None else max(created - r.randint(0, 600), 0)
        rated = solved is not None and r.random() < 0.25
        satisfaction = ("good" if r.random() < 0.5 + a.health / 2 else "bad") if rated else None
        if solved is not None and status == "closed" and r.random() < 0.3:
            solved = None  # closed without a solved time: solved at its last update
        matched = r.random() >= 0.01
        rows.append(
            (
                "helpdesk",
                f"t{a.id:07d}-{k:05d}",
                f"org-{a.id}",
                a.id if matched else None,
                status,
                r.choices(_PRIORITIES, _PRIORITY_WEIGHTS)[0],
                satisfaction,
                clock.stamp(created),
                clock.stamp(updated),
                None if solved is None else clock.stamp(solved),
                clock.stamp(r.randint(0, 60 * 1440)) if r.random() < 0.005 else None,
            )
        )
    return rows


def _subscription(r: random.Random, clock: _Clock, a: _Account) -> tuple[Row, str, int]:
    """The account's subscription row, its status and when it started (minutes ago)."""
    status = r.choices(_STATES, _STATE_WEIGHTS)[0]
    if status == "active" and a.health < 0.3 and r.random() < 0.3:
        status = "past_due"
    started = r.randint(20, 90) * 1440 if r.random() < 0.05 else (a.age_days - 5) * 1440
    canceled: int | None = None
    ended: int | None = None
    if status == "canceled":  # ended after it started; canceled up to a month before
        ended = r.randint(1, min(300, started // 1440 - 1)) * 1440
        canceled = min(ended + r.randint(0, 30) * 1440, started)
    mrr = a.seats * 15_00
    row = (
        "billing",
        f"sub-{a.id:07d}",
        a.id,
        status,
        mrr,
        "USD",
        clock.stamp(started),
        None if canceled is None else clock.stamp(canceled),
        None if ended is None else clock.stamp(ended),
        clock.stamp(started),
    )
    return row, status, started


def _invoices(r: random.Random, clock: _Clock, a: _Account, status: str, started: int) -> list[Row]:
    """Monthly invoices of the last `INVOICE_MONTHS` months since the subscription started;
    a delinquent subscription's latest ones are open after failed attempts."""
    if status == "trialing":
        return []
    rows: list[Row] = []
    due = a.seats * 15_00
    for month in range(INVOICE_MONTHS):
        created = (month * 30 + r.randint(1, 5)) * 1440
        if created >= started:
            continue
        state, attempts, remaining = "paid", 1, 0
        paid: int | None = created - 60
        if status in ("past_due", "unpaid") and month < (1 if status == "past_due" else 2):
            state, attempts, paid, remaining = "open", r.randint(2, 4), None, due
        elif month < 2 and r.random() < 0.02:  # retried: paid days later, or still open
            attempts, paid = r.randint(2, 3), created - r.randint(3, 10) * 1440
            if paid < 0:
                state, paid, remaining = "open", None, due
        elif r.random() < 0.005:
            state, attempts, paid, remaining = "void", 1, None, due
        rows.append(
            (
                "billing",
                f"in-{a.id:07d}-{month}",
                a.id,
                state,
                due,
                remaining,
                "USD",
                attempts,
                None if paid is None else clock.stamp(paid),
                clock.stamp(created),
            )
        )
    return rows


def _surveys(r: random.Random, clock: _Clock, a: _Account) -> list[Row]:
    rows: list[Row] = []
    if r.random() < 0.35:
        for k in range(r.randint(1, 8)):
            five = r.random() < 0.7
            good = r.random() < 0.4 + a.health * 0.6
            score = (r.randint(4, 5) if good else r.randint(1, 3)) if five else int(good)
            when = clock.stamp(r.randint(0, 180 * 1440))
            scale = 5 if five else 1
            rows.append(("helpdesk", f"cs-{a.id:07d}-{k}", a.id, "csat", score, scale, when))
    if r.random() < 0.2:
        for k in range(r.randint(1, 2)):
            score = min(10, int(a.health * 11 + r.uniform(-2, 2)))
            when = clock.stamp(r.randint(0, 365 * 1440))
            rows.append(("survey", f"nps-{a.id:07d}-{k}", a.id, "nps", max(score, 0), 10, when))
    return rows


def _sentiments(r: random.Random, clock: _Clock, a: _Account) -> list[Row]:
    if r.random() >= 0.4:
        return []
    rows: list[Row] = []
    for _ in range(r.randint(1, 4)):
        mood = a.health + r.uniform(-0.2, 0.2)
        value = "green" if mood > 0.6 else "yellow" if mood > 0.35 else "red"
        when = clock.stamp(r.randint(0, 240 * 1440))
        rows.append((a.id, value, r.choice(_NOTES), "cli", when))
    return rows


def _usage(r: random.Random, week: int, start: str, recorded: str, a: _Account) -> Row:
    """One week's snapshot (`week` counts from the oldest); a declining account loses half
    its users over the last eight weeks."""
    left = WEEKS - 1 - week  # weeks before the latest
    fade = 1 - 0.5 * (8 - left) / 8 if a.declining and left < 8 else 1.0
    base = a.seats * (0.25 + 0.7 * a.health)
    active = max(0, min(a.seats, round(base * fade * r.uniform(0.85, 1.15))))
    seats = None if a.id % 20 == 0 else a.seats
    return ("usage", f"u{a.id:07d}-{week:02d}", a.id, start, active, seats, recorded)


def _weeks(as_of: date, clock: _Clock) -> list[tuple[str, str]]:
    """`(period start, recorded at)` of the `WEEKS` weeks before `as_of`'s week, oldest
    first, each recorded at 02:00 on the day after it ends."""
    monday = as_of - timedelta(days=as_of.weekday())
    starts = [monday - timedelta(weeks=WEEKS - k) for k in range(WEEKS)]
    end = datetime.combine(as_of + timedelta(days=1), time())
    recorded = [datetime.combine(s + timedelta(days=7), time(2)) for s in starts]
    return [
        (s.isoformat(), clock.stamp(int((end - t).total_seconds() // 60)))
        for s, t in zip(starts, recorded, strict=True)
    ]


def _feature_weeks(r: random.Random, a: _Account) -> bytes:
    """Which features the account used each of the last `METRIC_WEEKS` weeks (a bit per
    feature of `FEATURES`, a byte per week, oldest first): `METRIC_WEEKS` feature-weeks in
    all, among the one to six features it uses (more when healthy); a declining account
    keeps only its main feature over the last eight weeks."""
    breadth = max(1, min(len(FEATURES), round(1 + a.health * 5 + r.uniform(-1, 1))))
    used = sorted(r.sample(range(len(FEATURES)), breadth))
    slots = [
        (week, f)
        for week in range(METRIC_WEEKS)
        for f in (used[:1] if a.declining and week >= METRIC_WEEKS - 8 else used)
    ]
    masks = bytearray(METRIC_WEEKS)
    for week, f in r.sample(slots, METRIC_WEEKS):
        masks[week] |= 1 << f
    return bytes(masks)


def _metrics(
    r: random.Random, week: int, start: str, recorded: str, a: _Account, mask: int
) -> list[Row]:
    """One week's long-form rows of the account (`week` counts from the oldest of the
    `METRIC_WEEKS`): its logins, and the events of each feature it used that week."""
    left = METRIC_WEEKS - 1 - week
    fade = 1 - 0.5 * (8 - left) / 8 if a.declining and left < 8 else 1.0
    users = a.seats * (0.25 + 0.7 * a.health) * fade
    key = f"m{a.id:07d}-{week:02d}"
    logins = float(round(users * 3 * r.uniform(0.8, 1.2)))
    rows: list[Row] = [("product", f"{key}-logins", a.id, start, 7, "logins", logins, recorded)]
    for f, feature in enumerate(FEATURES):
        if mask >> f & 1:
            events = float(max(1, round(users * _EVENTS_PER_USER[f] * r.uniform(0.5, 1.5))))
            rows.append(("product", f"{key}-{feature}", a.id, start, 7, feature, events, recorded))
    return rows


def _traits(r: random.Random, clock: _Clock, a: _Account) -> list[Row]:
    """The account's `contract_type` (one in five changed it since it was created, and
    fragile accounts hold monthly contracts more), `payment_method` and `plan`, each seen
    first when the account was created."""
    created = a.age_days * 1440
    contract = r.choices(_CONTRACTS, (1.6 - a.health, 1.0, 0.3 + a.health * 0.4))[0]
    rows: list[Row] = []
    if r.random() < 0.2:
        earlier = r.choice([c for c in _CONTRACTS if c != contract])
        rows.append((a.id, "contract_type", "category", earlier, "crm", clock.stamp(created)))
        created = r.randint(1, a.age_days - 1) * 1440
    rows.append((a.id, "contract_type", "category", contract, "crm", clock.stamp(created)))
    method = r.choices(_PAYMENT_METHODS, (5, 3 if a.segment == "SMB" else 6, 2))[0]
    first = clock.stamp(a.age_days * 1440)
    rows.append((a.id, "payment_method", "category", method, "crm", first))
    rows.append((a.id, "plan", "category", _PLANS[a.segment], "crm", first))
    return rows


def _account_row(r: random.Random, clock: _Clock, a: _Account) -> Row:
    deleted = clock.stamp(r.randint(1, 300) * 1440) if r.random() < 0.01 else None
    return (
        a.id,
        "crm",
        f"acc-{a.id:07d}",
        f"Account {a.id:07d}",
        f"csm{a.id % 150:03d}@bench.test",
        a.segment,
        a.seats * 15_00 * 12,
        "USD",
        clock.stamp(a.age_days * 1440),
        deleted,
    )


def _batches(table: str, rows: list[Row], size: int = 20_000) -> Iterator[tuple[str, list[Row]]]:
    for start in range(0, len(rows), size):
        yield table, rows[start : start + size]


def _by_time(rows: list[Row], column: str, table: str) -> list[Row]:
    """Rows in the order a sync would have stored them: oldest first."""
    at = COLUMNS[table].index(column)
    return sorted(rows, key=lambda row: str(row[at]))


def book_rows(accounts: int, as_of: date, *, seed: int = 7) -> Iterator[tuple[str, list[Row]]]:
    """The book's rows as `(table, batch)`, parents first; tickets, invoices, survey answers,
    sentiment and traits oldest first and usage week by week, as syncs over time store
    them."""
    clock = _Clock(as_of)
    book = _accounts(accounts, seed)
    tickets = _ticket_counts(book, seed)
    r = random.Random(f"{seed}-rows")
    weekly = ("usage_snapshots", "usage_metrics")
    rows: _Tables = {table: [] for table in COLUMNS if table not in weekly}
    for a in book:
        rows["accounts"].append(_account_row(r, clock, a))
        subscription, status, started = _subscription(r, clock, a)
        rows["subscriptions"].append(subscription)
        rows["invoices"] += _invoices(r, clock, a, status, started)
        rows["tickets"] += _tickets(r, clock, a, tickets[a.id - 1])
        rows["survey_responses"] += _surveys(r, clock, a)
        rows["sentiment_entries"] += _sentiments(r, clock, a)
        rows["account_traits"] += _traits(r, clock, a)
    yield from _batches("accounts", rows.pop("accounts"))
    yield from _batches("subscriptions", rows.pop("subscriptions"))
    for table, column in _STORED_BY.items():
        yield from _batches(table, _by_time(rows.pop(table), column, table))
    weeks = _weeks(as_of, clock)
    for week, (start, recorded) in enumerate(weeks):
        yield "usage_snapshots", [_usage(r, week, start, recorded, a) for a in book]
    m = random.Random(f"{seed}-metrics")
    features = [_feature_weeks(m, a) for a in book]
    for week, (start, recorded) in enumerate(weeks[-METRIC_WEEKS:]):
        batch: list[Row] = []
        for a, masks in zip(book, features, strict=True):
            batch += _metrics(m, week, start, recorded, a, masks[week])
        yield from _batches("usage_metrics", batch)
