"""Messages about alerts rather than alerts: the daily summary, the escalation to a lead.

Built with `slack_sdk.models.blocks` and checked against Block Kit's limits like the alert
message (`messages.py`); long lists are cut with "…and N more" rather than refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from notifications.messages import (
    CONTEXT_MAX,
    HEADER_MAX,
    SECTION_MAX,
    AlertFacts,
    AlsoItem,
    SlackMessage,
    build_alert_message,
    escape,
    shorten,
    validated,
)

__all__ = ["SummaryItem", "build_escalation_message", "build_summary_message"]

RULE_TITLES = {
    "band_drop": "Band drops",
    "score_drop": "Score drops",
    "payment_failed": "Payment problems",
    "ticket_spike": "Ticket spikes",
    "urgent_ticket": "Urgent tickets waiting",
    "renewal_at_risk": "Renewals at risk",
    "usage_drop": "Usage drops",
    "sentiment_stale": "No fresh CSM sentiment",
    "sentiment_vs_data": "CSM and data disagree",
}
MAX_LINES = 60


@dataclass(frozen=True)
class SummaryItem:
    """One alert listed in a daily summary."""

    alert_id: int
    rule: str
    severity: str
    text: str


def _sections(items: Sequence[SummaryItem]) -> list[str]:
    """One mrkdwn text per rule: its title and one line per alert."""
    texts: list[str] = []
    shown = 0
    for rule in dict.fromkeys(item.rule for item in items):
        lines = [item for item in items if item.rule == rule]
        take = lines[: max(0, MAX_LINES - shown)]
        shown += len(take)
        body = "\n".join(f"• {escape(shorten(item.text, 200))}" for item in take)
        if len(take) < len(lines):
            body += f"\n…and {len(lines) - len(take)} more"
        title = RULE_TITLES.get(rule, rule.replace("_", " ").capitalize())
        texts.append(shorten(f"*{title}* ({len(lines)})\n{body}", SECTION_MAX))
    return texts


def build_summary_message(day: date, items: Sequence[SummaryItem], budget: int) -> SlackMessage:
    """Today's alerts that did not go out on their own, grouped by rule."""
    count = len(items)
    title = f"Your health alerts summary for {day.isoformat()}: {count} alert{'s' * (count != 1)}"
    why = (
        f"These did not go out one by one: the daily limit is {budget} alert messages, and "
        "low-severity alerts only come in this summary."
        if budget
        else "Low-severity alerts only come in this summary."
    )
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=shorten(title, HEADER_MAX))),
        *(SectionBlock(text=MarkdownTextObject(text=text)) for text in _sections(items)[:45]),
        ContextBlock(elements=[MarkdownTextObject(text=shorten(why, CONTEXT_MAX))]),
    ]
    text = title + ": " + "; ".join(item.text for item in items[:10])
    return validated(shorten(text, 3000), blocks)


def build_escalation_message(
    facts: AlertFacts,
    alert_id: int,
    recipient: str | None,
    since: datetime,
    *,
    to_lead: bool,
    also: Sequence[AlsoItem] = (),
) -> SlackMessage:
    """The alert again, for the lead (or the admin): who it was for and since when, and the
    other alerts about the account that went out in its message (`also`)."""
    who = recipient or "the account's channel"
    tail = "you lead their team" if to_lead else "their team has no lead in Slack"
    note = f"Sent to {who} on {since:%Y-%m-%d %H:%M} UTC and not acknowledged since; {tail}."
    return build_alert_message(facts, alert_id, title_prefix="Escalated: ", note=note, also=also)
