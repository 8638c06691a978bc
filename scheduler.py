"""The clock of the agent: sync every enabled source, then score, then notify, on an interval.

`health-agent run` builds a `BlockingScheduler` here and runs until SIGTERM or Ctrl-C, when it
lets the running job finish and exits. The job itself (`pipeline`) is an injected callable so
the CLI decides what one cycle does and tests can count cycles.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from settings import SchedulerSettings

__all__ = ["PIPELINE_JOB_ID", "build_scheduler", "run_forever"]

log = logging.getLogger(__name__)

PIPELINE_JOB_ID = "pipeline"


def build_scheduler(
    config: SchedulerSettings,
    pipeline: Callable[[], object],
    *,
    start_now: bool = True,
) -> BlockingScheduler:
    """A scheduler with one job: the sync → score → notify pipeline on an interval.

    The job never overlaps itself (`max_instances=1`), missed runs collapse into one
    (`coalesce`), and a run late by less than half an interval still happens.
    """
    interval = max(1, config.sync_interval_minutes) * 60
    scheduler = BlockingScheduler(timezone=config.timezone)
    scheduler.add_job(
        pipeline,
        IntervalTrigger(seconds=interval, timezone=config.timezone),
        id=PIPELINE_JOB_ID,
        name="sync, score and notify",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=interval // 2,
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
