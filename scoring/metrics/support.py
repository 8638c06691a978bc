"""Support metrics: ticket volume, backlog, first-response and resolution times.

A ticket is described by its timestamps alone. Times may be naive or aware, but one call
must not mix them (comparing the two raises `TypeError`). Medians leave out the tickets
that lack the time they measure and are `None` when none has it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from scoring.metrics._checks import median_duration

__all__ = [
    "TicketTimes",
    "backlog",
    "median_first_response_time",
    "median_resolution_time",
    "ticket_volume",
]


@dataclass(frozen=True)
class TicketTimes:
    """When a ticket was created, first answered by an agent, and solved (if it was)."""

    created_at: datetime
    first_response_at: datetime | None = None
    solved_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("first_response_at", "solved_at"):
            moment: datetime | None = getattr(self, name)
            if moment is not None and moment < self.created_at:
                raise ValueError(f"a ticket's {name} is before its creation")


def ticket_volume(tickets: Iterable[TicketTimes], start: datetime, end: datetime) -> int:
    """Tickets created in the period: count of start <= created_at < end."""
    if end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    return sum(start <= ticket.created_at < end for ticket in tickets)


def backlog(tickets: Iterable[TicketTimes], at: datetime) -> int:
    """Tickets open at `at`: count of created_at <= at and not solved by then (solved_at > at)."""
    return sum(
        ticket.created_at <= at and (ticket.solved_at is None or ticket.solved_at > at)
        for ticket in tickets
    )


def median_first_response_time(tickets: Iterable[TicketTimes]) -> timedelta | None:
    """Median of first_response_at - created_at over the tickets that were answered."""
    return median_duration(
        [t.first_response_at - t.created_at for t in tickets if t.first_response_at is not None]
    )


def median_resolution_time(tickets: Iterable[TicketTimes]) -> timedelta | None:
    """Median of solved_at - created_at over the tickets that were solved."""
    return median_duration([t.solved_at - t.created_at for t in tickets if t.solved_at is not None])
