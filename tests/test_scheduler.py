"""`health-agent run`: the scheduled cycle runs at once, and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.book import generate_book
from sandbox.hubspot import HUBSPOT_TOKEN, hubspot_app
from sandbox.server import serve_apps
from scheduler import build_scheduler
from settings import ConfigError, Schedule, SchedulerSettings

REPO = Path(__file__).resolve().parent.parent


def test_each_source_has_its_schedule_and_jobs_never_overlap() -> None:
    config = SchedulerSettings(sync_interval_minutes=60, timezone="Europe/Berlin")
    scheduler = build_scheduler(
        config,
        {
            "sync hubspot": (Schedule(every_minutes=15), lambda: None),
            "sync zendesk": (Schedule(cron="*/5 8-18 * * 1-5"), lambda: None),
            "sync stripe": (None, lambda: None),
        },
    )
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert jobs["sync hubspot"].trigger.interval.total_seconds() == 15 * 60
    assert "hour='8-18'" in str(jobs["sync zendesk"].trigger)
    assert jobs["sync stripe"].trigger.interval.total_seconds() == 60 * 60
    for job in jobs.values():
        assert job.max_instances == 1
        assert job.coalesce is True
    assert jobs["sync hubspot"].misfire_grace_time == 15 * 30
    with pytest.raises(ConfigError, match="sync zendesk: schedule cron"):
        build_scheduler(config, {"sync zendesk": (Schedule(cron="every tuesday"), lambda: None)})


@pytest.fixture
def crm() -> Iterator[str]:
    with serve_apps({"hubspot": hubspot_app(generate_book(accounts=20))}) as base:
        yield base


@pytest.mark.slow
def test_run_syncs_then_stops_on_sigterm(crm: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "__" not in k and k != "DATABASE_URL"}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "HUBSPOT__TOKEN": HUBSPOT_TOKEN,
            "HUBSPOT__BASE_URL": f"{crm}/hubspot",
            "SCHEDULER__SYNC_INTERVAL_MINUTES": "60",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        seen = ""
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen += line
            if "band drops" in line:  # the notify step closes the first cycle
                break
        assert "Sync summary" in seen, seen
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, seen + rest
    assert "Traceback" not in seen + rest
    assert (tmp_path / "health-agent.db").exists()
