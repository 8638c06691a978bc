"""Records from files: CSV or JSON Lines of accounts, tickets, subscriptions, usage, surveys.

For the data most companies keep in spreadsheets and exports, `health-agent import KIND FILE`
reads one file through the same engine as the API connectors: each row is mapped by a pure
function, rows that cannot be mapped are quarantined with their line number, the rest are
upserted (a file imported twice changes nothing), and identity matches them to accounts.
Columns, by kind (`*` required; `account_id` is the CRM's id of the account, and
`account_domain` lets a row match by domain when there is no id):

- accounts: id*, name*, domain, owner_email, segment, renewal_date, arr, currency
- tickets: id*, account_id, account_domain, status*, priority, created_at*, updated_at,
  solved_at, satisfaction
- subscriptions: id*, account_id, account_domain, status*, mrr*, currency, started_at,
  ended_at
- usage: account_id*, account_domain, week_start*, active_users*, licensed_seats
- surveys: id*, account_id, account_domain, kind* (nps, csat, ces), score*, scale_max*,
  responded_at*, email, comment

Timestamps are ISO-8601 (a date alone means midnight UTC); amounts are in major units.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from connectors.base import Record, StreamSpec, normalise_domain, parse_iso, to_minor
from connectors.errors import FatalError, MappingError
from connectors.identity import resolve_identities
from connectors.paginators import SinglePagePaginator
from connectors.sync import map_records, write_page
from connectors.usage_file import map_row as map_usage_row
from store.db import session_scope
from store.models import Account, ExternalLink, Subscription, SurveyResponse, Ticket
from store.types import utcnow

__all__ = ["KINDS", "SOURCE", "ImportSummary", "import_file", "map_file_row", "read_rows"]

SOURCE = "file"
SCALES = {"nps": 10, "csat": 5, "ces": 7}

Row = Mapping[str, Any]


def _text(row: Row, column: str, *, required: bool = False) -> str | None:
    value = row.get(column)
    text = str(value).strip() if value is not None else ""
    if not text:
        if required:
            raise MappingError(f"line {row.get('line')}: {column} is empty")
        return None
    return text


def _when(row: Row, column: str, *, required: bool = False) -> datetime | None:
    text = _text(row, column, required=required)
    if text is None:
        return None
    if len(text) == 10:  # a date alone: midnight UTC
        try:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        except ValueError:
            pass
    return parse_iso(text, f"line {row.get('line')}: {column}")


def _int(row: Row, column: str) -> int:
    text = _text(row, column, required=True)
    try:
        return int(str(text))
    except ValueError as exc:
        raise MappingError(f"line {row.get('line')}: {column} {text!r} is not a number") from exc


def _link(row: Row) -> tuple[str | None, list[Record]]:
    """The row's account reference, and the link that lets identity resolve it."""
    crm_id = _text(row, "account_id")
    domain = normalise_domain(row.get("account_domain"))
    ref = crm_id or domain
    if ref is None:
        return None, []
    values = {"external_id": ref, "kind": "account", "domain": domain, "crm_hint": crm_id}
    return ref, [Record(ExternalLink, values)]


def map_account(row: Row) -> list[Record]:
    renewal = _when(row, "renewal_date")
    values = {
        "external_id": _text(row, "id", required=True),
        "name": _text(row, "name", required=True),
        "domain": normalise_domain(row.get("domain")),
        "owner_email": _text(row, "owner_email"),
        "segment": _text(row, "segment"),
        "renewal_date": renewal.date() if renewal else None,
        "arr_minor": to_minor(_text(row, "arr"), f"line {row.get('line')}: arr"),
        "currency": (_text(row, "currency") or "USD").upper(),
    }
    return [Record(Account, values)]


def map_ticket(row: Row) -> list[Record]:
    ref, links = _link(row)
    created = _when(row, "created_at", required=True)
    values = {
        "external_id": _text(row, "id", required=True),
        "account_ref": ref,
        "status": (_text(row, "status", required=True) or "").lower(),
        "priority": (_text(row, "priority") or "").lower() or None,
        "satisfaction": (_text(row, "satisfaction") or "").lower() or None,
        "created_at": created,
        "updated_at": _when(row, "updated_at") or created,
        "solved_at": _when(row, "solved_at"),
    }
    return [Record(Ticket, values), *links]


def map_subscription(row: Row) -> list[Record]:
    ref, links = _link(row)
    values = {
        "external_id": _text(row, "id", required=True),
        "account_ref": ref,
        "status": (_text(row, "status", required=True) or "").lower(),
        "mrr_minor": to_minor(_text(row, "mrr", required=True), f"line {row.get('line')}: mrr"),
        "currency": (_text(row, "currency") or "USD").upper(),
        "started_at": _when(row, "started_at"),
        "ended_at": _when(row, "ended_at"),
    }
    return [Record(Subscription, values), *links]


def map_survey(row: Row) -> list[Record]:
    ref, links = _link(row)
    kind = (_text(row, "kind", required=True) or "").lower()
    if kind not in SCALES:
        raise MappingError(f"line {row.get('line')}: kind {kind!r} is not nps, csat or ces")
    score, scale = _int(row, "score"), _int(row, "scale_max")
    if not 0 <= score <= scale:
        raise MappingError(f"line {row.get('line')}: score {score} is outside 0-{scale}")
    values = {
        "external_id": _text(row, "id", required=True),
        "account_ref": ref,
        "kind": kind,
        "score": score,
        "scale_max": scale,
        "responded_at": _when(row, "responded_at", required=True),
        "contact_email": _text(row, "email"),
        "comment": _text(row, "comment"),
    }
    return [Record(SurveyResponse, values), *links]


KINDS: dict[str, tuple[tuple[str, ...], Callable[[Row], list[Record]]]] = {
    "accounts": (("id", "name"), map_account),
    "tickets": (("id", "status", "created_at"), map_ticket),
    "subscriptions": (("id", "status", "mrr"), map_subscription),
    "usage": (("account_id", "week_start", "active_users"), map_usage_row),
    "surveys": (("id", "kind", "score", "scale_max", "responded_at"), map_survey),
}
"""Each kind: its required columns and its row mapper."""


def map_file_row(kind: str, row: Row) -> list[Record]:
    """One row of a `kind` file -> canonical records (a MappingError says what is wrong)."""
    if "_error" in row:
        raise MappingError(f"line {row.get('line')}: {row['_error']}")
    return KINDS[kind][1](row)


@dataclass(frozen=True)
class ImportSummary:
    """What an import did."""

    kind: str
    rows: int
    records: int
    quarantined: int

    def describe(self) -> str:
        return (
            f"imported {self.records} of {self.rows} {self.kind} rows; "
            f"{self.quarantined} quarantined (see `health-agent sources quarantine`)"
        )


def import_file(
    engine: Engine, kind: str, path: Path, now: datetime | None = None
) -> ImportSummary:
    """Map and store every row of `path` in one transaction, then match identities."""
    rows = read_rows(kind, path)
    spec = StreamSpec(
        name=kind,
        path=str(path),
        mapper=lambda row: map_file_row(kind, row),
        paginator=SinglePagePaginator,
        records_key="rows",
        record_key=lambda row: f"{path.name} line {row.get('line')}",
    )
    now = now or utcnow()
    mapped = map_records(SOURCE, spec, rows)
    with session_scope(engine) as session:
        write_page(session, SOURCE, kind, mapped, now)
        resolve_identities(session, now)
    return ImportSummary(kind, len(rows), len(mapped.mapped_keys), len(mapped.quarantine))


def read_rows(kind: str, path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV or JSON Lines file, each with its `line` number.

    A missing column or an unreadable file is a FatalError naming the file and the fix;
    a bad row is left for its mapper to quarantine.
    """
    if kind not in KINDS:
        raise FatalError(f"unknown kind {kind!r}: choose from {', '.join(KINDS)}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise FatalError(f"cannot read {path} ({exc.strerror})") from exc
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                item = {"_error": f"not JSON ({exc.msg})"}
            if not isinstance(item, dict):
                item = {"_error": "not a JSON object"}
            rows.append({"line": number, **item})
        return rows
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in KINDS[kind][0] if c not in (reader.fieldnames or [])]
    if missing:
        raise FatalError(
            f"{path} lacks the columns {', '.join(missing)} for {kind}: "
            f"see `health-agent import --help` for the columns of each kind"
        )
    return [{"line": reader.line_num, **row} for row in reader]
