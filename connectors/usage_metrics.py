"""Product usage in long form: one row per account, day (or week) and metric.

    account_id, account_domain, date, metric, value[, period]
    account_id, account_domain, week_start, metric, value[, period]

`period` is `day` (the default with a `date` column) or `week` (the default with
`week_start`); the day is the first day of the period. Each row becomes one `UsageMetric`
(`period_days` 1 or 7), known by its account reference, day and metric, so a re-import
upserts it; it counts once the period is over (`recorded_at`). A metric name is trimmed,
non-empty, at most 100 characters and free of NUL; a value is a finite number within
±1e15. The weekly shape (`active_users`, `licensed_seats`: `connectors.usage_file`) is told
apart by its header: a `metric` column means long form.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, time, timedelta

from connectors.base import Record
from connectors.errors import MappingError
from connectors.row_values import Row, row_day, row_link, row_number, row_text
from connectors.trait_records import check_name
from store.models import UsageMetric

__all__ = ["LONG_COLUMNS", "PERIODS", "is_long_form", "long_form_key", "map_metric_row"]

PERIODS = {"day": 1, "week": 7}
LONG_COLUMNS = ("metric", "value")
"""Required columns of the long form, besides `date` or `week_start`."""


def is_long_form(columns: Collection[str]) -> bool:
    """True for a header (or a JSON row's keys) of the long form."""
    return "metric" in columns


def _day_column(row: Row) -> str:
    if row_text(row, "date") is not None:
        return "date"
    if row_text(row, "week_start") is not None:
        return "week_start"
    raise MappingError(f"line {row.get('line')}: date (or week_start) is empty")


def long_form_key(row: Row) -> str:
    """A row's identity across runs of a query: its account, day and metric."""
    ref = row.get("account_id") or row.get("account_domain")
    day = row.get("date") or row.get("week_start")
    return f"usage {ref}:{day}:{row.get('metric')}"


def map_metric_row(row: Row) -> list[Record]:
    """A long-form usage row -> a UsageMetric and the link identity resolves."""
    line = row.get("line")
    ref, links = row_link(row)
    if ref is None:
        raise MappingError(f"line {line}: account_id and account_domain are both empty")
    try:
        metric = check_name(row_text(row, "metric"), "metric")
    except ValueError as exc:
        raise MappingError(f"line {line}: {exc}") from None
    column = _day_column(row)
    day = row_day(row, column)
    period = (row_text(row, "period") or ("day" if column == "date" else "week")).lower()
    if period not in PERIODS:
        raise MappingError(f"line {line}: period {period[:40]!r} is not day or week")
    days = PERIODS[period]
    value = row_number(row, "value")
    try:
        recorded = datetime.combine(day + timedelta(days=days), time(), UTC)
    except OverflowError:
        raise MappingError(f"line {line}: {column} {day.isoformat()} is too late") from None
    values = {
        "external_id": f"{ref}:{day.isoformat()}:{period}:{metric}",
        "account_ref": ref,
        "day": day,
        "period_days": days,
        "metric": metric,
        "value": value,
        "recorded_at": recorded,
    }
    return [Record(UsageMetric, values), *links]
