"""`health-agent import`: CSV and JSON Lines files through the engine, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

import reports
from connectors.errors import FatalError
from connectors.files import import_file
from store.models import Account, SurveyResponse, Ticket

ACCOUNTS = """id,name,domain,owner_email,segment,renewal_date,arr,currency
A1,Acme Robotics,https://www.acme.test,csm@corp.test,enterprise,2027-03-01,120000.50,usd
A2,Globex,globex.test,,mid-market,,,
"""

TICKETS = "\n".join(
    [
        '{"id": "t1", "account_id": "A1", "status": "Open", "priority": "Urgent", '
        '"created_at": "2026-11-01T09:00:00Z"}',
        '{"id": "t2", "account_domain": "globex.test", "status": "solved", '
        '"created_at": "2026-10-01", "solved_at": "2026-10-02T10:00:00+02:00"}',
        "not json at all",
        '{"id": "t4", "account_id": "A1", "status": "open"}',
        "",
    ]
)

SURVEYS = """id,account_id,kind,score,scale_max,responded_at,email,comment
s1,A1,nps,9,10,2026-11-10,kim@acme.test,Great support
s2,A2,csat,4,5,2026-11-11T12:00:00Z,,
s3,A2,nps,12,10,2026-11-12,,out of range
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_import_maps_matches_quarantines_and_is_idempotent(engine: Engine, tmp_path: Path) -> None:
    accounts = import_file(engine, "accounts", _write(tmp_path, "accounts.csv", ACCOUNTS))
    assert (accounts.rows, accounts.records, accounts.quarantined) == (2, 2, 0)
    tickets = import_file(engine, "tickets", _write(tmp_path, "tickets.jsonl", TICKETS))
    assert (tickets.rows, tickets.records, tickets.quarantined) == (4, 2, 2)
    surveys = import_file(engine, "surveys", _write(tmp_path, "surveys.csv", SURVEYS))
    assert (surveys.records, surveys.quarantined) == (2, 1)

    with Session(engine) as session:
        by_name = {a.name: a for a in session.execute(select(Account)).scalars()}
        acme = by_name["Acme Robotics"]
        assert (acme.domain, acme.arr_minor, acme.currency) == ("acme.test", 12000050, "USD")
        assert str(acme.renewal_date) == "2027-03-01"
        ticket = {t.external_id: t for t in session.execute(select(Ticket)).scalars()}
        assert (ticket["t1"].status, ticket["t1"].priority) == ("open", "urgent")
        assert ticket["t1"].account_id == acme.id  # by the CRM id
        assert ticket["t2"].account_id == by_name["Globex"].id  # by domain
        assert ticket["t2"].solved_at is not None
        assert ticket["t2"].solved_at.hour == 8  # +02:00 stored as UTC
        answers = {s.external_id: s for s in session.execute(select(SurveyResponse)).scalars()}
        assert (answers["s1"].kind, answers["s1"].score, answers["s1"].scale_max) == ("nps", 9, 10)
        assert answers["s2"].account_id == by_name["Globex"].id

    reasons = {q["record_key"]: q["reason"] for q in reports.quarantined(engine)}
    assert "not JSON" in reasons["tickets.jsonl line 3"]
    assert "created_at is empty" in reasons["tickets.jsonl line 4"]
    assert "outside 0-10" in reasons["surveys.csv line 4"]

    again = import_file(engine, "tickets", tmp_path / "tickets.jsonl")
    assert again.records == 2
    assert _count(engine, Ticket) == 2


def test_a_file_without_the_columns_of_its_kind_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "usage.csv", "account,week\nA1,2026-11-02\n")
    with pytest.raises(FatalError, match="lacks the columns account_id, week_start, active_users"):
        import_file(None, "usage", path)  # type: ignore[arg-type]  # refused before the store
