"""Shared checks and arithmetic of the metrics modules; not part of the public API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from numbers import Integral


def check_score(score: object, lowest: int, highest: int, what: str) -> int:
    """`score` as an int, or `ValueError` when it is not a whole number in the scale."""
    if isinstance(score, bool) or not isinstance(score, Integral):
        raise ValueError(f"{what} score {score!r} is not a whole number")
    value = int(score)
    if not lowest <= value <= highest:
        raise ValueError(f"{what} score {value} is outside its {lowest}-{highest} scale")
    return value


def check_count(value: int, what: str) -> None:
    """`ValueError` unless `value` is zero or more."""
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {value}")


def check_rate(value: float, what: str) -> None:
    """`ValueError` unless `value` is in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be between 0 and 1, got {value}")


def share(part: float, whole: float) -> float | None:
    """`part / whole`, undefined (`None`) when `whole` is zero."""
    return part / whole if whole else None


def median_duration(durations: Sequence[timedelta]) -> timedelta | None:
    """The median of `durations` (the mean of the middle two for an even count)."""
    if not durations:
        return None
    ordered = sorted(durations)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
