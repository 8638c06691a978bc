"""One message per account and recipient: alerts that go out together are sent as one.

One event often makes several rules fire for an account at once (a failed payment caps
the score, so `band_drop`, `payment_failed` and `renewal_at_risk` all fire). In a delivery
run, the alerts the plan sends on their own (after snoozes, quiet hours, the budget and the
summary rules) that share an account, a recipient and a route go out as one message:

- the most severe alert (ties: the oldest) leads: the message is its own, with its buttons;
- the others are listed in it under "Also", each with its severity and headline;
- every alert of the group is claimed before the post; one another instance has already
  claimed is left out of the message (it goes in that instance's message instead);
- once posted, the others are recorded `sent` with the lead's channel and message ts, and
  `rolled_into` = the lead's id. The budget counts the message once (`fatigue.allot`).

So `rolled_into` names the alert whose message an alert went out in: a daily summary (the
alert is then `rolled`, see `plan.py`) or a lead alert (the alert is then `sent`: "folded").
Acknowledging or snoozing a lead covers its folded alerts (`actions.py`), and folded alerts
never escalate on their own: the lead's escalation lists them (`escalate.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_
from sqlmodel import Session, col, select

from notifications.messages import AlertFacts, AlsoItem, headline
from notifications.plan import NOTICE_RULES
from notifications.routing import Route
from notifications.rules import severity_rank
from store.models import Alert

__all__ = ["Group", "also_items", "folded", "folded_into", "group_sends", "lead_first"]


@dataclass(frozen=True)
class Group:
    """Alerts that go out as one message on one route; the lead comes first."""

    alerts: list[Alert]
    route: Route

    @property
    def lead(self) -> Alert:
        return self.alerts[0]


def lead_first(alerts: Iterable[Alert]) -> list[Alert]:
    """The most severe first, then the oldest."""
    return sorted(alerts, key=lambda a: (severity_rank(a.severity), a.created_at, a.id or 0))


def _key(alert: Alert, route: Route) -> tuple[int, str, str | None] | None:
    """What alerts must share to go out together; None for an alert that goes alone."""
    if alert.account_id is None or alert.rule in NOTICE_RULES:
        return None
    return alert.account_id, alert.recipient_email or "", route.channel


def group_sends(send: Sequence[tuple[Alert, Route]]) -> list[Group]:
    """The plan's sends as messages, in the plan's order: a group takes its first alert's
    place, and the alerts in it are lead first."""
    members: dict[object, list[Alert]] = {}
    routes: dict[object, Route] = {}
    for position, (alert, route) in enumerate(send):
        key: object = _key(alert, route) or position
        members.setdefault(key, []).append(alert)
        routes.setdefault(key, route)
    return [Group(lead_first(alerts), routes[key]) for key, alerts in members.items()]


def folded_into(lead_ids: Sequence[int]) -> ColumnElement[bool]:
    """The condition for the alerts that went out in these lead alerts' messages."""
    return and_(
        col(Alert.rolled_into).in_(lead_ids),
        col(Alert.status) == "sent",
        col(Alert.rule).not_in(NOTICE_RULES),
    )


def folded(session: Session, lead_ids: Sequence[int]) -> dict[int, list[Alert]]:
    """The alerts that went out in each lead alert's message, most severe first."""
    if not lead_ids:
        return {}
    found: dict[int, list[Alert]] = {}
    for alert in lead_first(session.exec(select(Alert).where(folded_into(lead_ids))).all()):
        assert alert.rolled_into is not None
        found.setdefault(alert.rolled_into, []).append(alert)
    return found


def also_items(alerts: Iterable[Alert]) -> list[AlsoItem]:
    """How a message lists the alerts folded into it."""
    return [AlsoItem(a.severity, headline(AlertFacts.from_payload(a.payload))) for a in alerts]
