"""The drop folder: files land, are imported once, then move to processed/ or rejected/."""

from __future__ import annotations

import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from connectors import folder
from connectors.check import check_connector
from connectors.identity import resolve_identities
from connectors.registry import build_connectors
from connectors.sync import StreamResult, SyncOptions, sync_connector
from settings import FolderSettings, Settings
from store.db import session_scope
from store.models import Account, QuarantinedRecord, SurveyResponse, Ticket

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
CLOCK = 2_000_000_000.0
"""The folder's clock: files written at CLOCK - 60 have settled."""

ACCOUNTS = "id,name,domain\nA1,Acme,acme.com\nA2,Globex,globex.com\n"
TICKETS = (
    "id,account_id,status,priority,created_at\n"
    "T1,A1,open,urgent,2026-10-01T10:00:00Z\n"
    "T2,A2,solved,low,2026-10-02\n"
)
TICKETS_JSONL = (
    '{"id": "T3", "account_domain": "acme.com", "status": "open", "created_at": "2026-10-05"}\n'
)


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    """The drop folder, apart from the test's database file."""
    path = tmp_path / "drop"
    path.mkdir()
    return path


def _drop(root: Path, name: str, text: str, age: float = 60.0) -> Path:
    path = root / name
    path.write_text(text)
    os.utime(path, (CLOCK - age, CLOCK - age))
    return path


def _sync(engine: Engine, root: Path) -> dict[str, StreamResult]:
    settings = Settings(_env_file=None, folder=FolderSettings(path=root, settle_seconds=10))
    connector = folder.build(settings, clock=lambda: CLOCK)
    results = sync_connector(engine, connector, options=SyncOptions(clock=lambda: NOW))
    with session_scope(engine) as session:
        resolve_identities(session, NOW)
    return {r.stream: r for r in results}


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def _names(root: Path, sub: str) -> list[str]:
    return sorted(p.name.split("-", 1)[1] for p in (root / sub).iterdir())


def test_dropped_files_are_imported_once_and_moved(engine: Engine, drop: Path) -> None:
    _drop(drop, "accounts.csv", ACCOUNTS)
    _drop(drop, "tickets-a.csv", TICKETS, age=120)
    _drop(drop, "Tickets_b.jsonl", TICKETS_JSONL, age=90)
    results = _sync(engine, drop)
    assert (results["accounts"].records, results["tickets"].records) == (2, 3)
    assert results["tickets"].pages == 2  # one page per file, oldest first
    assert results["tickets"].cursor is not None
    assert results["tickets"].cursor.startswith("Tickets_b.jsonl sha256:")
    assert _names(drop, "processed") == ["Tickets_b.jsonl", "accounts.csv", "tickets-a.csv"]
    assert [p.name for p in drop.iterdir() if p.is_file()] == []
    with Session(engine) as session:
        tickets = session.execute(select(Ticket.external_id, Ticket.account_id)).all()
        accounts = dict(session.execute(select(Account.external_id, Account.id)).all())
    by_id = dict(tickets)
    assert by_id["T3"] == accounts["A1"]  # matched by domain
    assert by_id["T1"] == accounts["A1"]

    again = _sync(engine, drop)
    assert sum(r.records for r in again.values()) == 0
    assert _count(engine, Ticket) == 3


def test_a_file_read_again_after_a_crash_stores_nothing_twice(engine: Engine, drop: Path) -> None:
    _drop(drop, "accounts.csv", ACCOUNTS)
    _drop(drop, "tickets.csv", TICKETS)
    _sync(engine, drop)
    # as if the process died after committing the rows but before moving the file
    for moved in (drop / "processed").iterdir():
        shutil.copy(moved, drop / moved.name.split("-", 1)[1])
        os.utime(drop / moved.name.split("-", 1)[1], (CLOCK - 60, CLOCK - 60))
    results = _sync(engine, drop)
    assert results["tickets"].records == 2
    assert (_count(engine, Account), _count(engine, Ticket)) == (2, 2)


def test_a_file_of_the_wrong_shape_is_rejected_with_the_reason(engine: Engine, drop: Path) -> None:
    _drop(drop, "surveys-bad.csv", "id,score\n1,9\n", age=120)
    _drop(
        drop,
        "surveys-good.csv",
        "id,kind,score,scale_max,responded_at\nS1,nps,9,10,2026-10-01\n",
    )
    settings = Settings(_env_file=None, folder=FolderSettings(path=drop, settle_seconds=10))
    checks = check_connector(folder.build(settings, clock=lambda: CLOCK))
    assert all(line.ok for line in checks)
    assert len(list(drop.iterdir())) == 2  # checking only looks
    results = _sync(engine, drop)
    failed = results["surveys"]
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.startswith("folder rejected surveys-bad.csv: ")
    assert "lacks the columns kind, scale_max, responded_at" in failed.error
    assert "\n" not in failed.error
    rejected = sorted((drop / "rejected").iterdir())
    assert [p.name.split("-", 1)[1] for p in rejected] == [
        "surveys-bad.csv",
        "surveys-bad.csv.error.txt",
    ]
    assert "lacks the columns" in rejected[1].read_text()

    results = _sync(engine, drop)  # the good file is not held up by the bad one
    assert (results["surveys"].status, results["surveys"].records) == ("ok", 1)
    assert _count(engine, SurveyResponse) == 1


def test_bad_rows_are_quarantined_with_file_and_line(engine: Engine, drop: Path) -> None:
    _drop(drop, "tickets.csv", TICKETS + "T9,A1,open,,not a date\n")
    results = _sync(engine, drop)
    assert (results["tickets"].records, results["tickets"].quarantined) == (2, 1)
    with Session(engine) as session:
        (row,) = session.execute(
            select(QuarantinedRecord.record_key, QuarantinedRecord.reason)
        ).all()
    assert row[0] == "tickets.csv line 4"
    assert "created_at" in row[1]


def test_unsettled_unknown_and_temporary_files_wait(
    engine: Engine, drop: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _drop(drop, "tickets.csv", TICKETS, age=2)  # still being written
    _drop(drop, "tickets.csv.part", TICKETS)
    _drop(drop, "notes.csv", "a,b\n")
    with caplog.at_level(logging.WARNING, logger="connectors.folder"):
        results = _sync(engine, drop)
    assert sum(r.records for r in results.values()) == 0
    assert sorted(p.name for p in drop.iterdir()) == [
        "notes.csv",
        "tickets.csv",
        "tickets.csv.part",
    ]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # once per sync, not once per stream
    assert warnings[0].startswith("folder: notes.csv is left alone: name files after their kind")


def test_the_folder_is_a_source_like_any_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FOLDER__PATH", str(tmp_path / "drop"))
    settings = Settings(_env_file=None)
    assert "folder" in settings.enabled_sources()
    (connector,) = build_connectors(settings, ["folder"])
    assert [s.name for s in connector.streams] == [
        "accounts",
        "tickets",
        "subscriptions",
        "invoices",
        "usage",
        "surveys",
    ]
