"""Product usage from a CSV file: active users and licensed seats per account and week.

The header is `account_id,account_domain,week_start,active_users,licensed_seats`, where
`account_id` is the CRM's id of the account. Each row becomes a `UsageSnapshot` and an
`ExternalLink` (the CRM id as explicit hint, the domain as fallback) for identity to match.
The file is read like a conditional GET: its SHA-256 is the stream cursor, and a file whose
fingerprint matches the committed one yields nothing, so a second sync of the same file
writes nothing. A malformed row is quarantined with its line number; the rest are kept.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from connectors.base import (
    Connector,
    CursorKind,
    Json,
    Record,
    Request,
    StreamSpec,
    normalise_domain,
)
from connectors.errors import FatalError, MappingError
from connectors.paginators import SinglePagePaginator
from settings import ConfigError, Settings
from store.models import ExternalLink, UsageSnapshot

__all__ = ["HEADER", "SOURCE", "CsvFile", "build", "map_row"]

SOURCE = "usage_file"
HEADER = ("account_id", "account_domain", "week_start", "active_users", "licensed_seats")
PERIOD = timedelta(days=7)


class CsvFile:
    """A `Fetcher` over one CSV file: `{"fingerprint": ..., "rows": [...]}` per read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fetch(self, request: Request) -> Json:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise FatalError(
                f"usage_file cannot read {self.path} ({exc.strerror}): "
                "check USAGE_FILE__PATH in .env"
            ) from exc
        fingerprint = f"sha256:{hashlib.sha256(data).hexdigest()}"
        if request.params.get("if_none_match") == fingerprint:
            return {"fingerprint": fingerprint, "rows": []}
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
        missing = [c for c in HEADER if c not in (reader.fieldnames or [])]
        if missing:
            raise FatalError(
                f"usage_file {self.path} lacks the columns {', '.join(missing)}: "
                f"the header must be {','.join(HEADER)}"
            )
        rows = [{"line": reader.line_num, **row} for row in reader]
        return {"fingerprint": fingerprint, "rows": rows}

    def close(self) -> None:
        pass


def _count(raw: Mapping[str, Any], field: str, *, required: bool) -> int | None:
    text = (raw.get(field) or "").strip()
    if not text:
        if required:
            raise MappingError(f"line {raw.get('line')}: {field} is empty")
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise MappingError(
            f"line {raw.get('line')}: {field} {text!r} is not a whole number"
        ) from exc
    if value < 0:
        raise MappingError(f"line {raw.get('line')}: {field} {value} is negative")
    return value


def map_row(raw: Mapping[str, Any]) -> list[Record]:
    """A CSV row -> a UsageSnapshot of its week, and a link from the CRM id to the account."""
    line = raw.get("line")
    account = (raw.get("account_id") or "").strip()
    if not account:
        raise MappingError(f"line {line}: account_id is empty")
    text = (raw.get("week_start") or "").strip()
    try:
        week = date.fromisoformat(text)
    except ValueError as exc:
        raise MappingError(f"line {line}: week_start {text!r} is not a date (YYYY-MM-DD)") from exc
    snapshot = {
        "external_id": f"{account}:{week.isoformat()}",
        "account_ref": account,
        "period_start": week,
        "active_users": _count(raw, "active_users", required=True),
        "licensed_seats": _count(raw, "licensed_seats", required=False),
        "recorded_at": datetime.combine(week + PERIOD, time(), UTC),
    }
    link = {
        "external_id": account,
        "kind": "account",
        "domain": normalise_domain(raw.get("account_domain")),
        "crm_hint": account,
    }
    return [Record(UsageSnapshot, snapshot), Record(ExternalLink, link)]


def _row_key(raw: Mapping[str, Any]) -> str:
    """Rows are known by their line: a corrected row on the same line resolves its quarantine."""
    return f"line {raw.get('line')}"


def build(settings: Settings) -> Connector:
    """The usage-file connector for these settings."""
    path = settings.usage_file.path
    if path is None:
        raise ConfigError("usage_file is not configured: set USAGE_FILE__PATH in .env")
    stream = StreamSpec(
        name="usage",
        path=str(path),
        query=lambda ctx: {"if_none_match": ctx.cursor} if ctx.cursor else {},
        records_key="rows",
        paginator=SinglePagePaginator,
        mapper=map_row,
        record_key=_row_key,
        cursor_kind=CursorKind.OPAQUE,
        cursor=lambda page: page.body.get("fingerprint"),
    )
    return Connector(source=SOURCE, streams=(stream,), open=lambda: CsvFile(Path(path)))
