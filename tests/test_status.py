"""`health-agent status` and `/metrics`, on both databases.

The store is seeded with sync runs, leases, scheduler jobs, job runs, alerts and quarantined
records; the command's JSON, text and exit code, and the metrics' parsed samples, must say
exactly what the store holds, with no configured secret anywhere in the output. One test
syncs the Zendesk emulator with a rejected token and shows the genuine failure.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from rich.console import Console
from sqlalchemy import Engine
from starlette.applications import Starlette
from typer.testing import CliRunner

import status
from cli import app
from connectors.http import ClientOptions, RetryPolicy
from connectors.registry import sync_all
from sandbox.book import generate_book
from sandbox.ratelimit import Faults, Limits
from sandbox.server import serve_apps
from sandbox.zendesk import ZENDESK_EMAIL, zendesk_app
from settings import ConfigError, Settings, StripeSettings, ZendeskSettings
from store.db import make_engine, session_scope
from store.models import Alert, JobRun, Lease, QuarantinedRecord, SyncRun, Ticket
from store.types import utcnow

SECRET = "zd-token-SUPERSECRET-4242"
STRIPE_KEY = "sk_test_STATUSKEY99"
ERROR = (
    "zendesk: GET https://acme.zendesk.com/api/v2/incremental/tickets/cursor.json failed: "
    "ConnectError [Errno 111] Connection refused (gave up after 5 attempts)"
)
NOW = datetime.fromisoformat("2031-03-03T12:00:00+00:00")  # later than any test run: APScheduler
# keeps a start date in the future as the next run time


def noop() -> None:
    """A job for the scheduler's store (it is never run)."""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without a `.env` or a `sources.toml`."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _settings(
    db_url: str = "sqlite://", sources_file: Path | None = None, **extra: Any
) -> Settings:
    return Settings(
        _env_file=None,
        database_url=db_url,
        sources_file=sources_file,
        zendesk=ZendeskSettings(
            subdomain="acme", email="agent@acme.test", api_token=SecretStr(SECRET)
        ),
        stripe=StripeSettings(api_key=SecretStr(STRIPE_KEY)),
        **extra,
    )


def _env(db_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "ZENDESK__SUBDOMAIN": "acme",
        "ZENDESK__EMAIL": "agent@acme.test",
        "ZENDESK__API_TOKEN": SECRET,
        "STRIPE__API_KEY": STRIPE_KEY,
        "COLUMNS": "200",
        **extra,
    }


def _run(
    engine: Engine,
    source: str,
    stream: str,
    *,
    finished: datetime,
    status_: str = "ok",
    records: int = 0,
    error: str | None = None,
) -> None:
    with session_scope(engine) as session:
        session.add(
            SyncRun(
                source=source,
                stream=stream,
                status=status_,
                started_at=finished - timedelta(seconds=40),
                finished_at=finished,
                records=records,
                error=error,
            )
        )


def _seed_fresh(engine: Engine, now: datetime) -> None:
    """Both sources synced within the last hour."""
    _run(engine, "zendesk", "organizations", finished=now - timedelta(minutes=50), records=3)
    _run(engine, "zendesk", "tickets", finished=now - timedelta(minutes=40), records=7)
    _run(engine, "stripe", "customers", finished=now - timedelta(minutes=20), records=5)


def _seed_failure(engine: Engine, now: datetime) -> None:
    """Zendesk tickets synced 2 h ago, then failed 10 min ago with an error naming a URL."""
    _run(engine, "zendesk", "organizations", finished=now - timedelta(hours=3), records=2)
    _run(engine, "zendesk", "organizations", finished=now - timedelta(minutes=15), records=4)
    _run(engine, "zendesk", "tickets", finished=now - timedelta(hours=2), records=9)
    _run(
        engine,
        "zendesk",
        "tickets",
        finished=now - timedelta(minutes=10),
        status_="failed",
        records=1,
        error=ERROR,
    )
    _run(engine, "stripe", "customers", finished=now - timedelta(minutes=20), records=5)
    with session_scope(engine) as session:
        for n, deleted in ((1, None), (2, None), (3, now)):
            session.add(
                Ticket(
                    source="zendesk",
                    external_id=str(n),
                    status="open",
                    created_at=now,
                    updated_at=now,
                    deleted_at=deleted,
                )
            )
        for key, resolved in (("a", None), ("b", None), ("c", now)):
            session.add(
                QuarantinedRecord(
                    source="zendesk",
                    stream="tickets",
                    record_key=key,
                    reason="no id",
                    resolved_at=resolved,
                )
            )


def _by_source(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["source"]: row for row in data["sources"]}


# --------------------------------------------------------------------------- the command


def test_status_exits_1_after_a_failed_sync_and_shows_the_error_but_no_secret(
    engine: Engine, db_url: str, workdir: Path
) -> None:
    now = utcnow()
    _seed_failure(engine, now)
    with session_scope(engine) as session:  # an error that leaked the token must not show it
        session.add(
            JobRun(
                job_id="sync zendesk",
                slot=now - timedelta(minutes=11),
                holder="host-a",
                status="failed",
                error=f"401 for token {SECRET}\nat line 2",
            )
        )
    runner = CliRunner()
    result = runner.invoke(app, ["status", "--json"], env=_env(db_url))
    assert result.exit_code == 1, result.output
    assert SECRET not in result.stdout + result.stderr
    assert STRIPE_KEY not in result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["healthy"] is False
    zendesk, stripe = _by_source(data)["zendesk"], _by_source(data)["stripe"]
    assert zendesk["state"] == "failing"
    assert zendesk["failing"] == [
        {"stream": "tickets", "error": ERROR, "at": zendesk["failing"][0]["at"]}
    ]
    assert zendesk["last_error"]["error"] == ERROR
    assert zendesk["records_last_run"] == 4 + 1  # each stream's latest run
    assert zendesk["records_stored"] == 2  # the soft-deleted ticket is not counted
    assert zendesk["quarantined"] == 2
    assert zendesk["last_success"] is not None
    assert 2 * 3600 - 60 <= zendesk["lag_seconds"] <= 2 * 3600 + 60  # tickets: the stalest
    assert zendesk["stale_after_seconds"] == 3 * 3600
    assert zendesk["stale_after_from"] == "schedule"
    assert stripe["state"] == "ok"
    assert stripe["healthy"] is True
    assert data["problems"] == [f"zendesk: tickets failed: {ERROR}"]
    assert data["quarantined"] == {"zendesk": 2}
    [job] = data["job_runs"]
    assert job["status"] == "failed"
    assert job["error"] == "401 for token **** at line 2"

    text = runner.invoke(app, ["status"], env=_env(db_url))
    assert text.exit_code == 1
    assert SECRET not in text.stdout + text.stderr
    assert text.stdout.startswith("UNHEALTHY\n")
    assert "source zendesk: failing" in text.stdout
    assert "https://acme.zendesk.com/api/v2/incremental/tickets/cursor.json" in text.stdout
    assert "source stripe: ok" in text.stdout
    assert "quarantined: zendesk 2" in text.stdout


def test_status_exits_0_when_every_source_is_fresh(
    engine: Engine, db_url: str, workdir: Path
) -> None:
    _seed_fresh(engine, utcnow())
    result = CliRunner().invoke(app, ["status", "--json"], env=_env(db_url))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["healthy"] is True
    assert data["problems"] == []
    assert [s["source"] for s in data["sources"]] == ["zendesk", "stripe"]
    assert {s["state"] for s in data["sources"]} == {"ok"}
    assert _by_source(data)["zendesk"]["records_last_run"] == 10
    assert _by_source(data)["zendesk"]["last_error"] is None
    assert data["leader"] is None
    assert data["leases"] == []
    assert data["scheduler"] == {"has_run": False, "jobs": []}
    assert data["alerts"] == {"pending": 0, "oldest_pending": None, "by_status": {}}
    text = CliRunner().invoke(app, ["status"], env=_env(db_url))
    assert text.exit_code == 0
    assert text.stdout.startswith("healthy\n")
    assert "the scheduler has not run" in text.stdout


def test_syncs_of_sources_not_configured_here_are_shown_but_never_fail(
    engine: Engine, db_url: str, workdir: Path
) -> None:
    _seed_fresh(engine, utcnow())
    _run(engine, "hubspot", "companies", finished=utcnow() - timedelta(days=9), status_="failed")
    result = CliRunner().invoke(app, ["status", "--json"], env=_env(db_url))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["unconfigured_sources"] == ["hubspot"]
    assert [s["source"] for s in data["sources"]] == ["zendesk", "stripe"]
    text = CliRunner().invoke(app, ["status"], env=_env(db_url))
    assert "the store also holds syncs of hubspot, not configured here" in text.stdout


def test_stale_after_a_setting_or_the_sources_file_exits_1(
    engine: Engine, db_url: str, workdir: Path
) -> None:
    _seed_fresh(engine, utcnow())  # zendesk's last success is 50 min old
    env = _env(db_url, STATUS__STALE_AFTER_HOURS="0.5")
    result = CliRunner().invoke(app, ["status", "--json"], env=env)
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    zendesk = _by_source(data)["zendesk"]
    assert zendesk["state"] == "stale"
    assert zendesk["stale_after_seconds"] == 1800
    assert zendesk["stale_after_from"] == "STATUS__STALE_AFTER_HOURS"
    assert _by_source(data)["stripe"]["state"] == "ok"  # 20 min old
    assert data["problems"] == ["zendesk: stale (last success 50 min ago; stale after 30 min)"]

    (workdir / "sources.toml").write_text("[zendesk]\nstale_after_hours = 2\n")
    relaxed = CliRunner().invoke(app, ["status", "--json"], env=env)
    assert relaxed.exit_code == 0, relaxed.output
    zendesk = _by_source(json.loads(relaxed.stdout))["zendesk"]
    assert (zendesk["state"], zendesk["stale_after_from"]) == ("ok", "sources file")


# --------------------------------------------------------------------------- gather


def test_staleness_follows_the_schedule_with_an_injected_clock(
    engine: Engine, tmp_path: Path
) -> None:
    _seed_fresh(engine, NOW)
    settings = _settings()
    fresh = status.gather(engine, settings, now=NOW)
    assert fresh.healthy
    zendesk = fresh.sources[0]
    assert zendesk.last_success == NOW - timedelta(minutes=50)
    assert zendesk.stale_after == timedelta(hours=3)  # 3 x the 60-minute default
    assert zendesk.schedule == "every 1 h"

    later = status.gather(engine, settings, now=NOW + timedelta(hours=2, minutes=11))
    assert [s.state for s in later.sources] == ["stale", "ok"]
    assert not later.healthy
    assert later.problems() == ["zendesk: stale (last success 3 h 1 min ago; stale after 3 h)"]

    sources = tmp_path / "sources.toml"
    sources.write_text(
        "[zendesk]\nschedule = { every_minutes = 15 }\n\n"
        '[stripe]\nschedule = { cron = "0 6 * * *" }\n'
    )
    scheduled = status.gather(engine, _settings(sources_file=sources), now=NOW)
    zendesk, stripe = scheduled.sources
    assert zendesk.stale_after == timedelta(hours=1)  # 45 min, raised to the floor of an hour
    assert stripe.stale_after == timedelta(hours=72)  # 3 x a day between cron runs
    assert stripe.schedule == "cron 0 6 * * *"
    weekdays = tmp_path / "weekdays.toml"
    weekdays.write_text('[stripe]\nschedule = { cron = "0 6 * * 1-5" }\n')
    stripe = status.gather(engine, _settings(sources_file=weekdays), now=NOW).sources[1]
    assert stripe.stale_after == timedelta(days=9)  # 3 x the weekend gap
    weekdays.write_text('[stripe]\nschedule = { cron = "0 6 * * 8" }\n')
    with pytest.raises(ConfigError, match="sync stripe: schedule cron '0 6 \\* \\* 8'"):
        status.gather(engine, _settings(sources_file=weekdays), now=NOW)


def test_a_source_never_synced_or_with_a_stream_never_synced_is_unhealthy(
    engine: Engine,
) -> None:
    _run(engine, "zendesk", "organizations", finished=NOW - timedelta(minutes=5))
    _run(engine, "zendesk", "tickets", finished=NOW - timedelta(minutes=5), status_="running")
    found = status.gather(engine, _settings(), now=NOW)
    zendesk, stripe = found.sources
    assert (zendesk.state, zendesk.last_success, zendesk.lag) == ("stale", None, None)
    assert stripe.state == "never_synced"
    assert found.problems() == [
        "zendesk: stale (last success a stream never synced; stale after 3 h)",
        "stripe: never synced successfully",
    ]


def test_a_recovered_stream_is_healthy_but_keeps_its_last_error(engine: Engine) -> None:
    _run(
        engine,
        "stripe",
        "customers",
        finished=NOW - timedelta(hours=1),
        status_="failed",
        error=f"boom {STRIPE_KEY}",
    )
    _run(engine, "stripe", "customers", finished=NOW - timedelta(minutes=5), records=3)
    stripe = status.gather(engine, _settings(), now=NOW).sources[1]
    assert stripe.state == "ok"
    assert stripe.failing == ()
    assert stripe.last_error == status.Problem("customers", "boom ****", NOW - timedelta(hours=1))


def _add_scheduler_jobs(engine: Engine) -> None:
    """Jobs written to the job store by APScheduler itself, one of them paused."""
    store = SQLAlchemyJobStore(engine=engine)
    clock = BackgroundScheduler(jobstores={"default": store}, timezone="UTC")
    clock.start(paused=True)
    try:
        later = IntervalTrigger(minutes=60, start_date=NOW + timedelta(minutes=30))
        soon = IntervalTrigger(minutes=15, start_date=NOW + timedelta(minutes=5))
        clock.add_job(noop, later, id="sync zendesk")
        clock.add_job(noop, soon, id="sync stripe")
        clock.add_job(noop, later, id="digest").pause()
    finally:
        clock.shutdown(wait=False)


def test_leader_next_runs_job_runs_and_alerts_are_shown(engine: Engine) -> None:
    _seed_fresh(engine, NOW)
    _add_scheduler_jobs(engine)
    with session_scope(engine) as session:
        session.add(
            Lease(
                name="scheduler",
                holder="host-a:123",
                acquired_at=NOW - timedelta(hours=1),
                renewed_at=NOW - timedelta(seconds=10),
                expires_at=NOW + timedelta(seconds=50),
            )
        )
        for slot, state in ((NOW - timedelta(hours=2), "ok"), (NOW - timedelta(hours=1), "ok")):
            session.add(
                JobRun(
                    job_id="sync zendesk",
                    slot=slot,
                    holder="host-a:123",
                    status=state,
                    finished_at=slot + timedelta(minutes=1),
                )
            )
        session.add(
            JobRun(
                job_id="digest",
                slot=NOW - timedelta(days=1),
                holder="host-b:9",
                started_at=NOW - timedelta(days=1),
                status="failed",
                error="slack: channel_not_found",
            )
        )
        for n, (state, age) in enumerate((("pending", 3), ("pending", 1), ("sent", 9))):
            session.add(
                Alert(
                    fingerprint=f"f{n}",
                    rule="usage_drop",
                    status=state,
                    created_at=NOW - timedelta(hours=age),
                    sent_at=NOW if state == "sent" else None,
                )
            )
    found = status.gather(engine, _settings(), now=NOW)
    data = status.as_json(found)
    assert data["leader"] == {
        "name": "scheduler",
        "holder": "host-a:123",
        "acquired_at": (NOW - timedelta(hours=1)).isoformat(),
        "renewed_at": (NOW - timedelta(seconds=10)).isoformat(),
        "expires_at": (NOW + timedelta(seconds=50)).isoformat(),
        "alive": True,
    }
    assert data["scheduler"] == {
        "has_run": True,
        "jobs": [
            {"id": "sync stripe", "next_run_time": (NOW + timedelta(minutes=5)).isoformat()},
            {"id": "sync zendesk", "next_run_time": (NOW + timedelta(minutes=30)).isoformat()},
            {"id": "digest", "next_run_time": None},
        ],
    }
    assert [(r["job_id"], r["status"], r["slot"]) for r in data["job_runs"]] == [
        ("digest", "failed", (NOW - timedelta(days=1)).isoformat()),
        ("sync zendesk", "ok", (NOW - timedelta(hours=1)).isoformat()),
    ]
    assert data["alerts"] == {
        "pending": 2,
        "oldest_pending": (NOW - timedelta(hours=3)).isoformat(),
        "by_status": {"pending": 2, "sent": 1},
    }
    assert data["healthy"] is True

    plain = Console(file=io.StringIO(), width=200)
    status.print_status(plain, found)
    text = plain.file.getvalue()  # type: ignore[attr-defined]  # a StringIO, given above
    for line in (
        "leader: host-a:123 holds 'scheduler', renewed 2031-03-03 11:59 UTC (10 s ago), "
        "expires 2031-03-03 12:00 UTC (in 50 s)",
        "next run: sync stripe 2031-03-03 12:05 UTC (in 5 min)",
        "next run: digest paused",
        "last run: digest failed 2031-03-02 12:00 UTC (1 d ago): slack: channel_not_found",
        "alerts: 2 pending, oldest 2031-03-03 09:00 UTC (3 h ago)",
    ):
        assert line in text.splitlines(), (line, text)

    table = Console(file=io.StringIO(), width=200, force_terminal=True, color_system=None)
    status.print_status(table, found)
    shown = table.file.getvalue()  # type: ignore[attr-defined]  # a StringIO, given above
    assert "Sources (healthy)" in shown
    assert "Records (last run)" in shown
    assert "50 min ago" in shown


# --------------------------------------------------------------------------- metrics


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _get(engine: Engine, headers: Mapping[str, str] | None = None) -> httpx.Response:
    """`GET /metrics` of an app made of `status.routes` alone, served in process."""
    web = Starlette(routes=status.routes(engine, _settings()))

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=web)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
            return await client.get("/metrics", headers=headers)

    return asyncio.run(get())


def test_metrics_carry_what_the_store_holds(engine: Engine) -> None:
    now = utcnow()
    _seed_failure(engine, now)
    with session_scope(engine) as session:
        session.add(
            Lease(
                name="scheduler",
                holder="host-a",
                renewed_at=now,
                expires_at=now - timedelta(seconds=1),
            )
        )
        session.add(
            Alert(fingerprint="p", rule="r", status="pending", created_at=now - timedelta(hours=1))
        )
        session.add(Alert(fingerprint="s", rule="r", status="sent", sent_at=now))
        session.add(Alert(fingerprint="a", rule="r", status="acknowledged", sent_at=now))
    _add_scheduler_jobs(engine)
    response = _get(engine)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert SECRET not in response.text
    got = _samples(response.text)
    source = (("source", "zendesk"),)
    assert got[("health_agent_source_healthy", source)] == 0.0
    assert got[("health_agent_source_healthy", (("source", "stripe"),))] == 1.0
    assert abs(got[("health_agent_sync_lag_seconds", source)] - 7200) < 60
    assert got[("health_agent_sync_stale_after_seconds", source)] == 10800
    assert got[("health_agent_records_synced_total", source)] == 2 + 4 + 9 + 1
    assert got[("health_agent_records_synced_total", (("source", "stripe"),))] == 5
    assert got[("health_agent_sync_errors_total", source)] == 1
    assert got[("health_agent_sync_errors_total", (("source", "stripe"),))] == 0
    assert got[("health_agent_quarantined_records", source)] == 2
    assert got[("health_agent_alerts", (("status", "pending"),))] == 1
    assert got[("health_agent_alerts", (("status", "acknowledged"),))] == 1
    assert got[("health_agent_alerts_sent_total", ())] == 2
    assert got[("health_agent_alerts_pending", ())] == 1
    assert abs(got[("health_agent_alerts_pending_oldest_age_seconds", ())] - 3600) < 60
    assert got[("health_agent_leader_present", (("lease", "scheduler"),))] == 0.0  # expired
    next_run = got[("health_agent_job_next_run_timestamp_seconds", (("job", "sync stripe"),))]
    assert next_run == (NOW + timedelta(minutes=5)).timestamp()
    assert not any(
        name.endswith("next_run_timestamp_seconds") and labels == (("job", "digest"),)
        for name, labels in got
    )  # paused: no next run

    with session_scope(engine) as session:  # read at scrape time: a new lease shows at once
        lease = session.get(Lease, "scheduler")
        assert lease is not None
        lease.expires_at = utcnow() + timedelta(minutes=1)
    again = _samples(_get(engine).text)
    assert again[("health_agent_leader_present", (("lease", "scheduler"),))] == 1.0


def test_metrics_speak_openmetrics_when_asked(engine: Engine) -> None:
    response = _get(engine, {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_metrics_answer_503_when_the_store_does_not(tmp_path: Path) -> None:
    missing = make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    try:
        response = _get(missing)
    finally:
        missing.dispose()
    assert response.status_code == 503


# --------------------------------------------------------------------------- a real failure


def test_status_after_a_genuinely_failed_sync(engine: Engine, db_url: str, workdir: Path) -> None:
    """The Zendesk emulator refuses a wrong token: the run fails, status says so and why."""
    book = generate_book(accounts=15)
    with serve_apps({"zendesk": zendesk_app(book, limits=Limits.unlimited(Faults()))}) as base:
        settings = Settings(
            _env_file=None,
            zendesk=ZendeskSettings(
                email=ZENDESK_EMAIL, api_token=SecretStr(SECRET), base_url=f"{base}/zendesk"
            ),
        )
        quick = ClientOptions(sleep=lambda _: None, retry=RetryPolicy(attempts=2), timeout=10)
        summary = sync_all(engine, settings, ["zendesk"], client=quick)
        env = {
            "DATABASE_URL": db_url,
            "ZENDESK__BASE_URL": f"{base}/zendesk",
            "ZENDESK__EMAIL": ZENDESK_EMAIL,
            "ZENDESK__API_TOKEN": SECRET,
        }
        result = CliRunner().invoke(app, ["status", "--json"], env=env)
    assert not summary.ok
    assert result.exit_code == 1, result.output
    assert SECRET not in result.stdout + result.stderr
    [zendesk] = json.loads(result.stdout)["sources"]
    assert zendesk["state"] == "failing"
    assert zendesk["last_success"] is None
    [failure] = zendesk["failing"]
    assert "zendesk rejected" in failure["error"]
    assert "ZENDESK__API_TOKEN" in failure["error"]
