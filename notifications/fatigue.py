"""Fatigue controls as pure functions: quiet hours, the daily budget, snoozes.

- **Quiet hours** (`ALERTS__QUIET_HOURS`, e.g. `20:00-08:00`) are read in the recipient's
  time zone; a DM due inside them waits until they end (`deliver_after`).
- **The daily budget** (`ALERTS__DAILY_BUDGET`) counts the alert DMs a person got on their
  local day. `allot` hands out what is left, most severe and then oldest first; critical
  alerts always go out (and count), the rest beyond the budget, and every alert at
  `ALERTS__SUMMARY_ONLY` or lower, wait for that day's summary DM. Alerts of one group
  (one account) go out as one message, so only the first of them counts.
- **Snoozes** hold an account's alerts of one rule (or all rules) until they end; an alert
  that comes due while its account is snoozed is marked `snoozed` and never sent: the
  person said they know. If the condition still holds when the snooze is over, the rule
  alerts again once its cooldown allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifications.rules import severity_rank

__all__ = [
    "Allotment",
    "Candidate",
    "allot",
    "day_bounds",
    "quiet_until",
    "snoozed_until",
    "zone",
]


def zone(name: str | None) -> ZoneInfo:
    """The time zone named (IANA, as Slack and CRMs give them), UTC when unknown."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo("UTC")


def _at(day: datetime, moment: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day.date(), moment, tz).astimezone(UTC)


def quiet_until(now: datetime, window: tuple[time, time] | None, tz: ZoneInfo) -> datetime | None:
    """When the quiet hours `now` falls in end (UTC), or None outside quiet hours."""
    if window is None:
        return None
    start, end = window
    local = now.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        return _at(local, end, tz) if start <= clock < end else None
    if clock >= start:
        return _at(local + timedelta(days=1), end, tz)
    return _at(local, end, tz) if clock < end else None


def day_bounds(now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The start and the end (UTC) of the local day `now` is in."""
    local = now.astimezone(tz)
    return _at(local, time(), tz), _at(local + timedelta(days=1), time(), tz)


@dataclass(frozen=True)
class Candidate:
    """An alert that may go out to a person now."""

    alert_id: int
    severity: str
    created_at: datetime
    group: int | None = None
    """Alerts of one group (an account) go out as one message, which counts once."""


@dataclass(frozen=True)
class Allotment:
    send: list[int]
    roll: list[int]


def allot(
    candidates: Iterable[Candidate], used: int, budget: int, summary_only: str | None
) -> Allotment:
    """Split one person's alerts into those sent now and those rolled into the summary.

    `used` is how many alert DMs they got today already; `budget` 0 means no limit. An
    alert whose group already has one going out goes with it, without counting again.
    """
    send: list[int] = []
    roll: list[int] = []
    going: set[int] = set()
    floor = severity_rank(summary_only) if summary_only else None
    for c in sorted(
        candidates, key=lambda c: (severity_rank(c.severity), c.created_at, c.alert_id)
    ):
        rank = severity_rank(c.severity)
        if rank > 0 and floor is not None and rank >= floor:
            roll.append(c.alert_id)
        elif c.group is not None and c.group in going:
            send.append(c.alert_id)
        elif rank == 0 or budget == 0 or used < budget:
            send.append(c.alert_id)
            used += 1
            if c.group is not None:
                going.add(c.group)
        else:
            roll.append(c.alert_id)
    return Allotment(send, roll)


def snoozed_until(
    snoozes: Mapping[int, Sequence[tuple[str | None, datetime]]], account_id: int | None, rule: str
) -> datetime | None:
    """When the snooze holding this account's `rule` alerts ends (the latest, when several
    do); a snooze without a rule holds every rule."""
    if account_id is None:
        return None
    ends = [until for held, until in snoozes.get(account_id, ()) if held in (None, rule)]
    return max(ends) if ends else None
