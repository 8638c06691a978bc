"""Accounts files: created_at, traits from the extra columns, their `as_of` history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from connectors.errors import FatalError
from connectors.files import import_file
from store.models import Account, AccountTrait, QuarantinedRecord
from store.traits import TraitValue, latest_traits

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)

ACCOUNTS = """id,name,created_at,plan,employees,renewal_notice,autopay
A1,Acme,2021-03-04,pro,120,2027-01-31,yes
A2,Globex,,basic,8,,no
"""

HISTORY = """id,name,as_of,plan,employees
A1,Acme old name,2026-01-01,basic,50
A1,Acme,2026-06-01,pro,120
A1,Acme mid,2026-03-01,pro,80
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _rows(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(AccountTrait)) or 0)


def _ids(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {a.external_id: a.id for a in session.execute(select(Account)).scalars() if a.id}


def _reasons(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        rows = session.execute(select(QuarantinedRecord)).scalars()
        return {q.record_key: q.reason for q in rows if q.resolved_at is None}


def test_extra_columns_become_typed_traits(engine: Engine, tmp_path: Path) -> None:
    summary = import_file(engine, "accounts", _write(tmp_path, "a.csv", ACCOUNTS), now=NOW)
    assert (summary.records, summary.quarantined) == (2, 0)
    ids = _ids(engine)
    with Session(engine) as session:
        acme = session.get(Account, ids["A1"])
        assert acme is not None
        assert acme.created_at == datetime(2021, 3, 4, tzinfo=UTC)
        traits = latest_traits(
            session, ["plan", "employees", "renewal_notice", "autopay"], datetime.now(UTC)
        )
    assert traits["plan"] == {
        ids["A1"]: TraitValue("category", None, "pro"),
        ids["A2"]: TraitValue("category", None, "basic"),
    }
    assert traits["employees"][ids["A2"]] == TraitValue("number", 8.0, None)
    assert traits["renewal_notice"][ids["A1"]].text == "2027-01-31"
    assert ids["A2"] not in traits["renewal_notice"]  # empty: nothing written
    assert traits["autopay"][ids["A2"]] == TraitValue("boolean", 0.0, "no")
    written = _rows(engine)
    assert written == 7

    again = import_file(engine, "accounts", _write(tmp_path, "a.csv", ACCOUNTS), now=NOW)
    assert again.records == 2
    assert _rows(engine) == written  # nothing changed, nothing new


def test_as_of_rows_make_a_history(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path, "history.csv", HISTORY)
    summary = import_file(engine, "accounts", path, now=NOW)
    assert (summary.records, summary.quarantined) == (3, 0)
    ids = _ids(engine)
    with Session(engine) as session:
        acme = session.get(Account, ids["A1"])
        assert acme is not None
        assert acme.name == "Acme"

        def as_of(day: datetime) -> tuple[object, object]:
            got = latest_traits(session, ["plan", "employees"], day)
            return (
                got.get("plan", {}).get(ids["A1"], TraitValue("category", None, None)).text,
                got.get("employees", {}).get(ids["A1"], TraitValue("number", None, None)).number,
            )

        assert as_of(datetime(2026, 1, 1, tzinfo=UTC)) == (None, None)
        assert as_of(datetime(2026, 2, 1, tzinfo=UTC)) == ("basic", 50.0)
        assert as_of(datetime(2026, 4, 1, tzinfo=UTC)) == ("pro", 80.0)
        assert as_of(datetime(2026, 7, 1, tzinfo=UTC)) == ("pro", 120.0)
    written = _rows(engine)
    assert written == 5  # plan: basic, pro; employees: 50, 80, 120

    import_file(engine, "accounts", path, now=NOW)
    assert _rows(engine) == written


HOSTILE = (
    "id,name,as_of,arr,score,note\n"
    "A1,Acme,2026-01-01,10,1,fine\n"
    "A2,Globex,not a date,11,2,fine\n"
    "A3,Initech,,1e400,3,fine\n"
    "A4,Umbrella,,99999999999999999999,4,fine\n"
    "A5,Hooli,,12,5,nul\x00here\n"
    "A6,Wonka,,13,6,\udcff\n"
    "A7,Stark,,14,7,fine\n"
)


def test_hostile_values_are_quarantined_with_their_line(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "hostile.csv"
    path.write_bytes(HOSTILE.encode("utf-8", errors="surrogateescape"))
    summary = import_file(engine, "accounts", path, now=NOW)
    reasons = _reasons(engine)
    assert summary.quarantined == len(reasons) == 5, reasons
    assert "as_of" in reasons["hostile.csv line 3"]
    assert "finite" in reasons["hostile.csv line 4"]
    assert "finite" in reasons["hostile.csv line 5"]
    assert "NUL" in reasons["hostile.csv line 6"]
    assert "UTF-8" in reasons["hostile.csv line 7"]
    ids = _ids(engine)
    assert set(ids) == {"A1", "A7"}
    with Session(engine) as session:
        traits = latest_traits(session, ["score", "note"], datetime.now(UTC))
    assert traits["score"][ids["A7"]] == TraitValue("number", 7.0, None)
    assert traits["note"][ids["A1"]].text == "fine"


def test_a_value_read_against_its_column_kind_is_quarantined(engine: Engine) -> None:
    from connectors.files import map_file_row

    row = {"line": 4, "id": "A1", "name": "Acme", "seats": "many"}
    with pytest.raises(Exception, match=r"line 4: seats .*not a number"):
        map_file_row("accounts", {**row, "_trait_kinds": {"seats": "number"}})
    assert len(map_file_row("accounts", row)) == 2  # alone, it reads as a category


def test_json_lines_with_surrogates_and_nested_values(engine: Engine, tmp_path: Path) -> None:
    lines = [
        '{"id": "A1", "name": "Acme", "tier": "gold"}',
        '{"id": "A2", "name": "Globex", "tier": "\\ud800"}',
        '{"id": "A3", "name": "Initech", "tier": {"nested": 1}}',
        '{"id": "A4", "name": "Hooli", "' + "x" * 5000 + '": 1}',
    ]
    path = _write(tmp_path, "a.jsonl", "\n".join(lines) + "\n")
    summary = import_file(engine, "accounts", path, now=NOW)
    assert (summary.records, summary.quarantined) == (1, 3)
    reasons = _reasons(engine)
    assert "surrogate" in reasons["a.jsonl line 2"]
    assert "single value" in reasons["a.jsonl line 3"]
    assert "5000 characters" in reasons["a.jsonl line 4"]


def test_a_bad_column_name_is_one_clear_error(engine: Engine, tmp_path: Path) -> None:
    text = "id,name," + "y" * 5000 + "\nA1,Acme,1\n"
    with pytest.raises(FatalError, match=r"column 3 cannot be a trait: .*5000 characters"):
        import_file(engine, "accounts", _write(tmp_path, "a.csv", text), now=NOW)
