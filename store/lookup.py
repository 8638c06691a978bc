"""Finding one account as a person names it, and what is said of it: shared read helpers.

The CLI, reports and the Slack commands all let a person name an account by its id, CRM
id, domain or exact name; they all find it here, the same way, with the same errors.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, or_
from sqlmodel import Session, col, select

from store.models import Account, SentimentEntry

__all__ = ["AccountNotFoundError", "driver_text", "find_account", "latest_sentiment"]


class AccountNotFoundError(LookupError):
    """No live account matches what the person typed."""


def find_account(session: Session, needle: str) -> Account:
    """The live account whose id, CRM id, domain or name is `needle` (name: case-insensitive)."""
    conditions: list[ColumnElement[bool]] = [
        col(Account.external_id) == needle,
        col(Account.domain) == needle.lower(),
        func.lower(col(Account.name)) == needle.lower(),
    ]
    if needle.isdigit():
        conditions.append(col(Account.id) == int(needle))
    matches = list(
        session.exec(
            select(Account).where(or_(*conditions), col(Account.deleted_at).is_(None))
        ).all()
    )
    if not matches:
        raise AccountNotFoundError(
            f"no account matches {needle!r}: use an id, CRM id, domain or exact name "
            "from `health-agent accounts`"
        )
    if len(matches) > 1:
        names = ", ".join(f"{a.name} (id {a.id})" for a in matches[:5])
        raise AccountNotFoundError(f"{needle!r} matches several accounts: {names}; use the id")
    return matches[0]


def latest_sentiment(session: Session, account_id: int) -> SentimentEntry | None:
    return session.exec(
        select(SentimentEntry)
        .where(col(SentimentEntry.account_id) == account_id)
        .order_by(col(SentimentEntry.recorded_at).desc())
        .limit(1)
    ).first()


def driver_text(driver: Any) -> str:
    if isinstance(driver, dict):
        return str(driver.get("text") or driver.get("label") or driver)
    return str(driver)
