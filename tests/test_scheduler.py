"""The scheduler: jobs from configuration, kept in the database, run once per slot by a leader.

In-process: the jobs and their triggers, the job store across restarts (and migrations that
leave it alone), slots handed to each run and claimed once. With real `health-agent run`
processes: two instances on PostgreSQL, one leads and the other takes over when it is
killed; SIGTERM stops a sync after its page and exits cleanly; jobs persist across a restart.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TypeVar

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from rich.console import Console
from sqlalchemy import Engine, column, select, table
from sqlmodel import Session, SQLModel
from starlette.types import ASGIApp, Receive, Scope, Send

import jobs
import runner
import scheduler
from sandbox.book import generate_book
from sandbox.hubspot import HUBSPOT_TOKEN, hubspot_app
from sandbox.server import serve_apps
from settings import ConfigError, Schedule, SchedulerSettings, Settings
from store import stopping
from store.db import alembic_config, make_engine
from store.leader import Leadership, current_leader
from store.models import Account, JobRun, SyncRun
from store.types import utcnow

REPO = Path(__file__).resolve().parent.parent
JOBS = table(scheduler.JOBS_TABLE, column("id"), column("next_run_time"))
T = TypeVar("T")


# --------------------------------------------------------------------------- configuration


def test_each_source_has_its_schedule_and_the_digest_its_cron() -> None:
    config = SchedulerSettings(sync_interval_minutes=60, timezone="Europe/Berlin")
    specs = scheduler.plan_jobs(
        config,
        {
            "hubspot": Schedule(every_minutes=15),
            "zendesk": Schedule(cron="*/5 8-18 * * 1-5"),
            "stripe": None,
        },
    )
    jobs = {spec.job_id: spec for spec in specs}
    assert list(jobs) == ["sync hubspot", "sync zendesk", "sync stripe", "digest"]
    hubspot, zendesk, stripe, digest = jobs.values()
    assert isinstance(hubspot.trigger, IntervalTrigger)
    assert hubspot.trigger.interval.total_seconds() == 15 * 60
    assert hubspot.grace_seconds == 15 * 30
    assert "hour='8-18'" in str(zendesk.trigger)
    assert isinstance(stripe.trigger, IntervalTrigger)
    assert stripe.trigger.interval.total_seconds() == 60 * 60
    assert all(s.start_now and s.kind == scheduler.CYCLE for s in (hubspot, zendesk, stripe))
    assert (hubspot.source, digest.kind, digest.start_now) == ("hubspot", scheduler.DIGEST, False)
    assert isinstance(digest.trigger, CronTrigger)
    monday = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 09:00 in Berlin: after the digest
    fire = digest.trigger.get_next_fire_time(None, monday)
    assert fire is not None
    assert (fire.isoformat(), fire.utcoffset()) == (
        "2026-11-30T08:00:00+01:00",
        timedelta(hours=1),
    ), "Monday 08:00 in the scheduler's time zone"

    quick = SchedulerSettings(sync_interval_seconds=5, digest_cron="off")
    [pipeline] = scheduler.plan_jobs(quick, {})
    assert (pipeline.job_id, pipeline.source, pipeline.grace_seconds) == ("pipeline", None, 2)
    assert isinstance(pipeline.trigger, IntervalTrigger)
    assert pipeline.trigger.interval.total_seconds() == 5

    with pytest.raises(ConfigError, match="sync zendesk: schedule cron 'every tuesday'"):
        scheduler.plan_jobs(config, {"zendesk": Schedule(cron="every tuesday")})
    with pytest.raises(ConfigError, match="SCHEDULER__DIGEST_CRON 'mondays'"):
        scheduler.plan_jobs(SchedulerSettings(digest_cron="mondays"), {})
    with pytest.raises(ConfigError, match="SCHEDULER__TIMEZONE 'Mars/Olympus'"):
        scheduler.plan_jobs(SchedulerSettings(timezone="Mars/Olympus"), {})


# --------------------------------------------------------------------------- the job store


def _stored(clock: BackgroundScheduler) -> dict[str, tuple[str, datetime | None]]:
    return {job.id: (str(job.trigger), job.next_run_time) for job in clock.get_jobs()}


def test_the_job_store_keeps_jobs_and_their_next_runs_and_migrations_leave_it_alone(
    sqlite_url: str,
) -> None:
    config = SchedulerSettings(sync_interval_minutes=30)
    sources: dict[str, Schedule | None] = {"hubspot": None, "stripe": Schedule(every_minutes=10)}
    first = scheduler.start_clock(
        sqlite_url, config, scheduler.plan_jobs(config, sources), paused=True
    )
    before = _stored(first)
    first.shutdown()
    assert set(before) == {"sync hubspot", "sync stripe", "digest"}
    assert before["sync hubspot"][0] == "interval[0:30:00]"

    sources = {"hubspot": None, "zendesk": None}  # stripe is off, zendesk is new
    again = scheduler.start_clock(
        sqlite_url, config, scheduler.plan_jobs(config, sources), paused=True
    )
    after = _stored(again)
    again.shutdown()
    assert set(after) == {"sync hubspot", "sync zendesk", "digest"}
    assert after["sync hubspot"] == before["sync hubspot"], "unchanged: its slots go on"
    assert after["digest"] == before["digest"]

    slower = SchedulerSettings(sync_interval_minutes=45)
    changed = scheduler.start_clock(
        sqlite_url, slower, scheduler.plan_jobs(slower, sources), paused=True
    )
    rescheduled = _stored(changed)
    changed.shutdown()
    assert rescheduled["sync hubspot"][0] == "interval[0:45:00]"

    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            names = set(connection.execute(select(JOBS.c.id)).scalars())
            assert names == {"sync hubspot", "sync zendesk", "digest"}
            unfiltered = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        assert ("remove_table", scheduler.JOBS_TABLE) in [
            (diff[0], diff[1].name) for diff in unfiltered if isinstance(diff, tuple)
        ], "without the filter, autogenerate would drop the job store"
        command.check(alembic_config(engine))  # raises if autogenerate finds anything to do
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- slots


@dataclass
class Ran:
    """What the runs of a test scheduler returned."""

    done: threading.Event
    results: list[object]


def _one_run(clock: BackgroundScheduler, slot: datetime) -> object:
    ran = Ran(threading.Event(), [])

    def record(event: JobExecutionEvent) -> None:
        ran.results.append(event.retval if event.exception is None else event.exception)
        ran.done.set()

    clock.add_listener(record, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    clock.add_job(
        jobs.run_job,
        DateTrigger(run_date=slot),
        args=(scheduler.CYCLE, None),
        id=scheduler.PIPELINE_JOB_ID,
        misfire_grace_time=3600,
    )
    assert ran.done.wait(30), "the job ran"
    [result] = ran.results
    return result


def _clock() -> BackgroundScheduler:
    clock = BackgroundScheduler(executors={"default": scheduler.SlotExecutor()}, timezone=UTC)
    clock.start()
    return clock


def test_each_run_knows_its_slot_and_a_slot_runs_once(
    db_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env, no sources file: no source is enabled
    for variable in [name for name in os.environ if "__" in name]:
        monkeypatch.delenv(variable)
    settings = Settings(database_url=db_url)
    console = Console(file=io.StringIO())
    slot = utcnow().replace(microsecond=0) - timedelta(seconds=1)
    seen: list[datetime | None] = []

    def note_slot() -> None:
        seen.append(scheduler.current_slot())

    probe = _clock()
    try:
        probe.add_job(note_slot, DateTrigger(run_date=slot), misfire_grace_time=3600)
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        probe.shutdown()
    assert seen == [slot], "the executor hands the run the time it was scheduled for"

    standby = Leadership(engine, holder="standby:2")  # never took the lease
    with jobs.use_runtime(settings, engine, console, standby):
        other = _clock()
        try:
            assert _one_run(other, slot) == "skipped: not leading"
        finally:
            other.shutdown()
    with Session(engine) as session:
        assert session.execute(select(JobRun)).first() is None

    with jobs.use_runtime(settings, engine, console):
        results = []
        for _instance in range(2):  # two instances (or one, restarted) in the same slot
            clock = _clock()
            try:
                results.append(_one_run(clock, slot))
            finally:
                clock.shutdown()
    assert results == ["finished", "skipped: slot taken"]
    with Session(engine) as session:
        [run] = session.execute(select(JobRun)).scalars()
    assert (run.job_id, run.slot, run.status, run.error) == ("pipeline", slot, "finished", None)
    assert run.finished_at is not None
    assert "scored 0 of 0 accounts" in console.file.getvalue()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- stopping


@pytest.fixture
def no_stop_left_behind() -> Iterator[None]:
    stopping.reset()
    yield
    stopping.reset()


@pytest.mark.usefixtures("no_stop_left_behind")
def test_a_leader_that_loses_its_lease_stops_its_job_and_may_lead_again(sqlite_url: str) -> None:
    started, release = threading.Event(), threading.Event()
    saw: list[bool] = []

    def long_job() -> None:  # a sync with many pages: it asks between pages
        started.set()
        while not stopping.stop_requested() and not release.is_set():
            time.sleep(0.01)
        saw.append(stopping.stop_requested())

    engine = make_engine(sqlite_url)
    leader = Leadership(engine, holder="a:1", lease_seconds=3)
    try:
        for lost, patience in ((True, 10.0), (False, 0.3)):
            clock = _clock()
            clock.add_job(long_job, "interval", hours=1, next_run_time=utcnow())
            assert started.wait(10)
            stopped = runner._stop_clock(clock, patience, leader, lost=lost)
            assert stopped is lost, "lost: interrupted; stopping: a job that ignores it times out"
            assert not stopping.stop_requested(), "the next job may run once it is over"
            release.set()
            assert scheduler.wait_idle(10)
            started.clear()
            release.clear()
        assert saw == [True, False]
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- processes


@dataclass
class Instance:
    """A `health-agent run` process of this test, its output in a file."""

    proc: subprocess.Popen[str]
    log: Path
    handle: IO[str]

    @property
    def holder_pid(self) -> str:
        return f":{self.proc.pid}"

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def start_instance(tmp_path: Path) -> Iterator[Callable[..., Instance]]:
    """Start `health-agent run` on a database; every process started is ended afterwards."""
    started: list[Instance] = []

    def start(database_url: str, name: str, **variables: str) -> Instance:
        env = {k: v for k, v in os.environ.items() if "__" not in k and k != "DATABASE_URL"}
        env.update(PYTHONPATH=str(REPO), DATABASE_URL=database_url, **variables)
        log = tmp_path / f"{name}.log"
        handle = log.open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "run"],
            cwd=tmp_path,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(Instance(proc, log, handle))
        return started[-1]

    yield start
    for instance in started:
        if instance.proc.poll() is None:
            instance.proc.kill()
            instance.proc.wait(10)
        instance.handle.close()


def _eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _runs(engine: Engine) -> list[JobRun]:
    with Session(engine) as session:
        return list(session.execute(select(JobRun).order_by(JobRun.slot, JobRun.id)).scalars())


def _stop(instance: Instance, timeout: float = 30) -> int:
    instance.proc.send_signal(signal.SIGTERM)
    return instance.proc.wait(timeout)


@pytest.mark.slow
@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_two_instances_one_leads_and_the_other_takes_over_when_it_is_killed(
    db_url: str, engine: Engine, start_instance: Callable[..., Instance]
) -> None:
    interval = 3
    quick = {"SCHEDULER__SYNC_INTERVAL_SECONDS": str(interval), "SCHEDULER__LEASE_SECONDS": "3"}
    instances = [start_instance(db_url, f"run-{n}", **quick) for n in (1, 2)]

    def two_runs() -> list[JobRun] | None:
        runs = [r for r in _runs(engine) if r.status == "finished"]
        return runs if len(runs) >= 2 else None

    first_runs = _eventually(two_runs, 60, "the leader's first two runs")
    lease = current_leader(engine)
    assert lease is not None
    [leader] = [i for i in instances if lease.holder.endswith(i.holder_pid)]
    [standby] = [i for i in instances if i is not leader]
    assert {run.holder for run in first_runs} == {lease.holder}, "only the leader runs jobs"
    _eventually(
        lambda: True if f"stands by ({lease.holder} leads)" in standby.output() else None,
        10,
        "the standby to see the leader",
    )
    assert standby.proc.poll() is None

    leader.proc.kill()  # SIGKILL: no release, no goodbye
    leader.proc.wait(10)
    killed_at = utcnow()

    def standby_runs() -> list[JobRun] | None:
        runs = [r for r in _runs(engine) if r.holder != lease.holder and r.status == "finished"]
        return runs if len(runs) >= 2 else None

    taken = _eventually(standby_runs, 4 * interval + 30, "the standby's first two runs")
    assert taken[0].started_at - killed_at <= timedelta(seconds=2 * interval), (
        "the standby takes over within two intervals"
    )
    assert f"{taken[0].holder} leads and runs the jobs" in standby.output()
    assert _stop(standby) == 0

    runs = _runs(engine)
    assert len({(r.job_id, r.slot) for r in runs}) == len(runs), "no slot ran twice"
    holders = [r.holder for r in runs]
    cut = holders.index(taken[0].holder)
    assert set(holders[:cut]) == {lease.holder}
    assert set(holders[cut:]) == {taken[0].holder}, "one leader at a time"
    assert [r.slot for r in runs] == sorted({r.slot for r in runs})
    assert {r.job_id for r in runs} == {"pipeline"}
    released = current_leader(engine)
    assert released is not None
    assert released.holder == taken[0].holder
    assert released.expires_at <= utcnow(), "a clean stop releases the lease"
    assert "Traceback" not in standby.output()


def _slow_search(app: ASGIApp, seconds: float) -> ASGIApp:
    """`app`, answering searches `seconds` late: a vendor with a long export."""

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/search"):
            await asyncio.sleep(seconds)
        await app(scope, receive, send)

    return slow


@pytest.mark.slow
def test_sigterm_stops_a_sync_after_its_page_and_exits_cleanly(
    sqlite_url: str, start_instance: Callable[..., Instance]
) -> None:
    accounts = 450  # three pages of companies, of 200 (HubSpot's search limit)
    crm = hubspot_app(generate_book(accounts=accounts))
    with serve_apps({"hubspot": _slow_search(crm, 1.0)}) as base:
        run = start_instance(
            sqlite_url,
            "run",
            HUBSPOT__TOKEN=HUBSPOT_TOKEN,
            HUBSPOT__BASE_URL=f"{base}/hubspot",
            SCHEDULER__STOP_SECONDS="20",
        )
        engine = make_engine(sqlite_url)
        try:

            def some_companies() -> int | None:
                with Session(engine) as session:
                    stored = len(session.execute(select(Account.id)).all())
                return stored if stored else None

            assert _eventually(some_companies, 60, "the first page of companies") < accounts
            assert _stop(run, timeout=20) == 0
            with Session(engine) as session:
                stored = len(session.execute(select(Account.id)).all())
                streams = {r.stream: r for r in session.execute(select(SyncRun)).scalars()}
            [job] = _runs(engine)
            lease = current_leader(engine)
        finally:
            engine.dispose()
    assert 0 < stored < accounts, "the sync stopped part-way"
    assert streams["companies"].status == "stopped"
    assert streams["companies"].finished_at is not None
    assert "deals" not in streams, "no stream starts after the stop"
    assert (job.job_id, job.status) == ("sync hubspot", "stopped")
    assert lease is not None
    assert lease.holder.endswith(run.holder_pid)
    assert lease.expires_at <= utcnow()
    output = run.output()
    assert "stopping after the current page or message" in output
    assert "stop requested before its next page" in output
    assert "Traceback" not in output


@pytest.mark.slow
def test_jobs_persist_in_the_job_store_across_a_restart(
    sqlite_url: str, start_instance: Callable[..., Instance]
) -> None:
    engine = make_engine(sqlite_url)

    def stored() -> dict[str, float]:
        with engine.connect() as connection:
            rows = connection.execute(select(JOBS.c.id, JOBS.c.next_run_time)).all()
        return {job_id: next_run for job_id, next_run in rows}

    try:
        first = start_instance(sqlite_url, "first")
        _eventually(
            lambda: True if [r for r in _runs(engine) if r.status == "finished"] else None,
            60,
            "the first cycle",
        )
        assert _stop(first) == 0
        before = stored()
        assert set(before) == {"pipeline", "digest"}
        [ran] = _runs(engine)
        assert before["pipeline"] == pytest.approx((ran.slot + timedelta(hours=1)).timestamp())

        again = start_instance(sqlite_url, "again")
        _eventually(
            lambda: True if "leads and runs the jobs" in again.output() else None,
            60,
            "the restarted instance to lead",
        )
        assert stored() == before, "the same jobs with the same next runs: no run at start"
        assert _stop(again) == 0
        assert len(_runs(engine)) == 1
    finally:
        engine.dispose()
