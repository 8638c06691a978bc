"""The book of business is deterministic, roughly the right size, and tells its stories."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sandbox.book import Book, generate_book
from sandbox.usage_csv import USAGE_CSV_HEADER, usage_csv_text, write_usage_csv
from tests.sandbox.conftest import TODAY


def _org(book: Book, company_id: str) -> int:
    return next(o.id for o in book.organizations if o.company_id == company_id)


def _weekly_tickets(book: Book, company_id: str, weeks: int) -> list[tuple[int, int]]:
    """(tickets, urgent tickets) per complete week, oldest first, for the last `weeks`."""
    org = _org(book, company_id)
    monday = book.today - timedelta(days=book.today.weekday())
    counts = [[0, 0] for _ in range(weeks)]
    for t in book.tickets:
        if t.organization_id != org:
            continue
        back = (monday - t.created_at.date()).days
        if 0 < back <= 7 * weeks:
            slot = weeks - 1 - (back - 1) // 7
            counts[slot][0] += 1
            counts[slot][1] += t.priority == "urgent"
    return [(n, u) for n, u in counts]


def test_same_seed_and_day_give_the_same_book(book: Book) -> None:
    again = generate_book(seed=7, accounts=300, today=TODAY)
    assert again == book
    assert usage_csv_text(again) == usage_csv_text(book)
    other = generate_book(seed=8, accounts=300, today=TODAY)
    assert other.companies != book.companies


def test_generation_is_fast() -> None:
    started = time.process_time()  # CPU time: other processes on the machine do not count
    generate_book(seed=11, accounts=300, today=TODAY)
    assert time.process_time() - started < 2.5


def test_counts_are_roughly_right(book: Book) -> None:
    assert len(book.teams) == 3
    assert len(book.owners) == 15
    assert sum(o.is_lead for o in book.owners) == 3
    owned = Counter(c.owner_id for c in book.active_companies())
    leads = {o.id for o in book.owners if o.is_lead}
    assert not leads & set(owned)
    assert len(owned) == 12
    assert all(20 <= n <= 30 for n in owned.values())
    assert len(book.active_companies()) == 300
    assert sum(c.archived_at is not None for c in book.companies) == 2
    assert len({c.domain for c in book.companies}) == len(book.companies)
    assert all(o.email.endswith("@example-cs.test") for o in book.owners)
    assert 5_000 < len(book.tickets) < 25_000
    assert len(book.usage) > 300 * 40
    assert 0.3 < len({s.company_id for s in book.sentiments}) / 300 < 0.5


def test_cross_system_ids_line_up(book: Book) -> None:
    companies = {c.id for c in book.active_companies()}
    assert all(d.company_id in companies for d in book.deals)
    orgs = [o for o in book.organizations if o.company_id]
    assert len(book.organizations) - len(orgs) in (3, 4)
    without_external = [o for o in orgs if o.external_id is None]
    assert 0.05 < len(without_external) / len(orgs) < 0.16
    assert all(o.domain_names for o in without_external)
    email_only = [c for c in book.customers if c.company_id and c.crm_account_id is None]
    assert 0.05 < len(email_only) / 300 < 0.16
    statuses = Counter(s.status for s in book.subscriptions)
    assert statuses["active"] > 200
    assert statuses["trialing"]
    assert statuses["canceled"]
    assert statuses["past_due"]
    assert any(c.coupon_id for c in book.subscriptions)
    assert {p.interval for p in book.prices} == {"month", "year"}
    assert {t.status for t in book.tickets} >= {
        "new",
        "open",
        "pending",
        "hold",
        "solved",
        "closed",
        "deleted",
    }
    assert {t.priority for t in book.tickets} == {"urgent", "high", "normal", "low", None}
    assert all(u.week_start.weekday() == 0 for u in book.usage)


def test_every_time_is_in_the_past_of_the_book(book: Book) -> None:
    latest = book.now - timedelta(minutes=10)
    assert max(t.updated_at for t in book.tickets) <= latest
    assert max(e.created for e in book.events) <= latest
    assert max(c.updated_at for c in book.companies) <= latest
    assert max(d.updated_at for d in book.deals) <= latest


def test_stories_are_planted(book: Book) -> None:
    assert set(book.stories) == {
        "churn_risk",
        "churned",
        "payment_failed",
        "champion_red",
        "quiet_healthy",
    }
    assert set(book.story_descriptions) == set(book.stories)
    assert all(cid in {o.external_id for o in book.organizations} for cid in book.stories.values())
    assert all(cid in {c.crm_account_id for c in book.customers} for cid in book.stories.values())


def test_churn_risk_declines_before_its_renewal(book: Book) -> None:
    cid = book.stories["churn_risk"]
    usage = [u.active_users for u in book.usage if u.company_id == cid]
    assert all(a >= b - 2 for a, b in zip(usage[-10:], usage[-9:], strict=False))
    assert usage[-1] < 0.6 * usage[-11]
    assert usage[-4] > 0.75 * usage[-11]  # still healthy three weeks ago
    weeks = _weekly_tickets(book, cid, 6)
    assert [n for n, _ in weeks] == [1, 2, 3, 4, 6, 8]
    assert sum(u for _, u in weeks[-3:]) >= 5
    renewal = book.company(cid).renewal_date
    assert renewal is not None
    assert (renewal - book.today).days == 45
    sub = next(
        s
        for s in book.subscriptions
        if s.customer_id in {c.id for c in book.customers if c.company_id == cid}
    )
    assert sub.status == "active"


def test_churned_account_canceled_four_months_ago(book: Book) -> None:
    cid = book.stories["churned"]
    customer = next(c for c in book.customers if c.company_id == cid)
    sub = next(s for s in book.subscriptions if s.customer_id == customer.id)
    assert sub.status == "canceled"
    assert sub.canceled_at is not None
    assert 115 <= (book.now - sub.canceled_at).days <= 121
    assert any(
        e.type == "customer.subscription.deleted" and e.object_id == sub.id for e in book.events
    )
    assert any(d.company_id == cid and d.stage == "closedlost" for d in book.deals)


def test_payment_failed_in_the_last_five_days(book: Book) -> None:
    cid = book.stories["payment_failed"]
    customer = next(c for c in book.customers if c.company_id == cid)
    latest = max(
        (i for i in book.invoices if i.customer_id == customer.id), key=lambda i: i.created
    )
    assert latest.status == "open"
    assert latest.attempt_count == 2
    assert (book.now - latest.created) <= timedelta(days=5)
    sub = next(s for s in book.subscriptions if s.customer_id == customer.id)
    assert sub.status == "past_due"
    assert customer.delinquent
    failures = [
        e for e in book.events if e.type == "invoice.payment_failed" and e.object_id == latest.id
    ]
    assert len(failures) == 2
    older = [i for i in book.invoices if i.customer_id == customer.id and i.id != latest.id]
    assert older
    assert all(i.status == "paid" and i.attempt_count == 1 for i in older)


def test_champion_red_and_quiet_healthy(book: Book) -> None:
    red = [s for s in book.sentiments if s.company_id == book.stories["champion_red"]]
    assert [s.sentiment for s in red] == ["green", "red"]
    assert "champion left" in red[-1].note.lower()
    assert (book.now - red[-1].recorded_at).days <= 3
    assert (book.now - red[0].recorded_at).days >= 21
    quiet = book.stories["quiet_healthy"]
    assert [s.sentiment for s in book.sentiments if s.company_id == quiet] == ["green"]
    assert sum(n for n, _ in _weekly_tickets(book, quiet, 12)) <= 4
    usage = [u.active_users for u in book.usage if u.company_id == quiet][-12:]
    assert max(usage) - min(usage) <= 3


def test_usage_csv(book: Book, tmp_path: Path) -> None:
    path = write_usage_csv(book, tmp_path / "out" / "usage.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(USAGE_CSV_HEADER)
    assert len(lines) == len(book.usage) + 1
    first = lines[1].split(",")
    assert first[0] in {c.id for c in book.companies}
    assert first[1].endswith(".test")
    assert path.read_bytes() == usage_csv_text(book).encode()
