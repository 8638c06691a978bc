"""Reads the store for `health-agent status` and `/metrics`, in a few set-based queries.

Each query answers for every source (or job, or lease) at once, never one query per source
or per account; `gather` puts the answers together into a `Status`. Errors are scrubbed of
every configured secret and database password before they leave this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, column, func, inspect, select, table, union_all
from sqlmodel import Session, SQLModel, col

import views
from connectors.errors import one_line
from settings import Settings
from status.facts import (
    AlertCounts,
    JobRunStatus,
    JobStatus,
    LeaseStatus,
    Problem,
    SourceStatus,
    Status,
    thresholds,
)
from store.models import (
    Account,
    Alert,
    Contact,
    Csm,
    Invoice,
    JobRun,
    Lease,
    Opportunity,
    QuarantinedRecord,
    Subscription,
    SurveyResponse,
    SyncRun,
    Team,
    Ticket,
    UsageSnapshot,
)
from store.sync_history import latest_stream_runs
from store.types import UTCDateTime, utcnow
from store.upsert import table_of

__all__ = ["FAILED", "JOBS_TABLE", "RECORD_TABLES", "gather", "run_totals"]

FAILED = ("failed", "refused")
"""Run statuses that make a stream failing (as `scoring.breakdown` reads them)."""
JOBS_TABLE = "apscheduler_jobs"
RECORD_TABLES: tuple[type[SQLModel], ...] = (
    Account,
    Contact,
    Csm,
    Team,
    Opportunity,
    Ticket,
    Subscription,
    Invoice,
    UsageSnapshot,
    SurveyResponse,
)
"""The canonical tables synced records land in, counted (live rows) per source."""


def _last_errors(session: Session) -> dict[str, Problem]:
    """Each source's most recent failed run, recovered since or not."""
    ranked = (
        select(
            col(SyncRun.source),
            col(SyncRun.stream),
            col(SyncRun.error),
            col(SyncRun.started_at),
            col(SyncRun.finished_at),
            func.row_number()
            .over(
                partition_by=col(SyncRun.source),
                order_by=(col(SyncRun.started_at).desc(), col(SyncRun.id).desc()),
            )
            .label("rn"),
        )
        .where(col(SyncRun.status).in_(FAILED))
        .subquery()
    )
    rows = session.execute(select(ranked).where(ranked.c.rn == 1)).all()
    return {r.source: Problem(r.stream, r.error or "", r.finished_at or r.started_at) for r in rows}


def _stored(session: Session) -> dict[str, int]:
    """Live rows per source over every canonical table, in one statement."""
    parts = []
    for model in RECORD_TABLES:
        t = table_of(model)
        counted = select(t.c.source.label("source"), func.count().label("n"))
        if "deleted_at" in t.c:
            counted = counted.where(t.c.deleted_at.is_(None))
        parts.append(counted.group_by(t.c.source))
    every = union_all(*parts).subquery()
    query = select(every.c.source, func.sum(every.c.n)).group_by(every.c.source)
    return {source: int(n or 0) for source, n in session.execute(query).all()}


def _quarantined(session: Session) -> dict[str, int]:
    query = (
        select(col(QuarantinedRecord.source), func.count())
        .where(col(QuarantinedRecord.resolved_at).is_(None))
        .group_by(col(QuarantinedRecord.source))
    )
    return {source: int(n) for source, n in session.execute(query).all()}


def _alerts(session: Session) -> AlertCounts:
    query = select(
        col(Alert.status), func.count(), func.min(col(Alert.created_at), type_=UTCDateTime())
    ).group_by(col(Alert.status))
    by_status, oldest = {}, None
    for status, n, first in session.execute(query).all():
        by_status[status] = int(n)
        if status == "pending":
            oldest = first
    return AlertCounts(dict(sorted(by_status.items())), oldest)


def _leases(session: Session, now: datetime) -> tuple[LeaseStatus, ...]:
    rows = session.execute(select(Lease).order_by(col(Lease.name))).scalars().all()
    return tuple(
        LeaseStatus(r.name, r.holder, r.acquired_at, r.renewed_at, r.expires_at, r.expires_at > now)
        for r in rows
    )


def _jobs(session: Session) -> tuple[bool, tuple[JobStatus, ...]]:
    """Whether the scheduler's job store exists, and its jobs by next run (paused last)."""
    if not inspect(session.connection()).has_table(JOBS_TABLE):
        return False, ()
    jobs = table(JOBS_TABLE, column("id"), column("next_run_time"))
    found = [
        JobStatus(str(job_id), None if at is None else datetime.fromtimestamp(float(at), UTC))
        for job_id, at in session.execute(select(jobs.c.id, jobs.c.next_run_time)).all()
    ]
    far = datetime.max.replace(tzinfo=UTC)
    return True, tuple(sorted(found, key=lambda j: (j.next_run_time or far, j.id)))


def _job_runs(session: Session, secrets: Sequence[str]) -> tuple[JobRunStatus, ...]:
    ranked = select(
        JobRun,
        func.row_number()
        .over(
            partition_by=col(JobRun.job_id),
            order_by=(col(JobRun.slot).desc(), col(JobRun.id).desc()),
        )
        .label("rn"),
    ).subquery()
    rows = session.execute(select(ranked).where(ranked.c.rn == 1).order_by(ranked.c.job_id)).all()
    return tuple(
        JobRunStatus(
            r.job_id,
            r.status,
            r.slot,
            r.started_at,
            r.finished_at,
            _clean(r.error, secrets) if r.error else None,
        )
        for r in rows
    )


def run_totals(session: Session) -> dict[str, tuple[int, int]]:
    """Per source: records synced and failed runs, over every recorded run."""
    query = select(
        col(SyncRun.source),
        func.coalesce(func.sum(col(SyncRun.records)), 0),
        func.coalesce(func.sum(case((col(SyncRun.status).in_(FAILED), 1), else_=0)), 0),
    ).group_by(col(SyncRun.source))
    return {source: (int(n), int(errors)) for source, n, errors in session.execute(query).all()}


def _clean(text: str, secrets: Sequence[str]) -> str:
    return one_line(views.scrub(text, secrets))


def _sources_to_show(settings: Settings, synced: Iterable[str]) -> list[str]:
    """The enabled built-in sources, then installed connector plugins that have synced."""
    from importlib.metadata import entry_points

    from connectors.registry import ENTRY_POINT_GROUP

    names = settings.enabled_sources()
    plugins = {entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)}
    return names + sorted((plugins & set(synced)) - set(names))


def gather(
    engine: Engine, settings: Settings, *, now: datetime | None = None, stored: bool = True
) -> Status:
    """Read the store once into a `Status`; `stored=False` skips counting stored rows."""
    now = now or utcnow()
    secrets = settings.secrets()
    with Session(engine) as session:
        streams = latest_stream_runs(session)
        last_errors = _last_errors(session)
        counts = _stored(session) if stored else {}
        quarantined = _quarantined(session)
        alerts = _alerts(session)
        leases = _leases(session, now)
        has_run, jobs = _jobs(session)
        job_runs = _job_runs(session, secrets)
    by_source: dict[str, list[Any]] = {}
    for row in streams:
        by_source.setdefault(row.source, []).append(row)
    sources = []
    names = _sources_to_show(settings, by_source)
    limits = thresholds(settings, names)
    for name in names:
        rows = by_source.get(name, [])
        stamps = [r.last_ok for r in rows]
        last_success = min(stamps) if stamps and None not in stamps else None
        failing = tuple(
            Problem(r.stream, _clean(r.error or "", secrets), r.finished_at or r.started_at)
            for r in sorted(rows, key=lambda r: r.stream)
            if r.status in FAILED
        )
        error = last_errors.get(name)
        sources.append(
            SourceStatus(
                source=name,
                schedule=limits[name].schedule,
                stale_after=limits[name].after,
                stale_after_from=limits[name].origin,
                last_success=last_success,
                lag=None if last_success is None else max(now - last_success, timedelta(0)),
                ever_synced=any(s is not None for s in stamps),
                records_last_run=sum(r.records or 0 for r in rows),
                records_stored=counts.get(name, 0),
                quarantined=quarantined.get(name, 0),
                failing=failing,
                last_error=None
                if error is None
                else Problem(error.stream, _clean(error.error, secrets), error.at),
            )
        )
    unconfigured = tuple(sorted(set(by_source) - set(names)))
    return Status(
        now, tuple(sources), leases, has_run, jobs, job_runs, alerts, quarantined, unconfigured
    )
