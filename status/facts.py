"""What `health-agent status` knows: the facts it reports and when a source is stale.

Frozen dataclasses for each fact (a source's freshness and errors, leases, scheduled jobs,
job runs, alerts), the states a source can be in, and `thresholds`: how long each source may
go without a successful sync before it is stale. `status.queries` fills these from the store;
`status.view` and `status.metrics` show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from settings import Settings
from store.types import utcnow

__all__ = [
    "LEADER_LEASE",
    "MIN_STALE_AFTER",
    "STALE_INTERVALS",
    "AlertCounts",
    "JobRunStatus",
    "JobStatus",
    "LeaseStatus",
    "Problem",
    "SourceStatus",
    "Status",
    "Threshold",
    "span_text",
    "thresholds",
]

STALE_INTERVALS = 3
"""By default a source is stale after three of its schedule's longest gaps..."""
MIN_STALE_AFTER = timedelta(hours=1)
"""...and never sooner than this, so that a long sync on a short schedule does not flap."""
LEADER_LEASE = "scheduler"


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class Problem:
    """One stream's failed run."""

    stream: str
    error: str
    at: datetime | None


@dataclass(frozen=True)
class SourceStatus:
    """One enabled source: how fresh, how much, what went wrong."""

    source: str
    schedule: str
    stale_after: timedelta
    stale_after_from: str
    last_success: datetime | None
    """The stalest stream's last success (None when a stream never succeeded)."""
    lag: timedelta | None
    ever_synced: bool
    records_last_run: int
    records_stored: int
    quarantined: int
    failing: tuple[Problem, ...]
    last_error: Problem | None

    @property
    def state(self) -> str:
        if self.failing:
            return "failing"
        if not self.ever_synced:
            return "never_synced"
        if self.lag is None or self.lag > self.stale_after:
            return "stale"
        return "ok"

    @property
    def healthy(self) -> bool:
        return self.state == "ok"

    def problem(self) -> str | None:
        """One line saying what is wrong, or None."""
        state = self.state
        if state == "failing":
            return f"{self.source}: " + "; ".join(
                f"{p.stream} failed: {p.error}" for p in self.failing
            )
        if state == "never_synced":
            return f"{self.source}: never synced successfully"
        if state == "stale":
            since = "a stream never synced" if self.lag is None else f"{span_text(self.lag)} ago"
            limit = span_text(self.stale_after)
            return f"{self.source}: stale (last success {since}; stale after {limit})"
        return None


@dataclass(frozen=True)
class LeaseStatus:
    """A row of the `leases` table; `alive` while it has not expired."""

    name: str
    holder: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    alive: bool


@dataclass(frozen=True)
class JobStatus:
    """A job in the scheduler's job store; no next run when paused."""

    id: str
    next_run_time: datetime | None


@dataclass(frozen=True)
class JobRunStatus:
    """The latest run of a scheduled job."""

    job_id: str
    status: str
    slot: datetime
    started_at: datetime
    finished_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class AlertCounts:
    """Alerts by status, and when the oldest pending one was created."""

    by_status: dict[str, int]
    oldest_pending: datetime | None

    @property
    def pending(self) -> int:
        return self.by_status.get("pending", 0)


@dataclass(frozen=True)
class Status:
    """Everything `health-agent status` shows, as of `checked_at`."""

    checked_at: datetime
    sources: tuple[SourceStatus, ...]
    leases: tuple[LeaseStatus, ...]
    scheduler_has_run: bool
    jobs: tuple[JobStatus, ...]
    job_runs: tuple[JobRunStatus, ...]
    alerts: AlertCounts
    quarantined: dict[str, int]
    unconfigured: tuple[str, ...] = ()
    """Sources the store holds syncs of that are not configured here: turned off since, or
    the demo's sandbox. Shown, never a reason to fail."""

    @property
    def leader(self) -> LeaseStatus | None:
        return next((lease for lease in self.leases if lease.name == LEADER_LEASE), None)

    @property
    def healthy(self) -> bool:
        return all(source.healthy for source in self.sources)

    def problems(self) -> list[str]:
        return [p for p in (source.problem() for source in self.sources) if p]


def span_text(span: timedelta) -> str:
    """A duration for people: `45 s`, `12 min`, `5 h 3 min`, `2 d 4 h`."""
    seconds = int(span.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else f"{secs} s"


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Threshold:
    """How long a source may go without a successful sync, and what says so."""

    after: timedelta
    origin: str
    schedule: str


_GAPS: dict[tuple[str, str], timedelta] = {}


def _longest_gap(trigger: Any) -> timedelta:
    """The longest wait between two runs of an APScheduler trigger over the coming week."""
    if isinstance(getattr(trigger, "interval", None), timedelta):
        return cast(timedelta, trigger.interval)
    key = (str(trigger), str(trigger.timezone))
    if key in _GAPS:
        return _GAPS[key]
    longest, fire = timedelta(0), trigger.get_next_fire_time(None, utcnow())
    end = (fire or utcnow()) + timedelta(days=8)
    for _ in range(20_000):  # a run every minute for eight days, at most
        if fire is None or fire > end:
            break
        following = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if following is not None:
            longest = max(longest, following - fire)
        fire = following
    _GAPS[key] = longest
    return longest


def thresholds(settings: Settings, sources: Sequence[str]) -> dict[str, Threshold]:
    """Each source's staleness threshold, from the triggers the scheduler itself builds.

    Raises ConfigError for a schedule the scheduler would refuse (a bad cron or time zone).
    """
    from scheduler import plan_jobs

    schedules = {name: settings.source_config(name).schedule for name in sources}
    planned = plan_jobs(settings.scheduler, schedules)
    triggers = {spec.source: spec.trigger for spec in planned if spec.source in schedules}
    found = {}
    for name, schedule in schedules.items():
        gap = _longest_gap(triggers[name])
        said = f"cron {schedule.cron}" if schedule and schedule.cron else f"every {span_text(gap)}"
        own = settings.source_config(name).stale_after_hours
        if own is not None:
            found[name] = Threshold(timedelta(hours=own), "sources file", said)
        elif settings.status.stale_after_hours is not None:
            hours = timedelta(hours=settings.status.stale_after_hours)
            found[name] = Threshold(hours, "STATUS__STALE_AFTER_HOURS", said)
        else:
            found[name] = Threshold(max(STALE_INTERVALS * gap, MIN_STALE_AFTER), "schedule", said)
    return found
