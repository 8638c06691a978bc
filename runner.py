"""`health-agent run`: one instance that leads and runs the jobs, or stands by.

Any number of instances may share the database. On every heartbeat (a third of
SCHEDULER__LEASE_SECONDS) each takes or keeps the lease (`store.leader`). The one that
holds it starts the scheduler (`scheduler.start_clock`); the others keep no scheduler at all
and take over once the leader is gone. A leader that loses its lease stops its scheduler and
asks its job in progress to stop.

SIGTERM or SIGINT asks for a cooperative stop (`store.stopping`): a sync stops after its
current page, a delivery after its current Slack message. The leader keeps renewing its lease
until the job is done, so no standby starts meanwhile, then releases it, so that a standby
takes over at once. After SCHEDULER__STOP_SECONDS `run_forever` gives up waiting and says so;
what the job committed stands.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from jobs import use_runtime
from scheduler import JobSpec, configured_jobs, start_clock, wait_idle
from settings import Settings
from store import stopping
from store.leader import Leadership, current_leader
from store.types import utcnow

__all__ = ["run_forever"]

log = logging.getLogger(__name__)


def _on_signals() -> Callable[[], None]:
    """SIGTERM and SIGINT request a stop; returns what puts the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.request_stop()  # only sets a flag: safe whatever the main thread was doing

    for sig in previous:
        signal.signal(sig, stop)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _pause(seconds: float) -> None:
    """Sleep, waking early when a stop is requested."""
    deadline = time.monotonic() + seconds
    while not stopping.shutting_down() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))


def _stop_clock(
    clock: BackgroundScheduler, timeout: float, leader: Leadership, *, lost: bool = False
) -> bool:
    """Start no more jobs and wait for the one in progress to stop; False after `timeout`.

    After a stop request the lease is renewed meanwhile, so no standby starts while the job
    finishes its page; after losing the lease, the job is interrupted the same way.
    """
    clock.shutdown(wait=False)
    deadline = time.monotonic() + timeout
    interrupt: AbstractContextManager[None] = stopping.interrupting() if lost else nullcontext()
    with interrupt:
        while not wait_idle(min(leader.heartbeat, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                log.warning("the job in progress did not stop within %.0f s", timeout)
                return False
            if not lost:
                leader.hold()
    return True


class _Turn:
    """One instance over time: it leads, with a running scheduler, or it stands by."""

    def __init__(
        self, settings: Settings, specs: Sequence[JobSpec], leader: Leadership, console: Console
    ) -> None:
        self.settings, self.specs, self.leader, self.console = settings, specs, leader, console
        self.clock: BackgroundScheduler | None = None
        self._said = ""

    def beat(self) -> None:
        """Take or keep the lease; start the scheduler on taking it, stop it on losing it."""
        config = self.settings.scheduler
        if self.leader.hold():
            if self.clock is None:
                try:
                    self.clock = start_clock(self.settings.database_url, config, self.specs)
                except SQLAlchemyError as exc:
                    log.warning("cannot start the scheduler: %s", exc)
                    self.leader.release()
                else:
                    self._say(f"{self.leader.holder} leads and runs the jobs")
        elif self.clock is not None:
            self._say(f"{self.leader.holder} lost the lease; stops its jobs")
            _stop_clock(self.clock, config.stop_seconds, self.leader, lost=True)
            self.clock = None
        if self.clock is None:
            self._say(self._standby_line())

    def stop(self) -> bool:
        """After a stop request: False when the job in progress did not stop in time."""
        if self.clock is None:
            return True
        self._say("stopping after the current page or message")
        stopped = _stop_clock(self.clock, self.settings.scheduler.stop_seconds, self.leader)
        self.clock = None
        return stopped

    def _standby_line(self) -> str:
        try:
            lease = current_leader(self.leader.engine, self.leader.name)
        except SQLAlchemyError:
            lease = None
        alive = lease is not None and lease.expires_at > utcnow()
        other = lease.holder if lease is not None and alive else self.leader.holder
        who = "no one" if other == self.leader.holder else other
        return f"{self.leader.holder} stands by ({who} leads)"

    def _say(self, line: str) -> None:
        if line != self._said:
            self.console.print(line, highlight=False, markup=False)
            self._said = line


def run_forever(
    settings: Settings, engine: Engine, console: Console, *, leadership: Leadership | None = None
) -> bool:
    """Lead or stand by until SIGTERM or SIGINT.

    Returns False when the job in progress did not stop within SCHEDULER__STOP_SECONDS (its
    thread still runs: the caller should exit the process).
    """
    config = settings.scheduler
    leader = leadership or Leadership(engine, lease_seconds=config.lease_seconds)
    turn = _Turn(settings, configured_jobs(settings), leader, console)
    restore = _on_signals()
    try:
        with use_runtime(settings, engine, console, leader):
            while not stopping.shutting_down():
                turn.beat()
                _pause(leader.heartbeat)
            return turn.stop()
    finally:
        leader.release()
        restore()
