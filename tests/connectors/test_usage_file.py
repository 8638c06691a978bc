"""The usage CSV: rows to snapshots and links, bad rows quarantined by line, fingerprints."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from connectors.errors import MappingError
from connectors.usage_file import map_row
from store.models import ExternalLink, QuarantinedRecord, UsageSnapshot
from tests.connectors.worlds import USAGE_CSV, usage_world


def _rows(engine: Engine, model: type) -> list:  # type: ignore[type-arg]
    with Session(engine) as session:
        return list(session.execute(select(model)).scalars())


def test_row_maps_to_a_snapshot_and_a_link() -> None:
    raw = {
        "line": 3,
        "account_id": "5002",
        "account_domain": "www.globex.io",
        "week_start": "2025-06-02",
        "active_users": "7",
        "licensed_seats": "",
    }
    snapshot, link = map_row(raw)
    assert snapshot.model is UsageSnapshot
    assert snapshot.values == {
        "external_id": "5002:2025-06-02",
        "account_ref": "5002",
        "period_start": date(2025, 6, 2),
        "active_users": 7,
        "licensed_seats": None,
        "recorded_at": datetime(2025, 6, 9, tzinfo=UTC),
    }
    assert link.model is ExternalLink
    assert link.values == {
        "external_id": "5002",
        "kind": "account",
        "domain": "globex.io",
        "crm_hint": "5002",
    }


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("account_id", " ", "line 4: account_id is empty"),
        ("week_start", "06/02/2025", "line 4: week_start '06/02/2025' is not a date (YYYY-MM-DD)"),
        ("active_users", "many", "line 4: active_users 'many' is not a whole number"),
        ("licensed_seats", "-1", "line 4: licensed_seats -1 is negative"),
    ],
)
def test_bad_values_name_their_line(field: str, value: str, reason: str) -> None:
    raw = {"line": 4, "account_id": "1", "week_start": "2025-06-02", "active_users": "1"}
    with pytest.raises(MappingError) as caught:
        map_row({**raw, field: value})
    assert str(caught.value) == reason


def test_bad_rows_are_quarantined_and_the_same_file_is_read_once(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(USAGE_CSV.read_text() + "5004,umbrella.example,last week,3,4\n")
    world = usage_world(path)
    first = world.sync(engine)["usage"]
    assert (first.records, first.quarantined) == (5, 1)
    [bad] = _rows(engine, QuarantinedRecord)
    assert bad.reason == "line 7: week_start 'last week' is not a date (YYYY-MM-DD)"
    assert bad.payload["account_id"] == "5004"
    assert len(_rows(engine, UsageSnapshot)) == 5
    assert len(_rows(engine, ExternalLink)) == 4

    again = world.sync(engine)["usage"]
    assert (again.records, again.pages) == (0, 1)

    path.write_text(USAGE_CSV.read_text() + "5004,umbrella.example,2025-06-02,3,4\n")
    fixed = world.sync(engine)["usage"]
    assert fixed.records == 6
    [resolved] = _rows(engine, QuarantinedRecord)
    assert resolved.resolved_at is not None


def test_a_missing_file_or_header_fails_the_stream_with_the_setting(
    engine: Engine, tmp_path: Path
) -> None:
    missing = usage_world(tmp_path / "nope.csv").sync(engine)["usage"]
    assert missing.status == "failed"
    assert missing.error is not None
    assert "check USAGE_FILE__PATH in .env" in missing.error
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("account,week\n1,2025-06-02\n")
    header = usage_world(wrong).sync(engine)["usage"]
    assert header.error is not None
    assert "lacks the columns account_id" in header.error
