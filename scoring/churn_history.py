"""When each account was a customer and when it churned, read from billing.

The store keeps no dated churn flag on accounts (a CRM lifecycle stage or a soft delete is
current state, with no date), so churn is read from billing, where it is dated: an account
is a customer while one of its subscriptions is alive (started, and not ended: `ended_at`,
or `canceled_at` for a canceled subscription without it, the same rule as the
`subscription_state` measure). The account churns when its last alive subscription ends
and no new one starts within `REACTIVATION_GRACE` (a plan change or a late renewal is not
churn); the churn day is that end. An account that came back later counts as churned that
time. Accounts without any subscription are left out: their churn cannot be seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session, col

from scoring.measures import cutoff
from store.models import Account, Subscription

__all__ = ["REACTIVATION_GRACE", "ChurnHistory", "load_churn"]

REACTIVATION_GRACE = timedelta(days=30)
"""A subscription starting within this long after the last one ended continues the stay."""


@dataclass(frozen=True)
class ChurnHistory:
    """When each account was a customer (stays from start to end) and when it churned."""

    stays: Mapping[int, tuple[tuple[datetime, datetime | None], ...]]
    churns: Mapping[int, tuple[date, ...]]

    def customer_at(self, account_id: int, instant: datetime) -> bool:
        return any(
            start < instant and (end is None or end >= instant)
            for start, end in self.stays.get(account_id, ())
        )

    def churned_within(self, account_id: int, day: date, horizon_days: int) -> bool:
        last = day + timedelta(days=horizon_days)
        return any(day < churn <= last for churn in self.churns.get(account_id, ()))


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def _stays(
    spans: Iterable[tuple[datetime, datetime | None]],
) -> tuple[tuple[datetime, datetime | None], ...]:
    """Merge subscription spans into stays, bridging gaps up to `REACTIVATION_GRACE`."""
    merged: list[tuple[datetime, datetime | None]] = []
    for start, end in sorted(spans, key=lambda s: s[0]):
        if merged:
            last_start, last_end = merged[-1]
            if last_end is None or start <= last_end + REACTIVATION_GRACE:
                longest = None if last_end is None or end is None else max(last_end, end)
                merged[-1] = (last_start, longest)
                continue
        merged.append((start, end))
    return tuple(merged)


def load_churn(session: Session, today: date) -> ChurnHistory:
    """Every account's stays and churn days up to `today`, from one query over all the
    subscriptions of live accounts."""
    stmt = (
        select(
            col(Subscription.account_id),
            func.coalesce(col(Subscription.started_at), col(Subscription.created_at)),
            col(Subscription.ended_at),
            col(Subscription.canceled_at),
            col(Subscription.status).in_(("canceled", "incomplete_expired")),
        )
        .join(Account, col(Account.id) == col(Subscription.account_id))
        .where(col(Subscription.deleted_at).is_(None), col(Account.deleted_at).is_(None))
    )
    spans: dict[int, list[tuple[datetime, datetime | None]]] = {}
    for account_id, started, ended_at, canceled_at, final in session.connection().execute(stmt):
        if account_id is None:
            continue
        finish = _aware(ended_at) or ((_aware(canceled_at) or _NEVER) if final else None)
        spans.setdefault(account_id, []).append((_aware(started) or _NEVER, finish))
    until = cutoff(today)
    stays = {a: _stays(s) for a, s in spans.items()}
    churns = {
        a: tuple(e.date() for _, e in s if e is not None and e < until) for a, s in stays.items()
    }
    return ChurnHistory(stays=stays, churns={a: c for a, c in churns.items() if c})
