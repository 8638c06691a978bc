"""The alerts table as an outbox: insert once, claim before sending, finish after.

    pending -> sending -> sent | unroutable | failed
       |  ^       |
       |  +-------+  back to pending when nothing was posted and a later run may do
       |             better (Slack down or rate limiting, a refused token, a missing channel)
       +-> snoozed (its account and rule were snoozed) | rolled (into a daily summary)

An alert that went out listed in another alert's message (same account and recipient,
`grouping.py`) is `sent` like it, with `rolled_into` naming that lead alert; an alert
`rolled` into a daily summary names the summary there.

`insert_new` writes alerts whose fingerprint is new and ignores the others
(`ON CONFLICT DO NOTHING` on the unique fingerprint), on SQLite and PostgreSQL alike.
`claim` moves one alert from `pending` to `sending` and commits before anything goes to
Slack: an alert that was claimed is never sent again, whatever happens after, and of two
instances only one claims it. `update_pending` changes an alert only while it is pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from store.models import Alert
from store.upsert import table_of

__all__ = [
    "claim",
    "finish",
    "finish_many",
    "insert_new",
    "update_pending",
    "update_pending_many",
]


def insert_new(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert the alerts whose fingerprint is new; returns the fingerprints that were."""
    if not rows:
        return set()
    table = table_of(Alert)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(table)
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(table.c.fingerprint)
    )
    result = session.connection().execute(stmt, list(rows))
    return {str(fp) for fp in result.scalars().all()}


def update_pending(session: Session, alert_id: int | None, **values: Any) -> bool:
    """Change an alert while it is still pending and commit; False when it no longer was."""
    result = session.exec(
        update(Alert)
        .where(col(Alert.id) == alert_id, col(Alert.status) == "pending")
        .values(**values)
    )
    session.commit()
    return bool(result.rowcount == 1)


def update_pending_many(session: Session, alert_ids: Sequence[int], **values: Any) -> int:
    """Change the alerts of `alert_ids` still pending, in one statement; how many were."""
    if not alert_ids:
        return 0
    result = session.exec(
        update(Alert)
        .where(col(Alert.id).in_(alert_ids), col(Alert.status) == "pending")
        .values(**values)
    )
    session.commit()
    return int(result.rowcount)


def claim(session: Session, alert: Alert) -> bool:
    """Take the alert for sending (committed); False when another instance has it."""
    if not update_pending(session, alert.id, status="sending"):
        return False
    alert.status = "sending"
    return True


def finish(session: Session, alert: Alert, status: str, error: str | None, **values: Any) -> None:
    """Record how sending went (and the channel, ts, time... in `values`) and commit."""
    alert.status, alert.error = status, error
    for name, value in values.items():
        setattr(alert, name, value)
    session.add(alert)
    session.commit()


def finish_many(
    session: Session, alerts: Sequence[Alert], status: str, error: str | None, **values: Any
) -> None:
    """`finish` for several alerts at once, in one statement, committed."""
    if not alerts:
        return
    ids = [alert.id for alert in alerts]
    session.exec(
        update(Alert).where(col(Alert.id).in_(ids)).values(status=status, error=error, **values)
    )
    session.commit()
