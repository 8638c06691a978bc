"""The store on both dialects: migrations match the models, upserts are idempotent."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select
from sqlmodel import Session, SQLModel

from store import bulk_upsert, session_scope
from store.models import Account, Alert, QuarantinedRecord, Ticket


def test_migrations_match_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def _ticket(n: int, status: str = "open") -> dict[str, object]:
    ts = datetime(2026, 1, 1, 12, tzinfo=UTC)
    return {
        "source": "helpdesk",
        "external_id": str(n),
        "account_ref": "org-1",
        "status": status,
        "priority": "high",
        "created_at": ts,
        "updated_at": ts,
    }


def test_bulk_upsert_is_idempotent_and_updates(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert bulk_upsert(session, Ticket, [_ticket(n) for n in range(1200)]) == 1200
    with session_scope(engine) as session:
        bulk_upsert(session, Ticket, [_ticket(n) for n in range(1200)])
        bulk_upsert(session, Ticket, [_ticket(7, status="solved")])
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1200
        row = session.exec(select(Ticket).where(Ticket.external_id == "7")).one()[0]
        assert row.status == "solved"
        assert row.created_at == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_upsert_keeps_last_of_duplicate_keys_in_one_call(engine: Engine) -> None:
    with session_scope(engine) as session:
        written = bulk_upsert(
            session,
            Account,
            [
                {"source": "crm", "external_id": "1", "name": "Old"},
                {"source": "crm", "external_id": "1", "name": "New"},
            ],
        )
    assert written == 1
    with Session(engine) as session:
        assert [a.name for a in session.exec(select(Account)).scalars()] == ["New"]


def test_alert_fingerprint_is_unique(engine: Engine) -> None:
    with session_scope(engine) as session:
        rows = [{"fingerprint": "band_drop:1:green->red:2026-01-01", "rule": "band_drop"}]
        bulk_upsert(session, Alert, rows, keys=("fingerprint",), update=())
        bulk_upsert(session, Alert, rows, keys=("fingerprint",), update=())
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 1


def test_json_columns_keep_what_they_are_given(engine: Engine) -> None:
    payload = {
        "name": "Société Générale - 東京",
        "nested": {"list": [1, 2.5, None, True], "empty": {}},
        "huge": 2**70,  # beyond 64 bits: written by the fallback encoder
        7: "int key",
    }
    with session_scope(engine) as s:
        s.add(
            QuarantinedRecord(
                source="crm", stream="accounts", record_key="1", payload=payload, reason="r"
            )
        )
    with Session(engine) as s:
        stored = s.scalars(select(QuarantinedRecord)).one().payload
    assert stored == {**{k: v for k, v in payload.items() if k != 7}, "7": "int key"}
