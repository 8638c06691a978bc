"""Write the book's survey answers as the CSV `health-agent import surveys` reads.

Header: `id,account_id,account_domain,kind,score,scale_max,responded_at,email,comment`.
NPS answers carry the HubSpot company id; post-ticket CSAT answers only the account's
domain (the survey tool knows the requester's email, not the CRM), so identity matches
them by domain. `responded_at` is ISO 8601 in UTC. Rows are sorted by answer time, then
id, with `\\n` line endings, so the file is byte-identical for the same book.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sandbox.records import Book

__all__ = ["SURVEYS_CSV_HEADER", "surveys_csv_text", "write_surveys_csv"]

SURVEYS_CSV_HEADER = (
    "id",
    "account_id",
    "account_domain",
    "kind",
    "score",
    "scale_max",
    "responded_at",
    "email",
    "comment",
)


def surveys_csv_text(book: Book) -> str:
    """The surveys CSV as a string."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SURVEYS_CSV_HEADER)
    for s in sorted(book.surveys, key=lambda s: (s.responded_at, s.id)):
        writer.writerow(
            (
                s.id,
                s.account_id or "",
                s.domain,
                s.kind,
                s.score,
                s.scale_max,
                s.responded_at.isoformat().replace("+00:00", "Z"),
                s.email,
                s.comment,
            )
        )
    return buffer.getvalue()


def write_surveys_csv(book: Book, path: Path) -> Path:
    """Write the surveys CSV to `path` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(surveys_csv_text(book), encoding="utf-8", newline="")
    return path
