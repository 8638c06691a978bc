"""Invoices files: statuses, amounts and attempts, and a failed invoice the score sees."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlmodel import Session

from connectors.files import import_file
from scoring.measures import failed_payments
from store.models import Account, Invoice, QuarantinedRecord

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)

ACCOUNTS = "id,name,domain\nA1,Acme,acme.test\nA2,Globex,globex.test\n"

INVOICES = (
    "id,account_id,account_domain,amount_due,amount_paid,currency,status,created_at,due_at,"
    "paid_at,attempts\n"
    """in1,A1,,100.00,,usd,failed,2026-11-20,2026-11-25,,
in2,A1,,50,50,usd,paid,2026-11-01,,2026-11-02,
in3,,globex.test,80.5,0,eur,draft,2026-11-10,,,
in4,A2,,10,,usd,past_due,,2026-11-15,,3
in5,A2,,10,,usd,open,2026-11-15,,,
"""
)

HOSTILE = """id,account_id,amount_due,amount_paid,status,created_at,attempts
bad1,A1,1e400,,open,2026-11-20,
bad2,A1,99999999999999999999,,open,2026-11-20,
bad3,A1,10,,lost,2026-11-20,
bad4,A1,10,20,paid,2026-11-20,
bad5,A1,10,,open,yesterday,
bad6,A1,10,,open,,
bad7,A1,10,,open,2026-11-20,99999999999999999999
bad8,A1,10,,op\x00en,2026-11-20,
ok1,A1,10,,open,2026-11-20,
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_invoices_are_imported_with_attempts_and_remaining(engine: Engine, tmp_path: Path) -> None:
    import_file(engine, "accounts", _write(tmp_path, "accounts.csv", ACCOUNTS), now=NOW)
    summary = import_file(engine, "invoices", _write(tmp_path, "inv.csv", INVOICES), now=NOW)
    assert (summary.records, summary.quarantined) == (5, 0)
    with Session(engine) as session:
        rows = {i.external_id: i for i in session.execute(select(Invoice)).scalars()}
        ids = {a.external_id: a.id for a in session.execute(select(Account)).scalars()}
    got = {
        k: (i.status, i.amount_due_minor, i.amount_remaining_minor, i.attempt_count, i.currency)
        for k, i in rows.items()
    }
    assert got == {
        "in1": ("open", 10000, 10000, 1, "USD"),
        "in2": ("paid", 5000, 0, 1, "USD"),
        "in3": ("draft", 8050, 8050, 0, "EUR"),
        "in4": ("open", 1000, 1000, 3, "USD"),
        "in5": ("open", 1000, 1000, 0, "USD"),
    }
    assert rows["in4"].created_at == datetime(2026, 11, 15, tzinfo=UTC)  # due_at by default
    assert rows["in3"].account_id == ids["A2"]  # matched by domain
    assert rows["in2"].paid_at == datetime(2026, 11, 2, tzinfo=UTC)
    again = import_file(engine, "invoices", _write(tmp_path, "inv.csv", INVOICES), now=NOW)
    assert again.records == 5
    with Session(engine) as session:
        assert len(list(session.execute(select(Invoice)).scalars())) == 5


def test_an_imported_failed_invoice_counts_as_a_failed_payment(
    engine: Engine, tmp_path: Path
) -> None:
    import_file(engine, "accounts", _write(tmp_path, "accounts.csv", ACCOUNTS), now=NOW)
    import_file(engine, "invoices", _write(tmp_path, "inv.csv", INVOICES), now=NOW)
    with Session(engine) as session:
        ids = {a.external_id: a.id for a in session.execute(select(Account)).scalars()}
        readings = failed_payments(session, date(2026, 12, 1))
    assert readings[ids["A1"]].value == 1.0  # in1 failed; in2 paid on its first attempt
    assert readings[ids["A2"]].value == 1.0  # in4 past due; in5 open never attempted
    assert readings[ids["A1"]].details["days_ago"] == 11


def test_hostile_invoices_are_quarantined(engine: Engine, tmp_path: Path) -> None:
    summary = import_file(engine, "invoices", _write(tmp_path, "bad.csv", HOSTILE), now=NOW)
    assert (summary.records, summary.quarantined) == (1, 8)
    with Session(engine) as session:
        reasons = {
            q.record_key: q.reason for q in session.execute(select(QuarantinedRecord)).scalars()
        }
    assert "finite" in reasons["bad.csv line 2"]
    assert "finite" in reasons["bad.csv line 3"]
    assert "status 'lost'" in reasons["bad.csv line 4"]
    assert "more than amount_due" in reasons["bad.csv line 5"]
    assert "created_at" in reasons["bad.csv line 6"]
    assert "both empty" in reasons["bad.csv line 7"]
    assert "attempts" in reasons["bad.csv line 8"]
    assert "NUL" in reasons["bad.csv line 9"]
