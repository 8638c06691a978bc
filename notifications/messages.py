"""Slack messages the agent sends, built with `slack_sdk.models.blocks`.

An alert's message may also list other alerts about the same account that go out with it
("Also"): each with its severity and headline, at most ten, the rest counted.

Every message has a plain `text` fallback (notifications, screen readers, old clients)
and blocks that are checked against Block Kit's limits before they leave: the SDK's
validators (header 150 chars, section 3,000, 10 fields, 25 actions, 10 context elements)
plus the message-wide limits (50 blocks; about 13k characters of blocks). Long parts are
shortened rather than rejected, so an alert is never lost to a long note.

The alert's buttons carry the alert id as their value; the action ids are the contract
with the interactive handlers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

__all__ = [
    "ACTION_ACKNOWLEDGE",
    "ACTION_LOG_SENTIMENT",
    "ACTION_SNOOZE",
    "ACTION_START_PLAYBOOK",
    "AlertFacts",
    "AlsoItem",
    "SlackMessage",
    "build_admin_notice",
    "build_alert_message",
    "escape",
    "format_money",
    "headline",
    "shorten",
    "stale_text",
    "validated",
]

ACTION_ACKNOWLEDGE = "alert_acknowledge"
ACTION_SNOOZE = "alert_snooze_7d"
ACTION_LOG_SENTIMENT = "alert_log_sentiment"
ACTION_START_PLAYBOOK = "alert_start_playbook"

MAX_BLOCKS = 50
MAX_BLOCKS_CHARS = 12_000  # Slack has refused messages near 13k characters of blocks
HEADER_MAX, SECTION_MAX, FIELD_MAX, CONTEXT_MAX = 150, 3000, 2000, 2000
ALSO_SHOWN, ALSO_IN_TEXT = 10, 5
ZERO_DECIMAL = {"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "PYG", "RWF"}
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


@dataclass(frozen=True, kw_only=True)
class AlertFacts:
    """What an alert says; stored as the alert's payload, rendered at delivery.

    A band drop has the previous score and band; other rules say what they saw in `title`
    and `reasons`. `key` tells alerts of one rule apart (a band drop's new band).
    """

    account_name: str
    score: float
    band: str
    as_of: date
    previous_score: float | None = None
    previous_band: str | None = None
    drivers: list[str] = field(default_factory=list)
    renewal_date: date | None = None
    arr_minor: int | None = None
    currency: str = "USD"
    scorecard_version: str = ""
    rule: str = "band_drop"
    severity: str = ""
    title: str = ""
    reasons: list[str] = field(default_factory=list)
    key: str = ""
    stale: list[str] = field(default_factory=list)
    """Measures whose data comes from a failing or lagging source, with why."""

    def to_payload(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        data["renewal_date"] = self.renewal_date.isoformat() if self.renewal_date else None
        return data

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> AlertFacts:
        values = dict(data)
        values["as_of"] = date.fromisoformat(values["as_of"])
        if values.get("renewal_date"):
            values["renewal_date"] = date.fromisoformat(values["renewal_date"])
        return cls(**values)


@dataclass(frozen=True)
class AlsoItem:
    """Another alert about the account that goes out listed in this alert's message."""

    severity: str
    headline: str


@dataclass(frozen=True)
class SlackMessage:
    """Fallback text plus validated blocks."""

    text: str
    blocks: list[Block]

    def as_kwargs(self) -> dict[str, Any]:
        """Arguments for `chat.postMessage` (besides the channel)."""
        return {"text": self.text, "blocks": [block.to_dict() for block in self.blocks]}


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def escape(text: str) -> str:
    """Text safe inside mrkdwn: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_money(minor: int, currency: str) -> str:
    """`$120,000` from minor units; cents only when there are some."""
    code = currency.upper()
    value = minor if code in ZERO_DECIMAL else minor / 100
    amount = f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"
    symbol = SYMBOLS.get(code)
    return f"{symbol}{amount}" if symbol else f"{amount} {code}"


def headline(facts: AlertFacts) -> str:
    """ "Acme Robotics dropped from green (78) to red (34)", or the rule's own title."""
    if facts.title:
        return facts.title
    if facts.previous_band is None or facts.previous_score is None:
        return f"{facts.account_name} is {facts.band} ({facts.score:.0f})"
    return (
        f"{facts.account_name} dropped from {facts.previous_band} ({facts.previous_score:.0f}) "
        f"to {facts.band} ({facts.score:.0f})"
    )


def validated(text: str, blocks: list[Block]) -> SlackMessage:
    if not text.strip():
        raise ValueError("a Slack message needs a fallback text")
    if len(blocks) > MAX_BLOCKS:
        raise ValueError(f"{len(blocks)} blocks: Slack takes at most {MAX_BLOCKS}")
    rendered = [block.to_dict() for block in blocks]  # runs the SDK's Block Kit validators
    size = len(json.dumps(rendered, ensure_ascii=False))
    if size > MAX_BLOCKS_CHARS:
        raise ValueError(f"blocks are {size} characters: keep them under {MAX_BLOCKS_CHARS}")
    return SlackMessage(text=text, blocks=blocks)


def _why(facts: AlertFacts) -> list[str]:
    """What the rule saw, then the score's drivers it did not already say; five at most."""
    return [*facts.reasons, *(d for d in facts.drivers if d not in facts.reasons)][:5]


def _score_text(facts: AlertFacts) -> str:
    if facts.previous_score is None:
        return f"*Score*\n{facts.score:.0f} ({facts.band})"
    return f"*Score*\n{facts.score:.0f} (was {facts.previous_score:.0f})"


def build_alert_message(
    facts: AlertFacts,
    alert_id: int,
    *,
    today: date | None = None,
    title_prefix: str = "",
    note: str | None = None,
    also: Sequence[AlsoItem] = (),
) -> SlackMessage:
    """The alert: header, what was seen and the drivers, renewal and ARR, and the buttons.

    `title_prefix` goes before the headline ("Escalated: "), `note` under it (who the alert
    was for, when it reaches someone else than the owner), `also` after the drivers (the
    other alerts about the account that go out in this message; the buttons act on all).
    """
    title = title_prefix + headline(facts)
    drivers = _why(facts)
    why = "\n".join(f"• {escape(shorten(d, 400))}" for d in drivers)
    fields = [MarkdownTextObject(text=_score_text(facts))]
    if facts.renewal_date is not None:
        renewal = facts.renewal_date.isoformat()
        days = (facts.renewal_date - (today or facts.as_of)).days
        if days >= 0:
            renewal += f" (in {days} day{'' if days == 1 else 's'})"
        fields.append(MarkdownTextObject(text=f"*Renewal*\n{renewal}"))
    if facts.arr_minor:
        fields.append(
            MarkdownTextObject(text=f"*ARR*\n{format_money(facts.arr_minor, facts.currency)}")
        )
    context = f"Health as of {facts.as_of.isoformat()}"
    if facts.severity:
        context = f"{facts.severity.capitalize()} · {context}"
    if facts.scorecard_version:
        context += f" · scorecard {facts.scorecard_version}"
    value = str(alert_id)
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=shorten(title, HEADER_MAX), emoji=True)),
        *_note(note),
        SectionBlock(
            text=MarkdownTextObject(
                text=shorten(
                    f"*Why*\n{why}" if why else "No single driver stands out.", SECTION_MAX
                )
            ),
            fields=fields,
        ),
        *_also_section(also),
        ContextBlock(elements=[MarkdownTextObject(text=shorten(escape(context), CONTEXT_MAX))]),
        *_stale_note(facts.stale),
        ActionsBlock(
            block_id=f"alert:{alert_id}",
            elements=[
                ButtonElement(
                    text="Acknowledge", action_id=ACTION_ACKNOWLEDGE, value=value, style="primary"
                ),
                ButtonElement(text="Snooze 7 days", action_id=ACTION_SNOOZE, value=value),
                ButtonElement(text="Log sentiment", action_id=ACTION_LOG_SENTIMENT, value=value),
                ButtonElement(text="Start playbook", action_id=ACTION_START_PLAYBOOK, value=value),
            ],
        ),
    ]
    text = title + (f". {note.rstrip('.')}" if note else "")
    text += f". {_also_text(also)}" if also else ""
    text += f". {'; '.join(drivers[:3])}" if drivers else ""
    text += f". {stale_text(facts.stale, shown=1)}" if facts.stale else ""
    return validated(shorten(text, 3000), blocks)


def _also_text(also: Sequence[AlsoItem]) -> str:
    """The other alerts in the fallback text: "Also: … (high); … (medium); and N more"."""
    lines = [f"{shorten(a.headline, 200)} ({a.severity or 'alert'})" for a in also[:ALSO_IN_TEXT]]
    more = len(also) - ALSO_IN_TEXT
    return "Also: " + "; ".join(lines) + (f"; and {more} more" if more > 0 else "")


def _also_section(also: Sequence[AlsoItem]) -> list[Block]:
    """One section listing the other alerts, as many as fit (ten at most), then "…and N more"."""
    if not also:
        return []
    text = f"*Also about this account* ({len(also)})"
    for shown, item in enumerate(also):
        severity = escape(item.severity.capitalize() or "Alert")
        line = f"\n• *{severity}* · {escape(shorten(item.headline, 200))}"
        rest = f"\n…and {len(also) - shown} more"
        if shown == ALSO_SHOWN or len(text) + len(line) + len(rest) > SECTION_MAX:
            text += rest
            break
        text += line
    return [SectionBlock(text=MarkdownTextObject(text=text))]


def stale_text(stale: list[str], shown: int = 3) -> str:
    """One line saying which measures may rest on stale data ("" when none)."""
    if not stale:
        return ""
    more = f" and {len(stale) - shown} more" if len(stale) > shown else ""
    return (
        "Some data may be stale, so part of this may be a sync gap rather than the customer: "
        + "; ".join(stale[:shown])
        + more
    )


def _stale_note(stale: list[str]) -> list[Block]:
    line = stale_text(stale)
    if not line:
        return []
    text = shorten(":warning: " + escape(line), CONTEXT_MAX)
    return [ContextBlock(elements=[MarkdownTextObject(text=text)])]


def _note(note: str | None) -> list[Block]:
    if not note:
        return []
    return [ContextBlock(elements=[MarkdownTextObject(text=shorten(escape(note), CONTEXT_MAX))])]


def build_admin_notice(title: str, lines: list[str]) -> SlackMessage:
    """A short list for the admin channel (alerts that could not be routed...)."""
    shown, hidden = lines[:20], len(lines) - 20
    body = "\n".join(f"• {escape(shorten(line, 300))}" for line in shown)
    if hidden > 0:
        body += f"\n…and {hidden} more"
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=shorten(title, HEADER_MAX))),
        SectionBlock(text=MarkdownTextObject(text=shorten(body, SECTION_MAX))),
    ]
    text = f"{title}: " + "; ".join(shown)
    return validated(shorten(text, 3000), blocks)
