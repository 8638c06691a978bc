"""Hand-built store rows for scoring and notification tests, dated relative to `AS_OF`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

from sqlmodel import Session

from store.models import (
    Account,
    Invoice,
    SentimentEntry,
    Subscription,
    SurveyResponse,
    Ticket,
    UsageSnapshot,
)

MECHANICS = Path(__file__).with_name("mechanics_scorecard.toml")
"""The scorecard tests of how scores are computed are written against (see its header)."""
AS_OF = date(2026, 3, 2)
END = datetime(2026, 3, 3, tzinfo=UTC)  # the first instant after AS_OF
_ids = count(1)


def ago(days: float) -> datetime:
    """An instant `days` before the end of `AS_OF` (0.5 is noon on `AS_OF`)."""
    return END - timedelta(days=days)


def later(days: float) -> datetime:
    """An instant `days` after the end of `AS_OF`: not known as of `AS_OF`."""
    return END + timedelta(days=days)


def _ext() -> str:
    return str(next(_ids))


def account(session: Session, name: str, **fields: Any) -> int:
    fields.setdefault("owner_email", f"owner-of-{name.lower().replace(' ', '-')}@example.com")
    row = Account(source="crm", external_id=_ext(), name=name, **fields)
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


def ticket(session: Session, account_id: int | None, created: datetime, **fields: Any) -> None:
    fields.setdefault("status", "open")
    fields.setdefault("updated_at", created)
    session.add(
        Ticket(
            source="helpdesk",
            external_id=_ext(),
            account_id=account_id,
            created_at=created,
            **fields,
        )
    )


def survey(session: Session, account_id: int, responded: datetime, score: int, **kw: Any) -> None:
    kw.setdefault("kind", "csat")
    kw.setdefault("scale_max", 1)
    session.add(
        SurveyResponse(
            source="helpdesk",
            external_id=_ext(),
            account_id=account_id,
            score=score,
            responded_at=responded,
            **kw,
        )
    )


def subscription(session: Session, account_id: int, status: str = "active", **fields: Any) -> None:
    fields.setdefault("started_at", ago(400))
    fields.setdefault("mrr_minor", 100_00)
    session.add(
        Subscription(
            source="billing", external_id=_ext(), account_id=account_id, status=status, **fields
        )
    )


def invoice(session: Session, account_id: int, created: datetime, **fields: Any) -> None:
    fields.setdefault("status", "paid")
    fields.setdefault("attempt_count", 1)
    fields.setdefault("amount_due_minor", 100_00)
    session.add(
        Invoice(
            source="billing",
            external_id=_ext(),
            account_id=account_id,
            created_at=created,
            **fields,
        )
    )


def usage(
    session: Session,
    account_id: int,
    week: date,
    active: int,
    seats: int | None = 20,
    recorded: datetime | None = None,
) -> None:
    recorded = recorded or datetime.combine(week + timedelta(days=7), datetime.min.time(), UTC)
    session.add(
        UsageSnapshot(
            source="usage",
            external_id=_ext(),
            account_id=account_id,
            period_start=week,
            active_users=active,
            licensed_seats=seats,
            recorded_at=recorded,
        )
    )


def weeks_back(n: int) -> date:
    """The Monday `n` weeks before `AS_OF` (itself a Monday); 0 is `AS_OF`'s week."""
    return AS_OF - timedelta(weeks=n)


def sentiment(
    session: Session, account_id: int, value: str, recorded: datetime, note: str = ""
) -> None:
    session.add(
        SentimentEntry(account_id=account_id, sentiment=value, note=note, recorded_at=recorded)
    )


def healthy(
    session: Session, account_id: int, *, usage_users: int = 16, recent_users: int | None = None
) -> None:
    """Steady data in every component: usual tickets, paid invoices, steady usage, green.

    `recent_users` replaces the active users of the latest 4 weeks.
    """
    for k in range(7):  # one ticket a month for 7 months
        ticket(session, account_id, ago(10 + 30 * k), status="solved", solved_at=ago(9 + 30 * k))
    survey(session, account_id, ago(20), 1)
    subscription(session, account_id)
    invoice(session, account_id, ago(15), paid_at=ago(15))
    for n in range(1, 13):
        users = recent_users if recent_users is not None and n <= 4 else usage_users
        usage(session, account_id, weeks_back(n), users)
    sentiment(session, account_id, "green", ago(10))
