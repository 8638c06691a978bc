"""How `health-agent status` looks: a Rich table, plain lines, or the documented JSON.

Rendering only: every fact comes from a `Status` that `status.queries.gather` read. On a
terminal the sources are a table; elsewhere (logs, container health checks) each fact is one
plain line. `as_json` gives the shape documented in `status`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rich.console import Console

import views
from status.facts import (
    LEADER_LEASE,
    LeaseStatus,
    Problem,
    SourceStatus,
    Status,
    span_text,
)

__all__ = ["COLUMNS", "as_json", "print_status"]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _seconds(span: timedelta | None) -> int | None:
    return None if span is None else int(span.total_seconds())


def _problem_json(problem: Problem | None) -> dict[str, Any] | None:
    if problem is None:
        return None
    return {"stream": problem.stream, "error": problem.error, "at": _iso(problem.at)}


def _lease_json(lease: LeaseStatus) -> dict[str, Any]:
    return {
        "name": lease.name,
        "holder": lease.holder,
        "acquired_at": _iso(lease.acquired_at),
        "renewed_at": _iso(lease.renewed_at),
        "expires_at": _iso(lease.expires_at),
        "alive": lease.alive,
    }


def as_json(status: Status) -> dict[str, Any]:
    """The documented JSON shape (see the `status` module docstring)."""
    leader = status.leader
    return {
        "healthy": status.healthy,
        "checked_at": _iso(status.checked_at),
        "problems": status.problems(),
        "sources": [
            {
                "source": s.source,
                "state": s.state,
                "healthy": s.healthy,
                "schedule": s.schedule,
                "last_success": _iso(s.last_success),
                "lag_seconds": _seconds(s.lag),
                "stale_after_seconds": _seconds(s.stale_after),
                "stale_after_from": s.stale_after_from,
                "records_last_run": s.records_last_run,
                "records_stored": s.records_stored,
                "quarantined": s.quarantined,
                "failing": [_problem_json(p) for p in s.failing],
                "last_error": _problem_json(s.last_error),
            }
            for s in status.sources
        ],
        "unconfigured_sources": list(status.unconfigured),
        "leader": None if leader is None else _lease_json(leader),
        "leases": [_lease_json(lease) for lease in status.leases],
        "scheduler": {
            "has_run": status.scheduler_has_run,
            "jobs": [{"id": j.id, "next_run_time": _iso(j.next_run_time)} for j in status.jobs],
        },
        "job_runs": [
            {
                "job_id": r.job_id,
                "status": r.status,
                "slot": _iso(r.slot),
                "started_at": _iso(r.started_at),
                "finished_at": _iso(r.finished_at),
                "error": r.error,
            }
            for r in status.job_runs
        ],
        "alerts": {
            "pending": status.alerts.pending,
            "oldest_pending": _iso(status.alerts.oldest_pending),
            "by_status": status.alerts.by_status,
        },
        "quarantined": status.quarantined,
    }


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    stamp = moment.strftime("%Y-%m-%d %H:%M UTC")
    ahead = moment - now
    if ahead >= timedelta(0):
        return f"{stamp} (in {span_text(ahead)})"
    return f"{stamp} ({span_text(-ahead)} ago)"


def _lines(status: Status) -> list[str]:
    """Everything but the sources, as sentences."""
    now, lines = status.checked_at, []
    leader = status.leader
    if leader is None:
        lines.append(f"leader: none (no {LEADER_LEASE!r} lease yet)")
    for lease in status.leases:
        state = "holds" if lease.alive else "held (expired)"
        lines.append(
            f"leader: {lease.holder} {state} {lease.name!r}, renewed "
            f"{_when(lease.renewed_at, now)}, expires {_when(lease.expires_at, now)}"
        )
    if not status.scheduler_has_run:
        lines.append("next runs: the scheduler has not run (`health-agent run` starts it)")
    elif not status.jobs:
        lines.append("next runs: no job is scheduled")
    for job in status.jobs:
        when = "paused" if job.next_run_time is None else _when(job.next_run_time, now)
        lines.append(f"next run: {job.id} {when}")
    for run in status.job_runs:
        error = f": {run.error}" if run.error else ""
        lines.append(f"last run: {run.job_id} {run.status} {_when(run.started_at, now)}{error}")
    alerts = status.alerts
    oldest = f", oldest {_when(alerts.oldest_pending, now)}" if alerts.oldest_pending else ""
    lines.append(f"alerts: {alerts.pending} pending{oldest}")
    held = ", ".join(f"{source} {n}" for source, n in sorted(status.quarantined.items()))
    lines.append(f"quarantined: {held or 'none'}")
    return lines


COLUMNS = ("Source", "State", "Last success", "Stale after", "Records (last run)", "Stored",
           "Quarantined", "Last error")  # fmt: skip


def _source_cells(s: SourceStatus, now: datetime) -> list[object]:
    error = s.last_error
    return [
        s.source,
        s.state.replace("_", " "),
        "never" if s.lag is None else f"{span_text(s.lag)} ago",
        span_text(s.stale_after),
        s.records_last_run,
        s.records_stored,
        s.quarantined,
        "" if error is None else f"{error.stream} {_when(error.at, now)}: {error.error}",
    ]


def print_status(console: Console, status: Status) -> None:
    """A Rich table on a terminal, one plain line per fact elsewhere (logs, health checks)."""
    now, lines = status.checked_at, []
    if console.is_terminal:
        title = "Sources " + ("(healthy)" if status.healthy else "(UNHEALTHY)")
        rows = (_source_cells(s, now) for s in status.sources)
        views.render_table(
            console, title, COLUMNS, rows, styles={4: "number", 5: "number", 6: "number"}
        )
    else:
        lines.append("healthy" if status.healthy else "UNHEALTHY")
        for s in status.sources:
            _, state, lag, after, last_run, stored, held, error = _source_cells(s, now)
            lines.append(
                f"source {s.source}: {state}, last success {lag} (stale after {after}, "
                f"{s.schedule}), {last_run} records last run, {stored} stored, {held} quarantined"
            )
            lines += [f"  last error {error}"] if error else []
    if not status.sources:
        lines.append("no source is configured: see .env.example")
    if status.unconfigured:
        lines.append(
            "the store also holds syncs of "
            + ", ".join(status.unconfigured)
            + ", not configured here (turned off since, or the demo's sandbox)"
        )
    for line in lines + _lines(status):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
