"""What the scheduled jobs do, each run once in its slot, and what they run with.

`run_job(kind, source)` is the function every stored job names. It runs in the process that
leads: it uses the settings, engine and leadership `use_runtime` installed (`runner.py` does),
or builds settings and engine of its own. Before it does anything it checks that this
instance still leads and claims its slot, the time it was scheduled for, in `job_runs`
(`store.job_runs`); a slot claimed before, by another instance or before a restart, does not
run again, whatever the leases say. The run is then marked `finished`, `stopped` (a stop
request ended it at a safe point) or `failed` with the error, scrubbed of secrets.

A cycle (`CYCLE`) syncs one source (or none), scores and notifies, as `pipeline.cycle`
does, and gives up between steps once a stop is requested. The digest (`DIGEST`) sends the
weekly digests of the last complete week, as `health-agent digest` does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from rich.console import Console
from sqlalchemy import Engine

import views
from logs import log_context
from scheduler import CYCLE, DIGEST, current_slot, job_id_of, zone_of
from settings import Settings, get_settings
from store import stopping
from store.db import open_store
from store.job_runs import claim_slot, finish_run
from store.leader import Leadership, default_holder
from store.teams import configure_teams
from store.types import utcnow

__all__ = ["DIGEST_DIR", "run_job", "use_runtime"]

log = logging.getLogger(__name__)

DIGEST_DIR = Path("digests")
"""Where the digest charts are written, as `health-agent digest` does."""


@dataclass
class _Runtime:
    """What jobs run with in this process."""

    settings: Settings
    engine: Engine
    console: Console
    leader: Leadership | None = None
    holder: str = field(default_factory=default_holder)


class _Current:
    """The process's runtime: the one `use_runtime` installs, else one built from settings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runtime: _Runtime | None = None

    def use(self, runtime: _Runtime | None) -> None:
        with self._lock:
            self._runtime = runtime

    def get(self) -> _Runtime:
        with self._lock:
            if self._runtime is None:
                settings = get_settings()
                self._runtime = _Runtime(settings, open_store(settings.database_url), Console())
            return self._runtime


_CURRENT = _Current()


@contextmanager
def use_runtime(
    settings: Settings, engine: Engine, console: Console, leader: Leadership | None = None
) -> Iterator[None]:
    """Jobs run in this process within the block use these (and run only while `leader` leads)."""
    holder = leader.holder if leader is not None else default_holder()
    _CURRENT.use(_Runtime(settings, engine, console, leader, holder))
    try:
        yield
    finally:
        _CURRENT.use(None)


def run_job(kind: str, source: str | None = None) -> str:
    """Run one scheduled job in its slot: the function every stored job refers to.

    Returns what happened: `finished`, `stopped`, `failed`, or `skipped: <why>`.
    """
    job_id = job_id_of(kind, source)
    runtime = _CURRENT.get()
    slot = current_slot() or utcnow()
    with log_context(job_id=job_id):
        if runtime.leader is not None and not runtime.leader.is_leader():
            log.warning("%s: skipped, this instance does not lead", job_id)
            return "skipped: not leading"
        if stopping.stop_requested():
            return "skipped: stopping"
        run_id = claim_slot(runtime.engine, job_id, slot, runtime.holder)
        if run_id is None:
            log.warning("%s: the slot of %s ran before, skipped", job_id, slot.isoformat())
            return "skipped: slot taken"
        status, error = "finished", None
        try:
            if _WORK[kind](runtime, source):
                status = "stopped"
        except Exception as exc:
            status = "failed"
            error = views.scrub(f"{type(exc).__name__}: {exc}", runtime.settings.secrets())
            log.error("%s failed: %s", job_id, error)
            log.debug("%s failed", job_id, exc_info=True)
        finish_run(runtime.engine, run_id, status, error)
        return status


def _cycle(runtime: _Runtime, source: str | None) -> bool:
    """Sync (one source, if any), score, notify; True when it stopped early."""
    import pipeline

    settings, engine, console = runtime.settings, runtime.engine, runtime.console
    today = date.today()
    if settings.enabled_sources():
        pipeline.print_sync_summary(console, pipeline.sync(engine, settings, console, source))
    if stopping.stop_requested():
        return True
    scores = pipeline.score(engine, settings, today)
    console.print(pipeline.describe_scores(scores), highlight=False)
    if stopping.stop_requested():
        return True
    console.print(pipeline.notify(engine, settings, today).describe(), highlight=False)
    return stopping.stop_requested()


def _digest(runtime: _Runtime, _source: str | None) -> bool:
    """The weekly digests of the last complete week, once per team and destination."""
    from notifications.digest import DigestError, choose_teams, default_week_ending, send_digests
    from notifications.slack import make_slack_client
    from store.money import Rates

    settings, engine = runtime.settings, runtime.engine
    if not settings.slack.enabled():
        log.warning("weekly digest: Slack is not configured (SLACK__BOT_TOKEN); nothing sent")
        return False
    today = datetime.now(zone_of(settings.scheduler)).date()
    configure_teams(engine, settings)
    try:
        teams = choose_teams(engine)
    except DigestError as exc:
        log.warning("weekly digest: %s", exc)
        return False
    client = make_slack_client(settings)
    rates = Rates.from_settings(settings)
    summary = send_digests(
        engine, client, teams, default_week_ending(today), DIGEST_DIR, rates=rates
    )
    runtime.console.print(summary.describe(), highlight=False)
    return False


_WORK: dict[str, Callable[[_Runtime, str | None], bool]] = {CYCLE: _cycle, DIGEST: _digest}
