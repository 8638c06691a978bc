"""One scoring run's view of the store as of a day, shared by the signals it reads.

Several declared measures can need the same set (the accounts that report usage, say):
`SignalContext.cached` computes it once per run and day.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import Executable, Row
from sqlmodel import Session

__all__ = ["SignalContext"]

T = TypeVar("T")


@dataclass
class SignalContext:
    """The session and the day scored, with what the signals of this run have shared."""

    session: Session
    as_of: date
    _shared: dict[str, Any] = field(default_factory=dict)

    def rows(self, stmt: Executable) -> Sequence[Row[*tuple[Any, ...]]]:
        return self.session.connection().execute(stmt).all()

    def cached(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()` the first time `key` is asked for in this run, then the same value."""
        if key not in self._shared:
            self._shared[key] = compute()
        value: T = self._shared[key]
        return value
