"""The SQL source: a warehouse table read with a query per kind, incrementally with `:since`."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from sqlmodel import Session

import reports
from connectors.registry import sync_all
from connectors.sync import SyncOptions
from settings import ConfigError, Settings, SqlSourceSettings
from store.db import session_scope
from store.models import Account, UsageSnapshot
from store.upsert import bulk_upsert

QUERIES = """[sql.queries]
usage = '''
  select account_id, domain as account_domain, week_start, active_users, seats as licensed_seats
  from weekly_usage where loaded_at >= :since order by loaded_at'''
"""


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "create table weekly_usage (account_id text, domain text, week_start text, "
            "active_users integer, seats integer, loaded_at text)"
        )
        conn.executemany(
            "insert into weekly_usage values (?, ?, ?, ?, ?, ?)",
            [
                ("A1", "acme.test", "2026-11-02", 40, 50, "2026-11-09 06:00:00"),
                ("A1", "acme.test", "2026-11-09", 35, 50, "2026-11-16 06:00:00"),
                ("A2", None, "2026-11-09", -3, 10, "2026-11-16 06:00:00"),
            ],
        )
    return path


def _settings(warehouse: Path, tmp_path: Path, queries: str = QUERIES) -> Settings:
    sources = tmp_path / "sources.toml"
    sources.write_text(queries)
    return Settings(  # type: ignore[call-arg]  # pydantic-settings init kwargs
        _env_file=None,
        sql=SqlSourceSettings(url=SecretStr(f"sqlite:///{warehouse}")),
        sources_file=sources,
    )


def _usage(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(UsageSnapshot)) or 0)


def test_a_warehouse_query_syncs_incrementally(
    engine: Engine, warehouse: Path, tmp_path: Path
) -> None:
    with session_scope(engine) as session:
        bulk_upsert(session, Account, [{"source": "hubspot", "external_id": "A1", "name": "Acme"}])
    settings = _settings(warehouse, tmp_path)
    assert settings.enabled_sources() == ["sql"]
    first = sync_all(
        engine, settings, options=SyncOptions(clock=lambda: datetime(2026, 11, 20, tzinfo=UTC))
    )
    [usage] = first.streams
    assert (usage.source, usage.stream, usage.records, usage.quarantined) == ("sql", "usage", 2, 1)
    assert "active_users -3 is negative" in reports.quarantined(engine)[0]["reason"]
    with Session(engine) as session:
        rows = list(session.execute(select(UsageSnapshot)).scalars())
    assert {(r.account_ref, str(r.period_start), r.active_users) for r in rows} == {
        ("A1", "2026-11-02", 40),
        ("A1", "2026-11-09", 35),
    }
    assert all(r.account_id is not None for r in rows), "matched to the CRM account by id"

    with sqlite3.connect(warehouse) as conn:  # next week's load
        conn.execute(
            "insert into weekly_usage values ('A1', 'acme.test', '2026-11-16', 30, 50, "
            "'2026-11-23 06:00:00')"
        )
    later = datetime(2026, 11, 24, tzinfo=UTC)
    second = sync_all(engine, settings, options=SyncOptions(clock=lambda: later))
    assert second.streams[0].records == 1, "only rows loaded since the last run"
    assert _usage(engine) == 3
    third = sync_all(
        engine, settings, options=SyncOptions(clock=lambda: later + timedelta(hours=1))
    )
    assert third.streams[0].records == 0


def test_bad_queries_are_named_with_the_fix(
    engine: Engine, warehouse: Path, tmp_path: Path
) -> None:
    broken = _settings(warehouse, tmp_path, "[sql.queries]\nusage = 'select * from nowhere'\n")
    [result] = sync_all(engine, broken).streams
    assert result.status == "failed"
    assert result.error is not None
    assert "no such table: nowhere" in result.error
    assert "[sql.queries]" in result.error
    with pytest.raises(ConfigError, match="tickets_v2 are not kinds"):
        sync_all(engine, _settings(warehouse, tmp_path, "[sql.queries]\ntickets_v2 = 'x'\n"))
    with pytest.raises(ConfigError, match=r"add \[sql.queries\]"):
        sync_all(engine, _settings(warehouse, tmp_path, "[sql]\n"))
