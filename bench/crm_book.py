"""A HubSpot-only book of any size, for the rate-limited benchmark.

`generate_book` draws company names from a fixed list of about 1,200, so it cannot make a
book of 20,000 accounts; and the helpdesk, billing and usage records it renders are not
needed to measure a CRM sync. `crm_book` makes only what the HubSpot emulator serves: the
book's owners, `companies` companies (ids, names and domains unique, last changes spread
over the last year at millisecond resolution, some sharing a millisecond) and
`deals_per_company` closed-won deals each. The same arguments give the same book.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sandbox.gen_accounts import SEGMENTS, make_owners, make_timeline, rng
from sandbox.records import Book, Company, Deal

__all__ = ["crm_book"]


def crm_book(
    companies: int, *, deals_per_company: int = 0, seed: int = 7, today: date | None = None
) -> Book:
    """Owners, `companies` companies and their deals; every other collection is empty."""
    day = today or datetime.now(UTC).date()
    tl = make_timeline(day)
    teams, owners = make_owners(seed, tl)
    csms = [o for o in owners if not o.is_lead]
    r = rng(seed, "crm-book")
    latest = tl.now - timedelta(minutes=15)
    rows: list[Company] = []
    deals: list[Deal] = []
    company_id = 5_300_000_000
    deal_id = 12_800_000_000
    for i in range(companies):
        company_id += r.randint(3, 4000)
        segment = SEGMENTS[i % 3]
        created = tl.now - timedelta(days=r.randint(150, 1090))
        since = max(created, tl.now - timedelta(days=365))
        touched = since + timedelta(seconds=r.randint(0, int((latest - since).total_seconds())))
        if i % 8:  # whole seconds for one company in eight, so some share a millisecond
            touched += timedelta(milliseconds=r.randint(0, 999))
        employees = r.randint(10, 20_000)
        rows.append(
            Company(
                id=str(company_id),
                name=f"Company {i:05d}",
                domain=f"company-{i:05d}.test",
                owner_id=csms[i % len(csms)].id,
                lifecycle_stage="customer",
                segment=segment,
                industry="COMPUTER_SOFTWARE",
                employees=employees,
                annual_revenue=employees * 100_000,
                renewal_date=None,
                csm_sentiment=None,
                created_at=created,
                updated_at=touched,
            )
        )
        for n in range(deals_per_company):
            deal_id += r.randint(2, 900)
            close = min(created + timedelta(days=30 + 365 * n), latest)
            arr = r.randint(5, 500) * 1000
            deals.append(
                Deal(
                    id=str(deal_id),
                    company_id=str(company_id),
                    owner_id=csms[i % len(csms)].id,
                    name=f"Company {i:05d} - deal {n + 1}",
                    kind="newbusiness" if n == 0 else "existingbusiness",
                    stage="closedwon",
                    pipeline="default",
                    amount=arr,
                    arr=arr,
                    close_date=datetime.combine(close.date(), time(), UTC),
                    is_closed=True,
                    is_won=True,
                    created_at=created,
                    updated_at=max(created, touched - timedelta(seconds=r.randint(0, 86_400))),
                )
            )
    return Book(
        seed=seed,
        today=day,
        now=tl.now,
        teams=teams,
        owners=owners,
        companies=tuple(rows),
        deals=tuple(deals),
        organizations=(),
        zendesk_users=(),
        tickets=(),
        satisfaction_ratings=(),
        prices=(),
        coupons=(),
        customers=(),
        subscriptions=(),
        invoices=(),
        events=(),
        usage=(),
        sentiments=(),
    )
