"""Records from files: CSV or JSON Lines of accounts, tickets, subscriptions, invoices, usage
and surveys.

For the data most companies keep in spreadsheets and exports, `health-agent import KIND FILE`
reads one file through the same engine as the API connectors: each row is mapped by a pure
function, rows that cannot be mapped are quarantined with their line number, the rest are
upserted (a file imported twice changes nothing), and identity matches them to accounts.
Columns, by kind (`*` required; `account_id` is the CRM's id of the account, and
`account_domain` lets a row match by domain when there is no id):

- accounts: id*, name*, domain, owner_email, segment, renewal_date, arr, currency,
  created_at (customer since), as_of (when the row's values held; default: the import).
  Every other column is a trait of the account: its kind (number, date, yes/no, else
  category) read over the whole column of the file, each value read as that kind (one
  that cannot be is quarantined with its line). Traits are written after the accounts,
  in the same transaction, only where they changed; rows of one account with different
  `as_of` make its history, and the account itself takes its latest row.
- tickets: id*, account_id, account_domain, status*, priority, created_at*, updated_at,
  solved_at, satisfaction
- subscriptions: id*, account_id, account_domain, status*, mrr*, currency, started_at,
  ended_at
- invoices: id*, account_id, account_domain, amount_due*, amount_paid, currency, status*
  (draft, open, paid, void, uncollectible; `failed` and `past_due` are open with a failed
  attempt), created_at (default: due_at), due_at, paid_at, attempts (default: 1 when paid
  or failed, else 0)
- usage, weekly: account_id*, account_domain, week_start*, active_users*, licensed_seats
- usage, long form (a `metric` column): account_id, account_domain, date* (or
  week_start*), metric*, value*, period (day or week): see `connectors.usage_metrics`
- surveys: id*, account_id, account_domain, kind* (nps, csat, ces), score*, scale_max*,
  responded_at*, email, comment

Timestamps are ISO-8601 (a date alone means midnight UTC); amounts are in major units;
numbers are finite and within ±1e15. A row holding a NUL or bytes that are not UTF-8 is
quarantined whole (see `connectors.row_values`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from connectors.base import Record, StreamSpec, normalise_domain
from connectors.errors import FatalError, MappingError
from connectors.identity import resolve_identities
from connectors.paginators import SinglePagePaginator
from connectors.row_values import (
    MAX_INT,
    Row,
    clean_row,
    row_int,
    row_link,
    row_minor,
    row_text,
    row_when,
)
from connectors.sync import map_records, write_page
from connectors.trait_records import check_name, trait_record
from connectors.usage_file import map_row as map_usage_row
from connectors.usage_metrics import is_long_form, map_metric_row
from store.db import session_scope
from store.models import Account, Invoice, Subscription, SurveyResponse, Ticket
from store.traits import TraitError, TraitValue, infer_kind
from store.types import utcnow

__all__ = [
    "KINDS",
    "SOURCE",
    "ImportSummary",
    "import_file",
    "map_file_row",
    "prepare_rows",
    "read_rows",
    "required_columns",
]

SOURCE = "file"
SCALES = {"nps": 10, "csat": 5, "ces": 7}
ACCOUNT_COLUMNS = frozenset(
    {
        "id",
        "name",
        "domain",
        "owner_email",
        "segment",
        "renewal_date",
        "arr",
        "currency",
        "created_at",
        "as_of",
        "line",
    }
)
"""The accounts columns that are not traits (nor are keys starting with `_`)."""
TRAIT_KINDS_KEY = "_trait_kinds"
"""Set on each accounts row by `prepare_rows`: the kind of each trait column in its file."""
INVOICE_STATUSES = frozenset({"draft", "open", "paid", "void", "uncollectible"})
FAILED_STATUSES = frozenset({"failed", "past_due"})
"""Read as `open` with a failed payment attempt."""


def _trait_columns(row: Row) -> list[str]:
    return [
        k
        for k in row
        if isinstance(k, str) and k and k not in ACCOUNT_COLUMNS and not k.startswith("_")
    ]


def _traits(row: Row, account: str, seen_at: datetime | None) -> list[Record]:
    """The row's trait columns as trait values, each read as its column's kind."""
    line = row.get("line")
    kinds = row.get(TRAIT_KINDS_KEY)
    kinds = kinds if isinstance(kinds, dict) else {}
    records = []
    for column in _trait_columns(row):
        try:
            name = check_name(column, "column name")
        except ValueError as exc:
            raise MappingError(f"line {line}: {exc}") from None
        raw = row[column]
        if isinstance(raw, dict | list):
            raise MappingError(f"line {line}: {name[:40]} is not a single value")
        kind = kinds.get(column) or infer_kind([raw])
        try:
            TraitValue.parse(kind, raw)
        except TraitError as exc:
            raise MappingError(
                f"line {line}: {name[:40]} {exc} (the column holds {kind} values)"
            ) from None
        records.append(trait_record(account, name, raw, kind=kind, seen_at=seen_at))
    return records


def map_account(row: Row) -> list[Record]:
    """An accounts row -> the Account, and a trait value per extra column, as of `as_of`."""
    external_id = row_text(row, "id", required=True) or ""
    renewal = row_when(row, "renewal_date")
    as_of = row_when(row, "as_of")
    values = {
        "external_id": external_id,
        "name": row_text(row, "name", required=True),
        "domain": normalise_domain(row.get("domain")),
        "owner_email": row_text(row, "owner_email"),
        "segment": row_text(row, "segment"),
        "renewal_date": renewal.date() if renewal else None,
        "arr_minor": row_minor(row, "arr"),
        "currency": (row_text(row, "currency") or "USD").upper(),
    }
    if (created := row_when(row, "created_at")) is not None:
        values["created_at"] = created
    return [Record(Account, values), *_traits(row, external_id, as_of)]


def map_ticket(row: Row) -> list[Record]:
    ref, links = row_link(row)
    created = row_when(row, "created_at", required=True)
    values = {
        "external_id": row_text(row, "id", required=True),
        "account_ref": ref,
        "status": (row_text(row, "status", required=True) or "").lower(),
        "priority": (row_text(row, "priority") or "").lower() or None,
        "satisfaction": (row_text(row, "satisfaction") or "").lower() or None,
        "created_at": created,
        "updated_at": row_when(row, "updated_at") or created,
        "solved_at": row_when(row, "solved_at"),
    }
    return [Record(Ticket, values), *links]


def map_subscription(row: Row) -> list[Record]:
    ref, links = row_link(row)
    values = {
        "external_id": row_text(row, "id", required=True),
        "account_ref": ref,
        "status": (row_text(row, "status", required=True) or "").lower(),
        "mrr_minor": row_minor(row, "mrr", required=True),
        "currency": (row_text(row, "currency") or "USD").upper(),
        "started_at": row_when(row, "started_at"),
        "ended_at": row_when(row, "ended_at"),
    }
    return [Record(Subscription, values), *links]


def map_survey(row: Row) -> list[Record]:
    ref, links = row_link(row)
    kind = (row_text(row, "kind", required=True) or "").lower()
    if kind not in SCALES:
        raise MappingError(f"line {row.get('line')}: kind {kind[:40]!r} is not nps, csat or ces")
    score, scale = row_int(row, "score") or 0, row_int(row, "scale_max") or 0
    if not 0 <= score <= scale:
        raise MappingError(f"line {row.get('line')}: score {score} is outside 0-{scale}")
    values = {
        "external_id": row_text(row, "id", required=True),
        "account_ref": ref,
        "kind": kind,
        "score": score,
        "scale_max": scale,
        "responded_at": row_when(row, "responded_at", required=True),
        "contact_email": row_text(row, "email"),
        "comment": row_text(row, "comment"),
    }
    return [Record(SurveyResponse, values), *links]


def map_invoice(row: Row) -> list[Record]:
    """An invoices row -> an Invoice; `failed` and `past_due` are open with a failed attempt."""
    line = row.get("line")
    ref, links = row_link(row)
    said = (row_text(row, "status", required=True) or "").lower().replace("-", "_")
    if said not in INVOICE_STATUSES | FAILED_STATUSES:
        raise MappingError(
            f"line {line}: status {said[:40]!r} is not one of "
            f"{', '.join(sorted(INVOICE_STATUSES | FAILED_STATUSES))}"
        )
    status = "open" if said in FAILED_STATUSES else said
    due = row_minor(row, "amount_due", required=True)
    paid = row_minor(row, "amount_paid")
    if due < 0 or paid < 0:
        raise MappingError(f"line {line}: amount_due and amount_paid cannot be negative")
    if paid > due:
        raise MappingError(f"line {line}: amount_paid is more than amount_due")
    attempted = said == "paid" or said in FAILED_STATUSES
    attempts = row_int(row, "attempts", required=False)
    if attempts is None:
        attempts = 1 if attempted else 0
    due_at = row_when(row, "due_at")
    created = row_when(row, "created_at") or due_at
    if created is None:
        raise MappingError(f"line {line}: created_at and due_at are both empty")
    values = {
        "external_id": row_text(row, "id", required=True),
        "account_ref": ref,
        "status": status,
        "amount_due_minor": due,
        "amount_remaining_minor": due - paid,
        "currency": (row_text(row, "currency") or "USD").upper()[:3],
        "attempt_count": attempts,
        "due_at": due_at,
        "paid_at": row_when(row, "paid_at"),
        "created_at": created,
    }
    return [Record(Invoice, values), *links]


def map_usage(row: Row) -> list[Record]:
    """A usage row of either shape: long form (a `metric` column) or weekly snapshot."""
    if is_long_form(row):
        return map_metric_row(row)
    records = map_usage_row(row)
    for record in records:
        for column in ("active_users", "licensed_seats"):
            count = record.values.get(column)
            if isinstance(count, int) and count > MAX_INT:
                raise MappingError(f"line {row.get('line')}: {column} {count} is too large")
    return records


KINDS: dict[str, tuple[tuple[str, ...], Callable[[Row], list[Record]]]] = {
    "accounts": (("id", "name"), map_account),
    "tickets": (("id", "status", "created_at"), map_ticket),
    "subscriptions": (("id", "status", "mrr"), map_subscription),
    "invoices": (("id", "amount_due", "status"), map_invoice),
    "usage": (("account_id", "week_start", "active_users"), map_usage),
    "surveys": (("id", "kind", "score", "scale_max", "responded_at"), map_survey),
}
"""Each kind: its required columns and its row mapper (usage: of the weekly shape)."""


def required_columns(kind: str, header: Sequence[str]) -> tuple[str, ...]:
    """The columns a file of `kind` with this header must have (usage: by its shape)."""
    if kind == "usage" and is_long_form(header):
        day = "week_start" if "week_start" in header and "date" not in header else "date"
        return (day, "metric", "value")
    return KINDS[kind][0]


def map_file_row(kind: str, row: Row) -> list[Record]:
    """One row of a `kind` file -> canonical records (a MappingError says what is wrong)."""
    if "_error" in row:
        raise MappingError(f"line {row.get('line')}: {row['_error']}")
    return KINDS[kind][1](row)


def _as_of_order(row: Row) -> tuple[int, str]:
    try:
        moment = row_when(row, "as_of")
    except (MappingError, ValueError, OverflowError):
        return (2, "")
    return (1, "") if moment is None else (0, moment.isoformat())


TRAITS_SINCE = ("import", "created_at")
"""When the traits of an accounts row without `as_of` held: from the import (what is
known), or since the account's `created_at` (the admin says they were fixed at signing)."""


def prepare_rows(
    kind: str, rows: Sequence[dict[str, Any]], traits_since: str = "import"
) -> list[dict[str, Any]]:
    """A page of accounts rows, ready to map: each trait column typed over the whole page
    (its kind kept on every row, so a replayed row reads the same), and the rows in `as_of`
    order (no `as_of`: the time of the import, last), so each account takes its latest
    row. With `traits_since="created_at"` a row without `as_of` is taken as of its
    `created_at`, so backtests of the past see attributes fixed when the customer signed.
    Other kinds pass unchanged."""
    if kind != "accounts":
        return list(rows)
    if traits_since == "created_at":
        rows = [
            {**r, "as_of": r.get("created_at")}
            if not str(r.get("as_of") or "").strip() and r.get("created_at")
            else r
            for r in rows
        ]
    good = [r for r in rows if "_error" not in r]
    columns = dict.fromkeys(c for r in good for c in _trait_columns(r))
    kinds = {
        c: infer_kind(r.get(c) for r in good if not isinstance(r.get(c), dict | list))
        for c in columns
    }
    typed = [{**r, TRAIT_KINDS_KEY: kinds} for r in rows]
    return sorted(typed, key=_as_of_order)


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
    engine: Engine,
    kind: str,
    path: Path,
    now: datetime | None = None,
    *,
    traits_since: str = "import",
) -> ImportSummary:
    """Map and store every row of `path` in one transaction, then match identities.

    `traits_since` is for accounts files without `as_of` (see `prepare_rows`)."""
    if traits_since not in TRAITS_SINCE:
        raise FatalError(f"traits since {traits_since!r}: choose {' or '.join(TRAITS_SINCE)}")
    rows = prepare_rows(kind, read_rows(kind, path), traits_since)
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


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FatalError(f"cannot read {path} ({exc.strerror})") from exc
    # bytes that are not UTF-8 become lone surrogates: their rows are quarantined, not the file
    return data.decode("utf-8-sig", errors="surrogateescape")


def _check_header(kind: str, path: Path, header: Sequence[str]) -> None:
    missing = [c for c in required_columns(kind, header) if c not in header]
    if missing:
        raise FatalError(
            f"{path} lacks the columns {', '.join(missing)} for {kind}: "
            f"see `health-agent import --help` for the columns of each kind"
        )
    if kind == "accounts":
        for number, column in enumerate(header, start=1):
            if column and column not in ACCOUNT_COLUMNS and not column.startswith("_"):
                problem = clean_row({column: ""}).get("_error")
                try:
                    if problem is not None:
                        raise ValueError(f"its name is not text: {problem}")
                    check_name(column, "column name")
                except ValueError as exc:
                    raise FatalError(
                        f"{path}: column {number} cannot be a trait: {exc}; rename it "
                        f"(at most 100 characters of UTF-8 text, no NUL)"
                    ) from None


def read_rows(kind: str, path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV or JSON Lines file, each with its `line` number.

    A missing column or an unreadable file is a FatalError naming the file and the fix;
    a bad row is left for its mapper to quarantine.
    """
    if kind not in KINDS:
        raise FatalError(f"unknown kind {kind!r}: choose from {', '.join(KINDS)}")
    text = _decode(path)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deep"
                item = {"_error": f"not JSON ({reason})"}
            if not isinstance(item, dict):
                item = {"_error": "not a JSON object"}
            rows.append(clean_row({"line": number, **item}))
        return rows
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() if isinstance(h, str) else h for h in reader.fieldnames or []]
        reader.fieldnames = header
        _check_header(kind, path, header)
        rows = []
        for row in reader:
            extra = row.pop(None, None)  # DictReader puts surplus values under None
            if extra:
                row["_error"] = f"{len(extra)} more values than the header has columns"
            rows.append(clean_row({"line": reader.line_num, **row}))
    except csv.Error as exc:
        raise FatalError(f"{path} line {reader.line_num}: not valid CSV ({exc})") from None
    return rows
