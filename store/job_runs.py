"""Runs of scheduled jobs, one per slot: the unique `(job_id, slot)` lets a slot run once.

Before a scheduled job does its work it claims its slot, the time it was scheduled for, by
inserting a `JobRun` row; when the row is there already (another instance, or this one
before a restart, ran that slot) the insert does nothing and the job does not run. At the
end the row is marked `finished`, `stopped` (it ended early on a stop request) or `failed`
with the error.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, update
from sqlalchemy.dialects import postgresql, sqlite

from store.db import session_scope
from store.models import JobRun
from store.types import utcnow
from store.upsert import table_of

__all__ = ["ERROR_LIMIT", "claim_slot", "finish_run"]

ERROR_LIMIT = 2000
"""Characters of an error kept on its run."""


def claim_slot(engine: Engine, job_id: str, slot: datetime, holder: str) -> int | None:
    """Insert the run of `job_id` in `slot`; its id, or None when that slot was claimed before."""
    runs = table_of(JobRun)
    values = {
        "job_id": job_id,
        "slot": slot,
        "holder": holder,
        "status": "running",
        "started_at": utcnow(),
    }
    dialect = engine.dialect.name
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql.insert(runs).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(runs).values(values).on_conflict_do_nothing()
    else:
        raise NotImplementedError(f"job runs are not implemented for the {dialect} dialect")
    with session_scope(engine) as session:
        inserted = session.execute(statement.returning(runs.c.id)).scalar_one_or_none()
    return None if inserted is None else int(inserted)


def finish_run(engine: Engine, run_id: int, status: str, error: str | None = None) -> None:
    """Mark a claimed run `finished`, `stopped` or `failed` (with its error)."""
    runs = table_of(JobRun)
    with session_scope(engine) as session:
        session.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(status=status, finished_at=utcnow(), error=error and error[:ERROR_LIMIT])
        )
