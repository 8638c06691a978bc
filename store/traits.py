"""Account traits: typed attributes of accounts, kept as a history of changes.

Every source that knows an attribute of an account beyond the canonical columns (an
accounts file's extra columns, a CRM custom field, a SQL query) hands its values to
`write_traits`, which stores a new `AccountTrait` row only where the value differs from the
latest one stored, stamped with when it was seen. Reading a trait "as of" a day is then the
latest row seen before that day ended (`latest_traits`), so scores and backtests of past
days see the value known then, never one learnt later.

Values are typed by `TraitValue.parse`: numbers, categories (any text), dates and yes/no.
`infer_kind` picks the kind of a column from all its values, so one odd value does not turn
a numeric column into categories by accident: a column is a number, date or yes/no only
when every non-empty value reads as one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, insert, select
from sqlmodel import Session, col

from store.models import TRAIT_KINDS, AccountTrait

__all__ = [
    "TraitError",
    "TraitValue",
    "infer_kind",
    "latest_traits",
    "write_traits",
]

_INSTANT = timedelta(microseconds=1)
"""Rows seen at the very moment of a write count as known then."""
CHUNK = 500
"""Accounts per query when comparing with the stored values."""

_YES = frozenset({"yes", "y", "true", "t", "1"})
_NO = frozenset({"no", "n", "false", "f", "0"})
_BOOLEAN_WORDS = frozenset({"yes", "y", "true", "t", "no", "n", "false", "f"})
MAX_TEXT = 500
"""Longest category text kept; a longer one is cut (a trait is a label, not a document)."""


class TraitError(ValueError):
    """A value that cannot be read as its trait's kind."""


@dataclass(frozen=True, slots=True)
class TraitValue:
    """One typed trait value as stored: see `AccountTrait` for where each kind sits."""

    kind: str
    number: float | None
    text: str | None

    @classmethod
    def parse(cls, kind: str, raw: object) -> TraitValue:
        """`raw` (text, number, bool, date) as a value of `kind`; empty means cleared."""
        if kind not in TRAIT_KINDS:
            raise TraitError(f"kind {kind!r} is not one of {', '.join(TRAIT_KINDS)}")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return cls(kind, None, None)
        if kind == "number":
            return cls(kind, _number(raw), None)
        if kind == "boolean":
            yes = _boolean(raw)
            return cls(kind, 1.0 if yes else 0.0, "yes" if yes else "no")
        if kind == "date":
            day = _date(raw)
            return cls(kind, float(day.toordinal()), day.isoformat())
        text = str(raw).strip().replace("\x00", "")
        return cls(kind, None, text[:MAX_TEXT])

    @property
    def empty(self) -> bool:
        return self.number is None and self.text is None

    def plain(self) -> float | str | None:
        """The value as a scorecard reads it: a number, a word, a date's ISO text."""
        if self.kind == "number":
            return self.number
        return self.text


def _number(raw: object) -> float:
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    try:
        value = float(raw) if isinstance(raw, int | float) else float(str(raw).strip())
    except (ValueError, OverflowError):
        raise TraitError(f"{str(raw)[:40]!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > 1e15:
        raise TraitError(f"{str(raw)[:40]!r} is not a finite number below 10^15")
    return value


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise TraitError(f"{str(raw)[:40]!r} is not yes or no")


def _date(raw: object) -> date:
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    text = str(raw).strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise TraitError(f"{text[:40]!r} is not an ISO date (YYYY-MM-DD)") from None


def _reads_as(kind: str, value: str) -> bool:
    try:
        TraitValue.parse(kind, value)
    except TraitError:
        return False
    return True


def infer_kind(values: Iterable[object]) -> str:
    """The kind every non-empty value of a column reads as: yes/no, number, date, else a
    category. A column of only 0 and 1 is a number (a count could be 0 or 1 too)."""
    seen = [str(v).strip() for v in values if v is not None and str(v).strip()]
    if not seen:
        return "category"
    if all(v.lower() in _BOOLEAN_WORDS for v in seen):
        return "boolean"
    for kind in ("number", "date"):
        if all(_reads_as(kind, v) for v in seen):
            return kind
    return "category"


def _latest(
    names: Iterable[str] | None, before: datetime | None, accounts: list[int] | None = None
) -> Select[Any]:
    """Per account and trait, the latest row seen before `before` (all rows when None), of
    the named traits (all when None) and of `accounts` (all when None)."""
    seen = col(AccountTrait.seen_at)
    where: list[ColumnElement[bool]] = []
    if accounts is not None:
        where.append(col(AccountTrait.account_id).in_(accounts))
    if names is not None:
        where.append(col(AccountTrait.name).in_(sorted(set(names))))
    if before is not None:
        where.append(seen < before)
    ranked = (
        select(
            col(AccountTrait.account_id).label("account_id"),
            col(AccountTrait.name).label("name"),
            col(AccountTrait.kind).label("kind"),
            col(AccountTrait.number).label("number"),
            col(AccountTrait.text).label("text"),
            func.row_number()
            .over(
                partition_by=(col(AccountTrait.account_id), col(AccountTrait.name)),
                order_by=(seen.desc(), col(AccountTrait.id).desc()),
            )
            .label("rn"),
        )
        .where(*where)
        .subquery()
    )
    return select(
        ranked.c.account_id, ranked.c.name, ranked.c.kind, ranked.c.number, ranked.c.text
    ).where(ranked.c.rn == 1)


def latest_traits(
    session: Session, names: Iterable[str], before: datetime
) -> dict[str, dict[int, TraitValue]]:
    """Each named trait's value per account as known before `before`; cleared values and
    accounts without the trait are absent. One query for all the names."""
    out: dict[str, dict[int, TraitValue]] = {}
    for account_id, name, kind, number, text in session.connection().execute(
        _latest(names, before)
    ):
        value = TraitValue(kind, number, text)
        if not value.empty:
            out.setdefault(name, {})[account_id] = value
    return out


def write_traits(
    session: Session,
    source: str,
    values: Mapping[int, Mapping[str, TraitValue]],
    seen_at: datetime,
) -> int:
    """Store the traits of these accounts (account id -> trait name -> value) that differ
    from the value stored as of `seen_at` (or are new), seen at `seen_at`; return how many
    rows were written. A value equal to the one known then writes nothing, so an import run
    twice, or a sync that sees the same CRM fields again, adds no history; and an older
    value learnt later (a CRM's property history, a backfill) lands in its place in the
    history even when a later value is already stored."""
    rows: list[dict[str, Any]] = []
    accounts = sorted(values)
    for start in range(0, len(accounts), CHUNK):
        chunk = accounts[start : start + CHUNK]
        names = {n for a in chunk for n in values[a]}
        stored: dict[tuple[int, str], TraitValue] = {}
        if names:
            stmt = _latest(names, seen_at + _INSTANT, chunk)
            for account_id, name, kind, number, text in session.connection().execute(stmt):
                stored[(account_id, name)] = TraitValue(kind, number, text)
        for account_id in chunk:
            for name, value in values[account_id].items():
                before = stored.get((account_id, name))
                if before == value or (before is None and value.empty):
                    continue
                rows.append(
                    {
                        "account_id": account_id,
                        "name": name,
                        "kind": value.kind,
                        "number": value.number,
                        "text": value.text,
                        "source": source,
                        "seen_at": seen_at,
                    }
                )
    if rows:
        session.execute(insert(AccountTrait), rows)
    return len(rows)
