"""Is the agent keeping up? `health-agent status` and the Prometheus `/metrics` route.

`gather` reads the store in a handful of set-based queries (never one per source or per
account) into frozen dataclasses: each enabled source's freshness, records and errors, the
leader lease, the scheduler's next runs, pending alerts, quarantined records and the latest
run of each scheduled job. `print_status` and `as_json` only decide how that looks, and
`routes` serves the same facts as Prometheus metrics, read from the store at scrape time so
any process can serve them.

This module is the public face; the work is done in

    status.facts     the dataclasses, a source's states, and `thresholds`
    status.queries   the set-based queries and `gather`
    status.view      `print_status` (Rich table or plain lines) and `as_json`
    status.metrics   `StoreCollector` and `routes`

A source is *failing* when the latest run of one of its streams failed (or its reconcile was
refused), as `scoring.breakdown` marks a measure stale; it is *stale* when its stalest
stream's last success is older than its threshold: the source's `stale_after_hours` in the
sources file, else `STATUS__STALE_AFTER_HOURS`, else three times the longest gap between two
runs of its schedule, and at least an hour. `health-agent status` exits 1 when an enabled
source is failing, stale or never synced, so it can serve as a container health check.

`health-agent status --json` prints one object (times ISO 8601 UTC, durations in seconds):

    healthy        bool: every enabled source is ok
    checked_at     when the store was read
    problems       [str]: one line per failing or stale source
    sources        [{source, state ("ok", "failing", "stale", "never_synced"), healthy,
                     schedule, last_success, lag_seconds, stale_after_seconds,
                     stale_after_from ("schedule", "STATUS__STALE_AFTER_HOURS",
                     "sources file"), records_last_run, records_stored, quarantined,
                     failing: [{stream, error, at}], last_error: {stream, error, at} | null}]
    unconfigured_sources  [str]: sources the store holds syncs of that are not configured
                   here (turned off since, or the demo's sandbox); they never fail the check
    leader         {name, holder, acquired_at, renewed_at, expires_at, alive} | null
    leases         [the same, one per lease row]
    scheduler      {has_run: bool, jobs: [{id, next_run_time (null: paused)}]}
    job_runs       [{job_id, status, slot, started_at, finished_at, error}]: latest per job
    alerts         {pending, oldest_pending, by_status: {status: count}}
    quarantined    {source: unresolved count}, every source with any

Errors are shown as the sync engine stored them (it scrubs the source's secrets) and are
scrubbed again, as they are read, of every configured secret and database password.
"""

from status.facts import (
    LEADER_LEASE,
    MIN_STALE_AFTER,
    STALE_INTERVALS,
    AlertCounts,
    JobRunStatus,
    JobStatus,
    LeaseStatus,
    Problem,
    SourceStatus,
    Status,
    Threshold,
    thresholds,
)
from status.metrics import METRICS, StoreCollector, routes
from status.queries import FAILED, JOBS_TABLE, RECORD_TABLES, gather
from status.view import COLUMNS, as_json, print_status

__all__ = [
    "COLUMNS",
    "FAILED",
    "JOBS_TABLE",
    "LEADER_LEASE",
    "METRICS",
    "MIN_STALE_AFTER",
    "RECORD_TABLES",
    "STALE_INTERVALS",
    "AlertCounts",
    "JobRunStatus",
    "JobStatus",
    "LeaseStatus",
    "Problem",
    "SourceStatus",
    "Status",
    "StoreCollector",
    "Threshold",
    "as_json",
    "gather",
    "print_status",
    "routes",
    "thresholds",
]
