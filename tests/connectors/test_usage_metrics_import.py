"""Usage in long form: from an imported file, the drop folder and a SQL query; and SQL traits."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from connectors import folder
from connectors.files import import_file
from connectors.registry import sync_all
from connectors.sync import SyncOptions, sync_connector
from settings import FolderSettings, Settings, SqlSourceSettings
from store.db import session_scope
from store.models import Account, AccountTrait, QuarantinedRecord, UsageMetric, UsageSnapshot
from store.traits import TraitValue, latest_traits
from store.upsert import bulk_upsert

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)

LONG = """account_id,account_domain,date,metric,value,period
A1,acme.test,2026-11-02,logins,12,
A1,acme.test,2026-11-02, reports_created ,3.5,day
A2,,2026-11-02,api_calls,1000,week
"""

WEEKLY_LONG = """account_id,account_domain,week_start,metric,value
A1,acme.test,2026-11-02,active_users,40
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    return path


def _metrics(engine: Engine) -> set[tuple[str | None, date, int, str, float]]:
    with Session(engine) as session:
        rows = session.execute(select(UsageMetric)).scalars()
        return {(r.account_ref, r.day, r.period_days, r.metric, r.value) for r in rows}


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _reasons(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        rows = session.execute(select(QuarantinedRecord)).scalars()
        return {q.record_key: q.reason for q in rows if q.resolved_at is None}


def test_long_form_rows_become_usage_metrics(engine: Engine, tmp_path: Path) -> None:
    summary = import_file(engine, "usage", _write(tmp_path, "usage.csv", LONG), now=NOW)
    assert (summary.records, summary.quarantined) == (3, 0)
    day = date(2026, 11, 2)
    assert _metrics(engine) == {
        ("A1", day, 1, "logins", 12.0),
        ("A1", day, 1, "reports_created", 3.5),
        ("A2", day, 7, "api_calls", 1000.0),
    }
    import_file(engine, "usage", _write(tmp_path, "usage.csv", LONG), now=NOW)
    import_file(engine, "usage", _write(tmp_path, "weekly.csv", WEEKLY_LONG), now=NOW)
    assert _count(engine, UsageMetric) == 4  # a re-import upserts
    assert ("A1", day, 7, "active_users", 40.0) in _metrics(engine)
    assert _count(engine, UsageSnapshot) == 0


def test_the_weekly_shape_still_makes_snapshots(engine: Engine, tmp_path: Path) -> None:
    weekly = (
        "account_id,account_domain,week_start,active_users,licensed_seats\nA1,,2026-11-02,4,9\n"
    )
    summary = import_file(engine, "usage", _write(tmp_path, "u.csv", weekly), now=NOW)
    assert summary.records == 1
    assert _count(engine, UsageSnapshot) == 1
    assert _count(engine, UsageMetric) == 0


HOSTILE = (
    "account_id,account_domain,date,metric,value\n"
    "A1,,2026-11-02,logins,1\n"  # line 2: good
    "A1,,2026-11-02,big,1e400\n"
    "A1,,2026-11-02,huge,99999999999999999999\n"
    "A1,,2026-11-02," + "m" * 5000 + ",1\n"
    "A1,,2026-11-02,nul\x00name,1\n"
    "A1,,2026-11-02,\udcfe,1\n"
    "A1,,2026-13-45,logins,1\n"
    "A1,,2026-11-02,,1\n"
    ",,2026-11-02,logins,1\n"
    "A1,,2026-11-02,logins,nan\n"
    "A1,,2026-11-02,logins,1,extra\n"
    "A1,,2026-11-03,logins,2\n"  # line 13: good
)


def test_hostile_rows_are_quarantined_and_the_good_kept(engine: Engine, tmp_path: Path) -> None:
    summary = import_file(engine, "usage", _write(tmp_path, "bad.csv", HOSTILE), now=NOW)
    assert (summary.rows, summary.records, summary.quarantined) == (12, 2, 10)
    reasons = _reasons(engine)
    assert "finite" in reasons["bad.csv line 3"]
    assert "finite" in reasons["bad.csv line 4"]
    assert "5000 characters" in reasons["bad.csv line 5"]
    assert "NUL" in reasons["bad.csv line 6"]
    assert "UTF-8" in reasons["bad.csv line 7"]
    assert "date" in reasons["bad.csv line 8"]
    assert "metric is empty" in reasons["bad.csv line 9"]
    assert "both empty" in reasons["bad.csv line 10"]
    assert "finite" in reasons["bad.csv line 11"]
    assert "more values" in reasons["bad.csv line 12"]
    assert {m for _, _, _, m, _ in _metrics(engine)} == {"logins"}


def test_a_long_form_file_in_the_drop_folder(engine: Engine, tmp_path: Path) -> None:
    root = tmp_path / "drop"
    root.mkdir()
    path = _write(root, "usage-2026-11.csv", LONG)
    os.utime(path, (1_000, 1_000))
    settings = Settings(_env_file=None, folder=FolderSettings(path=root, settle_seconds=10))
    connector = folder.build(settings, clock=lambda: 2_000.0)
    results = {r.stream: r for r in sync_connector(engine, connector)}
    assert results["usage"].records == 3
    assert len(_metrics(engine)) == 3


QUERIES = """[sql.queries]
accounts = "select id, name, tier from crm_accounts"
usage = "select account_id, null as account_domain, day as date, metric, value from metrics"
traits = "select account_id, name, value, kind, as_of from attributes"
"""


def _warehouse(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("create table crm_accounts (id text, name text, tier text)")
        conn.execute("insert into crm_accounts values ('W1', 'Wonka', 'gold')")
        conn.execute("create table metrics (account_id text, day text, metric text, value real)")
        conn.executemany(
            "insert into metrics values (?, ?, ?, ?)",
            [("H1", "2026-11-02", "logins", 5), ("H1", "2026-11-03", "logins", 7)],
        )
        conn.execute(
            "create table attributes (account_id text, name text, value text, kind text, "
            "as_of text)"
        )
        conn.executemany(
            "insert into attributes values (?, ?, ?, ?, ?)",
            [
                ("H1", "plan", "pro", None, "2026-10-01"),
                ("H1", "seats", "25", "number", None),
                ("NOPE", "plan", "basic", None, None),
                ("H1", "seats2", "many", "number", None),
                ("H1", "x" * 5000, "1", None, None),
            ],
        )


def test_sql_usage_and_traits_in_long_form(engine: Engine, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.db"
    _warehouse(warehouse)
    sources = tmp_path / "sources.toml"
    sources.write_text(QUERIES)
    settings = Settings(  # type: ignore[call-arg]  # pydantic-settings init kwargs
        _env_file=None,
        sql=SqlSourceSettings(url=SecretStr(f"sqlite:///{warehouse}")),
        sources_file=sources,
    )
    with session_scope(engine) as session:
        bulk_upsert(session, Account, [{"source": "hubspot", "external_id": "H1", "name": "H"}])
    summary = sync_all(engine, settings, options=SyncOptions(clock=lambda: NOW))
    by_stream = {r.stream: r for r in summary.streams}
    assert [r.stream for r in summary.streams] == ["accounts", "usage", "traits"]
    assert by_stream["usage"].records == 2
    assert (by_stream["traits"].records, by_stream["traits"].quarantined) == (2, 3)
    reasons = _reasons(engine)
    assert any("'NOPE' matches no stored account" in r for r in reasons.values())
    assert any("not a number" in r for r in reasons.values())
    assert any("5000 characters" in r for r in reasons.values())
    with Session(engine) as session:
        hubspot_id = session.scalar(select(Account.id).where(Account.external_id == "H1"))
        wonka = session.scalar(select(Account.id).where(Account.external_id == "W1"))
        before = latest_traits(session, ["plan"], datetime(2026, 9, 1, tzinfo=UTC))
        after = latest_traits(session, ["plan", "seats", "tier"], NOW + timedelta(days=1))
    assert before == {}
    assert after["plan"][hubspot_id] == TraitValue("category", None, "pro")
    assert after["seats"][hubspot_id] == TraitValue("number", 25.0, None)
    assert after["tier"][wonka] == TraitValue("category", None, "gold")
    rows = _count(engine, AccountTrait)
    sync_all(engine, settings, options=SyncOptions(clock=lambda: NOW))
    assert _count(engine, AccountTrait) == rows
