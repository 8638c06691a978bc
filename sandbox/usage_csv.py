"""Write the book's weekly product usage as the CSV file the usage connector reads.

Header: `account_id,account_domain,week_start,active_users,licensed_seats`, where
`account_id` is the HubSpot company id and `week_start` is an ISO date (a Monday). Rows are
sorted by account, then week, with `\\n` line endings, so the file is byte-identical for
the same book.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sandbox.records import Book

__all__ = ["USAGE_CSV_HEADER", "usage_csv_text", "write_usage_csv"]

USAGE_CSV_HEADER = ("account_id", "account_domain", "week_start", "active_users", "licensed_seats")


def usage_csv_text(book: Book) -> str:
    """The usage CSV as a string."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(USAGE_CSV_HEADER)
    for row in sorted(book.usage, key=lambda u: (u.company_id, u.week_start)):
        writer.writerow(
            (
                row.company_id,
                row.domain,
                row.week_start.isoformat(),
                row.active_users,
                row.licensed_seats,
            )
        )
    return buffer.getvalue()


def write_usage_csv(book: Book, path: Path) -> Path:
    """Write the usage CSV to `path` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(usage_csv_text(book), encoding="utf-8", newline="")
    return path
