"""The clock of the agent: each source syncs on its own schedule, then scores and notifies.

`health-agent run` builds a `BlockingScheduler` here and runs until SIGTERM or Ctrl-C, when it
lets the running job finish and exits. A job is an injected callable (the CLI decides what a
cycle does, tests count cycles) with a schedule: every N minutes or a cron expression, from
the sources file, else the default interval. Jobs run one at a time (one writer), never
overlap themselves, and missed runs collapse into one.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from settings import ConfigError, Schedule, SchedulerSettings

__all__ = ["PIPELINE_JOB_ID", "Job", "build_scheduler", "run_forever"]

log = logging.getLogger(__name__)

PIPELINE_JOB_ID = "pipeline"
Job = tuple[Schedule | None, Callable[[], object]]
"""A job's schedule (None: the default interval) and what it runs."""


def _trigger(schedule: Schedule | None, config: SchedulerSettings, job_id: str) -> BaseTrigger:
    if schedule is not None and schedule.cron is not None:
        try:
            return CronTrigger.from_crontab(schedule.cron, timezone=config.timezone)
        except ValueError as exc:
            raise ConfigError(f"{job_id}: schedule cron {schedule.cron!r}: {exc}") from None
    minutes = schedule.every_minutes if schedule and schedule.every_minutes else None
    interval = max(1, minutes or config.sync_interval_minutes) * 60
    return IntervalTrigger(seconds=interval, timezone=config.timezone)


def build_scheduler(
    config: SchedulerSettings,
    jobs: Mapping[str, Job],
    *,
    start_now: bool = True,
) -> BlockingScheduler:
    """A scheduler running `jobs` (by id) one at a time, each first at once by default."""
    scheduler = BlockingScheduler(
        timezone=config.timezone, executors={"default": ThreadPoolExecutor(max_workers=1)}
    )
    default_grace = max(1, config.sync_interval_minutes) * 30
    for job_id, (schedule, run) in jobs.items():
        trigger = _trigger(schedule, config, job_id)
        grace = (schedule.every_minutes * 30) if schedule and schedule.every_minutes else None
        scheduler.add_job(
            run,
            trigger,
            id=job_id,
            name=job_id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=grace or default_grace,
            next_run_time=datetime.now(UTC) if start_now else None,
            replace_existing=True,
        )
    return scheduler


def run_forever(scheduler: BlockingScheduler) -> None:
    """Run until SIGTERM or SIGINT; the job in progress finishes before we exit."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping after the current job", signal.Signals(signum).name)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.start()
