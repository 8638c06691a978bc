"""One pure function per alert rule: does this account's snapshot call for an alert?

Each check takes an `AccountSnapshot`, the rule set and the moment of detection, and returns
a `Finding` (the severity, a headline, what it saw in plain words and a `key` that tells
alerts of one rule apart, such as the band an account dropped into) or None. Nothing here
reads the store: `snapshot.py` did, for all accounts at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from notifications.rules import RuleSet
from notifications.snapshot import AccountSnapshot
from scoring.scorecard import band_rank

__all__ = ["CHECKS", "Finding", "Moment"]


@dataclass(frozen=True)
class Moment:
    """When detection looks: as of a day, at an instant (the end of the day, or now if
    earlier)."""

    as_of: date
    instant: datetime


@dataclass(frozen=True)
class Finding:
    """A rule's verdict on one account."""

    rule: str
    severity: str
    title: str = ""
    """The headline; empty for a band drop, whose headline says the scores."""
    reasons: tuple[str, ...] = ()
    key: str = ""


def _age(hours: float) -> str:
    return f"{hours:.0f} hours" if hours < 48 else f"{hours / 24:.0f} days"


def band_drop(snap: AccountSnapshot, rules: RuleSet, _: Moment) -> Finding | None:
    before, now = snap.previous, snap.current
    if before is None or band_rank(now.band) <= band_rank(before.band):
        return None
    rule = rules.band_drop
    severity = rule.red_severity if now.band == "red" else rule.severity
    return Finding("band_drop", severity, key=now.band)


def score_drop(snap: AccountSnapshot, rules: RuleSet, _: Moment) -> Finding | None:
    rule, before, now = rules.score_drop, snap.earlier, snap.current
    if before is None or before.score - now.score < rule.points:
        return None
    title = (
        f"{snap.name}: health fell {before.score - now.score:.0f} points since "
        f"{before.as_of.isoformat()} ({before.score:.0f} to {now.score:.0f})"
    )
    return Finding("score_drop", rule.severity, title)


def payment_failed(snap: AccountSnapshot, rules: RuleSet, _: Moment) -> Finding | None:
    rule = rules.payment_failed
    reasons: list[str] = []
    failed = snap.reading("failed_payments")
    if failed is not None and float(failed[0]) >= rule.min_failed_payments:
        count, details = int(float(failed[0])), failed[1]
        more = f" ({count} failed invoices in the last 60 days)" if count > 1 else ""
        reasons.append(f"Invoice payment failed {details.get('ago', 'recently')}{more}")
    state = snap.reading("subscription_state")
    if state is not None and state[0] in rule.subscription_states:
        words = str(state[1].get("state") or str(state[0]).replace("_", " "))
        reasons.append(f"Subscription {words}")
    if not reasons:
        return None
    what = reasons[0] if reasons[0].startswith("Subscription") else "Invoice payment failed"
    title = f"{snap.name}: {what[0].lower()}{what[1:]}"
    return Finding("payment_failed", rule.severity, title, tuple(reasons))


def ticket_spike(snap: AccountSnapshot, rules: RuleSet, _: Moment) -> Finding | None:
    rule, reading = rules.ticket_spike, snap.reading("ticket_volume")
    if reading is None:
        return None
    ratio, details = float(reading[0]), reading[1]
    recent = int(details.get("recent", 0))
    if ratio < rule.ratio or recent < rule.min_recent:
        return None
    title = f"{snap.name}: tickets at {ratio:.1f}x the usual volume"
    reason = (
        f"{recent} tickets in the last 30 days, against about "
        f"{float(details.get('baseline', 0)):.0f} in a usual 30 days"
    )
    return Finding("ticket_spike", rule.severity, title, (reason,))


def urgent_ticket(snap: AccountSnapshot, rules: RuleSet, moment: Moment) -> Finding | None:
    rule, since = rules.urgent_ticket, snap.urgent_since
    if since is None:
        return None
    hours = (moment.instant - since).total_seconds() / 3600
    if hours <= rule.hours:
        return None
    kind = " or ".join(rule.priorities)
    if snap.urgent_open == 1:
        title = f"{snap.name}: {'an' if kind[:1] in 'aeiou' else 'a'} {kind} ticket open for "
        title += _age(hours)
    else:
        title = f"{snap.name}: {snap.urgent_open} {kind} tickets open, the oldest for {_age(hours)}"
    return Finding("urgent_ticket", rule.severity, title)


def renewal_at_risk(snap: AccountSnapshot, rules: RuleSet, moment: Moment) -> Finding | None:
    rule, renewal, now = rules.renewal_at_risk, snap.renewal_date, snap.current
    if renewal is None or now.band not in rule.bands:
        return None
    days = (renewal - moment.as_of).days
    if not 0 <= days <= rule.days:
        return None
    when = "today" if days == 0 else f"in {days} day{'' if days == 1 else 's'}"
    title = f"{snap.name} renews {when} and is {now.band} ({now.score:.0f})"
    return Finding("renewal_at_risk", rule.severity, title)


def usage_drop(snap: AccountSnapshot, rules: RuleSet, _: Moment) -> Finding | None:
    rule, reading = rules.usage_drop, snap.reading("usage_trend")
    if reading is None or float(reading[0]) > rule.ratio:
        return None
    ratio, details = float(reading[0]), reading[1]
    change = details.get("change") or f"down {round((1 - ratio) * 100)}%"
    reason = (
        f"{float(details.get('recent_mean', 0)):.0f} active users a week over the last 4 weeks, "
        f"against {float(details.get('prior_mean', 0)):.0f} in the 8 weeks before"
    )
    return Finding(
        "usage_drop", rule.severity, f"{snap.name}: weekly active users {change}", (reason,)
    )


def sentiment_stale(snap: AccountSnapshot, rules: RuleSet, moment: Moment) -> Finding | None:
    rule = rules.sentiment_stale
    if not snap.owner_email:
        return None
    ask = "Log a green, yellow or red call with the Log sentiment button"
    if snap.sentiment_at is None:
        return Finding(
            "sentiment_stale", rule.severity, f"{snap.name}: no CSM sentiment yet", (ask,)
        )
    days = (moment.as_of - snap.sentiment_at.date()).days
    if days <= rule.days:
        return None
    title = f"{snap.name}: CSM sentiment not updated for {days} days"
    return Finding("sentiment_stale", rule.severity, title, (ask,))


def sentiment_vs_data(snap: AccountSnapshot, rules: RuleSet, _: Moment) -> Finding | None:
    rule = rules.sentiment_vs_data
    for signal in snap.signals():
        if signal.get("kind") == "sentiment_vs_data" and signal.get("text"):
            title = f"{snap.name}: {signal['text']}"
            reason = "Either side can be wrong: look again at the account and the call"
            return Finding(
                "sentiment_vs_data",
                rule.severity,
                title,
                (reason,),
                str(signal.get("sentiment", "")),
            )
    return None


Check = Callable[[AccountSnapshot, RuleSet, Moment], Finding | None]

CHECKS: dict[str, Check] = {
    "band_drop": band_drop,
    "score_drop": score_drop,
    "payment_failed": payment_failed,
    "ticket_spike": ticket_spike,
    "urgent_ticket": urgent_ticket,
    "renewal_at_risk": renewal_at_risk,
    "usage_drop": usage_drop,
    "sentiment_stale": sentiment_stale,
    "sentiment_vs_data": sentiment_vs_data,
}
"""Every rule's check, by the rule's name in the rules file."""
