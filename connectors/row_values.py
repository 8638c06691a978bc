"""Reading the values of one row of a file or a query, each failure a `MappingError` that
names the row's line and the column.

Rows come as text (CSV, SQL results) or JSON values (JSON Lines). Before mapping, `clean_row`
marks a row that no database could store (a NUL character, text that was not UTF-8) with an
`_error` and makes its payload safe to keep in the quarantine. Numbers must be finite and
within `MAX_NUMBER`; whole numbers within a 32-bit column's range where they go to one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from connectors.base import Record, normalise_domain, parse_iso
from connectors.errors import MappingError
from store.models import ExternalLink

__all__ = [
    "MAX_INT",
    "MAX_NUMBER",
    "Row",
    "clean_row",
    "row_day",
    "row_int",
    "row_link",
    "row_minor",
    "row_number",
    "row_text",
    "row_when",
]

Row = Mapping[str, Any]
MAX_NUMBER = 1e15
"""Largest magnitude of a number read from a row (a count, a metric, an amount in major units)."""
MAX_INT = 2**31 - 1


def _where(row: Row, column: str) -> str:
    return f"line {row.get('line')}: {column}"


def _unstorable(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character"
    if text.isascii():  # the usual case, checked in C: no surrogate can hide in ASCII
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "bytes that are not UTF-8 text (or a lone surrogate)"
    return None


def _safe(text: str) -> str:
    cleaned = text.replace("\x00", "\N{REPLACEMENT CHARACTER}")
    return "".join("\N{REPLACEMENT CHARACTER}" if "\ud800" <= c <= "\udfff" else c for c in cleaned)


def _scrub(value: Any) -> tuple[Any, str | None]:
    """The value with unstorable characters replaced, and what was found (None: clean)."""
    if isinstance(value, str):
        problem = _unstorable(value)
        return (value, None) if problem is None else (_safe(value), problem)
    if isinstance(value, list):
        items = [_scrub(v) for v in value]
        return [v for v, _ in items], next((p for _, p in items if p), None)
    if isinstance(value, dict):
        pairs = {_scrub(k)[0]: _scrub(v) for k, v in value.items()}
        found = next((p for k in value if (p := _scrub(k)[1])), None)
        return {k: v for k, (v, _) in pairs.items()}, found or next(
            (p for _, p in pairs.values() if p), None
        )
    return value, None


def clean_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row, safe to store; one holding a NUL or non-UTF-8 text gets an `_error` naming
    the column, so its mapper quarantines it."""
    out: dict[str, Any] = {}
    error = None
    for key, value in row.items():
        safe_key, key_problem = _scrub(key) if isinstance(key, str) else (key, None)
        safe_value, problem = _scrub(value)
        out[safe_key] = safe_value
        if error is None and (key_problem or problem):
            error = f"column {str(safe_key)[:40]!r} holds {key_problem or problem}"
    if error is not None and "_error" not in out:
        out["_error"] = error
    return out


def row_text(row: Row, column: str, *, required: bool = False) -> str | None:
    value = row.get(column)
    if isinstance(value, dict | list):
        raise MappingError(f"{_where(row, column)} is not a single value")
    text = str(value).strip() if value is not None else ""
    if not text:
        if required:
            raise MappingError(f"{_where(row, column)} is empty")
        return None
    return text


def row_when(row: Row, column: str, *, required: bool = False) -> datetime | None:
    """An ISO-8601 timestamp; a date alone is midnight UTC."""
    text = row_text(row, column, required=required)
    if text is None:
        return None
    if len(text) == 10:
        try:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        except ValueError:
            pass
    return parse_iso(text[:64], _where(row, column))


def row_day(row: Row, column: str) -> date:
    """A required date `YYYY-MM-DD` (a timestamp's date counts too)."""
    text = row_text(row, column, required=True) or ""
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    moment = row_when(row, column)
    if moment is None:  # pragma: no cover - required above
        raise MappingError(f"{_where(row, column)} is empty")
    return moment.date()


def row_number(row: Row, column: str, *, required: bool = True) -> float | None:
    """A finite number within ±MAX_NUMBER."""
    value = row.get(column)
    if isinstance(value, bool):
        raise MappingError(f"{_where(row, column)} {value!r} is not a number")
    text = row_text(row, column, required=required)
    if text is None:
        return None
    try:
        number = float(value) if isinstance(value, int | float) else float(text)
    except (ValueError, OverflowError):
        raise MappingError(f"{_where(row, column)} {text[:40]!r} is not a number") from None
    if not math.isfinite(number) or abs(number) > MAX_NUMBER:
        raise MappingError(
            f"{_where(row, column)} {text[:40]!r} is not a finite number within ±{MAX_NUMBER:g}"
        )
    return number


def row_int(row: Row, column: str, *, required: bool = True, low: int = 0) -> int | None:
    """A whole number between `low` and MAX_INT."""
    text = row_text(row, column, required=required)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise MappingError(f"{_where(row, column)} {text[:40]!r} is not a whole number") from None
    if not low <= value <= MAX_INT:
        raise MappingError(f"{_where(row, column)} {text[:40]!r} is outside {low}-{MAX_INT}")
    return value


def row_minor(row: Row, column: str, *, required: bool = False) -> int:
    """An amount in major units ("1234.50") as integer minor units, within ±MAX_NUMBER."""
    text = row_text(row, column, required=required)
    if text is None:
        return 0
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise MappingError(f"{_where(row, column)} {text[:40]!r} is not an amount") from None
    if not amount.is_finite() or abs(amount) > Decimal(MAX_NUMBER) / 100:
        raise MappingError(
            f"{_where(row, column)} {text[:40]!r} is not a finite amount within "
            f"±{MAX_NUMBER / 100:g}"
        )
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def row_link(row: Row) -> tuple[str | None, list[Record]]:
    """The row's account reference (CRM id, else domain), and the link identity resolves."""
    crm_id = row_text(row, "account_id")
    domain = normalise_domain(row.get("account_domain"))
    ref = crm_id or domain
    if ref is None:
        return None, []
    values = {"external_id": ref, "kind": "account", "domain": domain, "crm_hint": crm_id}
    return ref, [Record(ExternalLink, values)]
