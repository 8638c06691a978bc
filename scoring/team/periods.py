"""The period a team report covers: a quarter, a month, an ISO week, or two dates.

`parse_period` reads `2026-Q3`, `2026-09` and `2026-W37`; `choose_period` turns the command
line's `--period`, `--from` and `--to` into a `Period`, by default the last complete quarter.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["Period", "PeriodError", "choose_period", "last_complete_quarter", "parse_period"]


class PeriodError(ValueError):
    """A period that cannot be read, or that ends before it starts."""


@dataclass(frozen=True)
class Period:
    """The days from `start` to `end`, both included, with the name it was given."""

    label: str
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise PeriodError(f"the period ends ({self.end}) before it starts ({self.start})")

    @property
    def opening_day(self) -> date:
        """The day whose end is the period's start: figures "at the start" are as of it."""
        return self.start - timedelta(days=1)


_QUARTER = re.compile(r"(\d{4})-Q(\d)", re.IGNORECASE)
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_WEEK = re.compile(r"(\d{4})-W(\d{2})", re.IGNORECASE)


def _quarter(year: int, number: int) -> Period:
    first_month = 3 * number - 2
    last = date(year, first_month + 2, calendar.monthrange(year, first_month + 2)[1])
    return Period(f"{year}-Q{number}", date(year, first_month, 1), last)


def parse_period(text: str) -> Period:
    """`2026-Q3` (a quarter), `2026-09` (a month) or `2026-W37` (an ISO week) as days."""
    value = text.strip()
    if (found := _QUARTER.fullmatch(value)) and 1 <= int(found[2]) <= 4:
        return _quarter(int(found[1]), int(found[2]))
    if (found := _MONTH.fullmatch(value)) and 1 <= int(found[2]) <= 12:
        year, month = int(found[1]), int(found[2])
        last = calendar.monthrange(year, month)[1]
        return Period(value, date(year, month, 1), date(year, month, last))
    if found := _WEEK.fullmatch(value):
        try:
            monday = date.fromisocalendar(int(found[1]), int(found[2]), 1)
        except ValueError:
            raise PeriodError(f"{found[1]} has no ISO week {found[2]}") from None
        return Period(f"{found[1]}-W{found[2]}", monday, monday + timedelta(days=6))
    raise PeriodError(f"{text!r} is not a period: use 2026-Q3, 2026-09 or 2026-W37")


def last_complete_quarter(today: date) -> Period:
    """The latest quarter that ended before `today`."""
    current = (today.month - 1) // 3 + 1
    return _quarter(today.year - 1, 4) if current == 1 else _quarter(today.year, current - 1)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(f"{option} {text!r} is not a date; use YYYY-MM-DD") from None


def choose_period(period: str | None, start: str | None, end: str | None, *, today: date) -> Period:
    """The period the options name: `--period`, or `--from` and `--to` (days included),
    or by default the last complete quarter before `today`."""
    if period is not None and (start is not None or end is not None):
        raise PeriodError("give --period or --from/--to, not both")
    if period is not None:
        return parse_period(period)
    if start is None and end is None:
        return last_complete_quarter(today)
    if start is None or end is None:
        raise PeriodError("--from and --to go together")
    first, last = _day(start, "--from"), _day(end, "--to")
    return Period(f"{first}..{last}", first, last)
