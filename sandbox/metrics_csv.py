"""Write the book's per-feature usage as the long-form CSV `health-agent import usage` reads.

Header: `account_id,account_domain,date,metric,value,period`, where `account_id` is the
HubSpot company id, `date` the Monday a week starts (ISO) and `period` is `week`. Rows are
sorted by account, then day, then metric, with `\\n` line endings, so the file is
byte-identical for the same book.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sandbox.records import Book

__all__ = ["METRICS_CSV_HEADER", "metrics_csv_text", "write_metrics_csv"]

METRICS_CSV_HEADER = ("account_id", "account_domain", "date", "metric", "value", "period")
_PERIODS = {1: "day", 7: "week"}


def metrics_csv_text(book: Book) -> str:
    """The long-form usage CSV as a string."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METRICS_CSV_HEADER)
    rows = sorted(book.metrics, key=lambda m: (m.company_id, m.day, m.metric))
    writer.writerows(
        (m.company_id, m.domain, m.day.isoformat(), m.metric, m.value, _PERIODS[m.period_days])
        for m in rows
    )
    return buffer.getvalue()


def write_metrics_csv(book: Book, path: Path) -> Path:
    """Write the long-form usage CSV to `path` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(metrics_csv_text(book), encoding="utf-8", newline="")
    return path
