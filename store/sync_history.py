"""What the sync runs say about each stream: its latest run and its latest success.

`health-agent sources list`, `health-agent status` and the metrics all judge a source by the
same two facts per stream, so the query that reads them is written once, here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from store.models import SyncRun
from store.types import UTCDateTime

__all__ = ["latest_stream_runs"]


def latest_stream_runs(session: Session) -> list[Any]:
    """One row per (source, stream): its latest run (`status`, `records`, `error`,
    `started_at`, `finished_at`) and `last_ok`, when its latest successful run finished."""
    ranked = select(
        col(SyncRun.source),
        col(SyncRun.stream),
        col(SyncRun.status),
        col(SyncRun.records),
        col(SyncRun.error),
        col(SyncRun.started_at),
        col(SyncRun.finished_at),
        func.row_number()
        .over(
            partition_by=(col(SyncRun.source), col(SyncRun.stream)),
            order_by=(col(SyncRun.started_at).desc(), col(SyncRun.id).desc()),
        )
        .label("rn"),
    ).subquery()
    ok = (
        select(
            col(SyncRun.source),
            col(SyncRun.stream),
            func.max(col(SyncRun.finished_at), type_=UTCDateTime()).label("at"),
        )
        .where(col(SyncRun.status) == "ok")
        .group_by(col(SyncRun.source), col(SyncRun.stream))
        .subquery()
    )
    query = (
        select(ranked, ok.c.at.label("last_ok"))
        .outerjoin(ok, (ok.c.source == ranked.c.source) & (ok.c.stream == ranked.c.stream))
        .where(ranked.c.rn == 1)
    )
    return list(session.execute(query).all())
