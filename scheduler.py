"""APScheduler wiring: the configured jobs, their store in the agent's database, slots.

The jobs (`plan_jobs`): each enabled source syncs on its own schedule (every N minutes or a
crontab expression, in SCHEDULER__TIMEZONE) and then scores and notifies; without sources one
`pipeline` job scores and notifies; the weekly digests go out on SCHEDULER__DIGEST_CRON.
Jobs run one at a time (one writer), never overlap themselves, missed runs collapse into
one, and a run later than its misfire grace time is skipped.

The leader's scheduler (`start_clock`) keeps its jobs in the database (`SQLAlchemyJobStore`,
table `apscheduler_jobs`), so schedules survive restarts and a standby that takes over goes
on where the leader stopped (`runner.py` decides who leads). A stored job names
`jobs:run_job` with plain arguments (a kind and a source), never live objects.

**Slots.** APScheduler hands the times a job was scheduled for to the executor, not to the
job: `SlotExecutor` runs each run time on its own and tells it its time (`current_slot()`),
which `jobs.run_job` claims in `job_runs` before it does anything.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.executors.base import run_job as run_scheduled
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from settings import ConfigError, Schedule, SchedulerSettings, Settings
from store.db import make_engine

__all__ = [
    "CYCLE",
    "DIGEST",
    "DIGEST_JOB_ID",
    "JOBS_TABLE",
    "JOB_FUNCTION",
    "PIPELINE_JOB_ID",
    "JobSpec",
    "SlotExecutor",
    "configured_jobs",
    "crontab_trigger",
    "current_slot",
    "install_jobs",
    "job_id_of",
    "plan_jobs",
    "start_clock",
    "wait_idle",
    "zone_of",
]

log = logging.getLogger(__name__)

CYCLE = "cycle"
"""Job kind: sync one source (or none), then score and notify."""
DIGEST = "digest"
"""Job kind: the weekly digests."""
PIPELINE_JOB_ID = "pipeline"
DIGEST_JOB_ID = "digest"
JOBS_TABLE = "apscheduler_jobs"
"""APScheduler's default table name, read by `health-agent status`."""
DIGEST_GRACE_SECONDS = 12 * 3600
"""A digest whose slot passed while no instance led still goes out within this time."""
JOB_FUNCTION = "jobs:run_job"
"""What every stored job runs, by name (`jobs.run_job`)."""


def job_id_of(kind: str, source: str | None) -> str:
    """The id of the job of `kind` for `source`: `sync hubspot`, `pipeline`, `digest`."""
    if kind == DIGEST:
        return DIGEST_JOB_ID
    return f"sync {source}" if source else PIPELINE_JOB_ID


@dataclass(frozen=True)
class JobSpec:
    """A job as configured: what runs (kind, source) and when."""

    kind: str
    source: str | None
    trigger: BaseTrigger
    grace_seconds: int
    start_now: bool
    """Run at once when the job is new to the store (a sync); else first on its trigger."""

    @property
    def job_id(self) -> str:
        return job_id_of(self.kind, self.source)


# --------------------------------------------------------------------------- configuration


def zone_of(config: SchedulerSettings) -> ZoneInfo:
    """The scheduler's time zone; a ConfigError names the setting when it is no zone."""
    try:
        return ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"SCHEDULER__TIMEZONE {config.timezone!r} is not a time zone; use a name such as "
            "UTC or Europe/Berlin"
        ) from None


def _default_seconds(config: SchedulerSettings) -> int:
    return config.sync_interval_seconds or max(1, config.sync_interval_minutes) * 60


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Crontab's day-of-week numbers (0 and 7 are Sunday) as names."""
_NUMBERS = re.compile(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?")


def _weekdays(field: str) -> str:
    """A crontab day-of-week field with its numbers as names, which APScheduler reads alike.

    APScheduler 3 numbers days from Monday = 0, crontab from Sunday = 0, and
    `CronTrigger.from_crontab` passes the numbers through: `1-5` would mean Tuesday to
    Saturday. Names mean the same to both, so numbers become the days they name.
    """
    if field == "*":
        return field
    names: list[str] = []
    for part in field.split(","):
        match = _NUMBERS.fullmatch(part)
        if match is None:  # names (mon-fri), or what APScheduler refuses with a reason
            names.append(part)
            continue
        start, end, step = match.groups()
        low = 0 if start == "*" else int(start)
        high = int(end) if end else 6 if start == "*" or step else low
        days = range(low, high + 1, int(step or 1))
        if not days or high >= len(_WEEKDAYS):
            raise ValueError(f"day of week {part!r} is not a range of 0 to 7")
        names.extend(_WEEKDAYS[day] for day in days)
    return ",".join(dict.fromkeys(names))


def crontab_trigger(expression: str, zone: ZoneInfo) -> CronTrigger:
    """A trigger for a standard five-field crontab expression, days of week as in crontab."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_weekdays(weekday),
        timezone=zone,
    )


def _cron(expression: str, zone: ZoneInfo, what: str) -> CronTrigger:
    try:
        return crontab_trigger(expression, zone)
    except ValueError as exc:
        raise ConfigError(f"{what} {expression!r}: {exc}") from None


def plan_jobs(config: SchedulerSettings, sources: Mapping[str, Schedule | None]) -> list[JobSpec]:
    """The jobs for the enabled `sources` (name -> schedule, None for the default interval)."""
    zone = zone_of(config)
    default = _default_seconds(config)
    specs: list[JobSpec] = []
    for name, schedule in sources.items():
        if schedule is not None and schedule.cron is not None:
            trigger: BaseTrigger = _cron(schedule.cron, zone, f"sync {name}: schedule cron")
            grace = default // 2
        else:
            minutes = schedule.every_minutes if schedule is not None else None
            seconds = minutes * 60 if minutes else default
            trigger, grace = IntervalTrigger(seconds=seconds, timezone=zone), seconds // 2
        specs.append(JobSpec(CYCLE, name, trigger, max(1, grace), start_now=True))
    if not specs:
        trigger = IntervalTrigger(seconds=default, timezone=zone)
        specs.append(JobSpec(CYCLE, None, trigger, max(1, default // 2), start_now=True))
    if config.digest_cron:
        trigger = _cron(config.digest_cron, zone, "SCHEDULER__DIGEST_CRON")
        specs.append(JobSpec(DIGEST, None, trigger, DIGEST_GRACE_SECONDS, start_now=False))
    return specs


def configured_jobs(settings: Settings) -> list[JobSpec]:
    """The jobs of the enabled sources with their schedules from the sources file."""
    sources = {name: settings.source_config(name).schedule for name in settings.enabled_sources()}
    return plan_jobs(settings.scheduler, sources)


# --------------------------------------------------------------------------- the job store


def _same_schedule(a: BaseTrigger, b: BaseTrigger) -> bool:
    return type(a) is type(b) and str(a) == str(b) and str(a.timezone) == str(b.timezone)


def install_jobs(clock: BackgroundScheduler, specs: Sequence[JobSpec]) -> None:
    """Make the job store hold exactly `specs`.

    A stored job whose schedule is unchanged keeps its next run time (and so its slots); a
    new or rescheduled one is (re)written, and a job no longer configured is removed.
    """
    stored = {job.id: job for job in clock.get_jobs()}
    for spec in specs:
        options: dict[str, Any] = {
            "args": (spec.kind, spec.source),
            "name": spec.job_id,
            "misfire_grace_time": spec.grace_seconds,
            "coalesce": True,
            "max_instances": 1,
        }
        job = stored.pop(spec.job_id, None)
        if job is not None and _same_schedule(job.trigger, spec.trigger):
            job.modify(func=JOB_FUNCTION, **options)
            continue
        if spec.start_now:
            options["next_run_time"] = datetime.now(UTC)
        clock.add_job(JOB_FUNCTION, spec.trigger, id=spec.job_id, replace_existing=True, **options)
    for job_id in stored:
        clock.remove_job(job_id)


class _Clock(BackgroundScheduler):  # type: ignore[misc]  # APScheduler 3 has no types
    """A `BackgroundScheduler` that does nothing once shut down.

    APScheduler 3's loop, woken by `shutdown()`, processes the due jobs once more: it fails to
    submit them to the stopped executor and still moves their next run on, in the store,
    so a slot due at that moment would be lost for the next leader.
    """

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        wait: float | None = super()._process_jobs()
        return wait


def start_clock(
    database_url: str, config: SchedulerSettings, specs: Sequence[JobSpec], *, paused: bool = False
) -> BackgroundScheduler:
    """A started scheduler on the job store in the database at `database_url`, with `specs`.

    `paused`: it runs nothing until `resume()` (to look at the store, say).
    """
    store = SQLAlchemyJobStore(engine=make_engine(database_url), tablename=JOBS_TABLE)
    clock = _Clock(
        jobstores={"default": store},
        executors={"default": SlotExecutor()},
        timezone=zone_of(config),
    )
    clock.start(paused=True)  # nothing runs before the store holds what is configured
    try:
        install_jobs(clock, specs)
    except BaseException:
        clock.shutdown(wait=False)
        raise
    if not paused:
        clock.resume()
    return clock


# --------------------------------------------------------------------------- slots


class _Running:
    """How many jobs this process runs right now, to wait for them on a stop."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._count = 0

    def __enter__(self) -> None:
        with self._changed:
            self._count += 1

    def __exit__(self, *_: object) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout)


_RUNNING = _Running()
_SLOT = threading.local()


def wait_idle(timeout: float) -> bool:
    """Wait until no job runs in this process; False when one still does after `timeout`."""
    return _RUNNING.wait_idle(timeout)


def current_slot() -> datetime | None:
    """The time the job running in this thread was scheduled for (None outside a job)."""
    slot: datetime | None = getattr(_SLOT, "at", None)
    return slot


def _run_in_slots(job: Any, alias: str, run_times: list[datetime], logger: str) -> list[Any]:
    """APScheduler's own `run_job`, once per run time, with that time as `current_slot()`."""
    events: list[Any] = []
    for run_time in run_times:
        _SLOT.at = run_time
        try:
            with _RUNNING:
                events.extend(run_scheduled(job, alias, [run_time], logger))
        finally:
            _SLOT.at = None
    return events


class SlotExecutor(ThreadPoolExecutor):  # type: ignore[misc]  # APScheduler 3 has no types
    """One thread (one writer); each run learns the time it was scheduled for."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        # As BasePoolExecutor._do_submit_job, running `_run_in_slots` instead of `run_job`.
        def done(future: Future[list[Any]]) -> None:
            error = future.exception()
            if error is not None:
                self._run_job_error(job.id, error, error.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        future = self._pool.submit(
            _run_in_slots, job, job._jobstore_alias, run_times, self._logger.name
        )
        future.add_done_callback(done)
