"""Block Kit for answering people in Slack: a settled alert, the sentiment form, `/health`.

Built with `slack_sdk.models`, whose validators hold Block Kit's limits when the blocks are
rendered; text that could run long is shortened first. The form's callback, block and
action ids are the contract with the submission handler.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from notifications.messages import (
    CONTEXT_MAX,
    FIELD_MAX,
    HEADER_MAX,
    SECTION_MAX,
    SlackMessage,
    escape,
    format_money,
    shorten,
)

__all__ = [
    "NOTE_ACTION",
    "NOTE_BLOCK",
    "SENTIMENT_ACTION",
    "SENTIMENT_BLOCK",
    "SENTIMENT_CALLBACK",
    "HealthCard",
    "escape",
    "health_message",
    "sentiment_modal",
    "settled_blocks",
]

SENTIMENT_CALLBACK = "log_sentiment"
SENTIMENT_BLOCK, SENTIMENT_ACTION = "sentiment", "sentiment_value"
NOTE_BLOCK, NOTE_ACTION = "note", "note_value"
NOTE_MAX = 2000
SENTIMENT_LABELS = {"green": "🟢 Green", "yellow": "🟡 Yellow", "red": "🔴 Red"}
MAX_DRIVERS = 5


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=shorten(text, CONTEXT_MAX))])


def settled_blocks(blocks: Sequence[Mapping[str, Any]], block_id: str, note: str) -> list[Any]:
    """A message's blocks as Slack sent them, without the buttons of `block_id` (or without
    any buttons when no block has that id), and `note` ("Acknowledged by ...") at the end."""
    kept = [dict(b) for b in blocks if b.get("type") != "actions"]
    if any(b.get("block_id") == block_id for b in blocks):
        kept = [dict(b) for b in blocks if b.get("block_id") != block_id]
    return [*kept, _context(note).to_dict()]


def sentiment_modal(
    account_id: int, account_name: str, alert_id: int | None, channel: str | None
) -> View:
    """The form behind "Log sentiment": green, yellow or red, and an optional note."""
    metadata = {"account_id": account_id, "alert_id": alert_id, "channel": channel}
    options = [Option(value=value, text=label) for value, label in SENTIMENT_LABELS.items()]
    return View(
        type="modal",
        callback_id=SENTIMENT_CALLBACK,
        title=PlainTextObject(text="Log sentiment"),
        submit=PlainTextObject(text="Save"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=json.dumps(metadata),
        blocks=[
            SectionBlock(
                text=MarkdownTextObject(
                    text=shorten(f"How is *{escape(account_name)}* doing, in your view?", 3000)
                )
            ),
            InputBlock(
                block_id=SENTIMENT_BLOCK,
                label="Sentiment",
                element=StaticSelectElement(
                    action_id=SENTIMENT_ACTION, placeholder="Pick one", options=options
                ),
            ),
            InputBlock(
                block_id=NOTE_BLOCK,
                label="Note",
                optional=True,
                element=PlainTextInputElement(
                    action_id=NOTE_ACTION,
                    multiline=True,
                    max_length=NOTE_MAX,
                    placeholder="What you heard, in a sentence or two",
                ),
            ),
        ],
    )


@dataclass(frozen=True)
class HealthCard:
    """What `/health` says about one account."""

    name: str
    today: date
    score: float | None = None
    band: str | None = None
    as_of: date | None = None
    confidence: float | None = None
    scorecard_version: str = ""
    trend: dict[int, float] = field(default_factory=dict)
    """Days back -> points of change since then."""
    moved: list[str] = field(default_factory=list)
    """The measures that moved the score most over 30 days ("usage -12")."""
    drivers: list[str] = field(default_factory=list)
    renewal_date: date | None = None
    arr_minor: int | None = None
    currency: str = "USD"
    owner_email: str | None = None
    sentiment: str | None = None
    """The CSM's latest call ("yellow on 2026-02-01: champion left")."""
    stale: list[str] = field(default_factory=list)
    """Measures whose data comes from a lagging or failing source."""


def _renewal(card: HealthCard) -> str:
    if card.renewal_date is None:
        return "unknown"
    days = (card.renewal_date - card.today).days
    when = card.renewal_date.isoformat()
    if days >= 0:
        when += f" (in {days} day{'' if days == 1 else 's'})"
    return when


def _trend(card: HealthCard) -> str:
    parts = [f"{days} d {change:+.0f}" for days, change in sorted(card.trend.items())]
    return " · ".join(parts) or "no earlier score yet"


def _fields(card: HealthCard) -> list[MarkdownTextObject]:
    pairs = [("Trend", _trend(card)), ("Renewal", _renewal(card))]
    if card.arr_minor:
        pairs.append(("ARR", format_money(card.arr_minor, card.currency)))
    pairs.append(("Owner", card.owner_email or "(unowned)"))
    if card.sentiment:
        pairs.append(("CSM sentiment", card.sentiment))
    return [
        MarkdownTextObject(text=shorten(f"*{label}*\n{escape(value)}", FIELD_MAX))
        for label, value in pairs
    ]


def _footer(card: HealthCard) -> list[Block]:
    facts = [f"As of {card.as_of.isoformat()}" if card.as_of else ""]
    if card.confidence is not None:
        facts.append(f"confidence {card.confidence:.0%}")
    if card.scorecard_version:
        facts.append(f"scorecard {card.scorecard_version}")
    lines = [" · ".join(f for f in facts if f)]
    if card.moved:
        lines.append("Moved most in 30 days: " + ", ".join(card.moved))
    if card.stale:
        lines.append("Data may be stale for " + ", ".join(card.stale))
    return [_context(escape(line)) for line in lines if line]


def health_message(card: HealthCard) -> SlackMessage:
    """The `/health` answer: score and band, trend, renewal, top drivers."""
    if card.score is None or card.band is None:
        text = f"{card.name} has no health score yet."
        blocks: list[Block] = [
            HeaderBlock(text=PlainTextObject(text=shorten(card.name, HEADER_MAX))),
            SectionBlock(fields=_fields(card)),
            _context("No health score yet: it appears after the next scoring run."),
        ]
        return SlackMessage(text=text, blocks=blocks)
    title = f"{card.name}: {card.score:.0f} ({card.band})"
    drivers = "\n".join(f"• {escape(shorten(d, 400))}" for d in card.drivers[:MAX_DRIVERS])
    blocks = [
        HeaderBlock(text=PlainTextObject(text=shorten(title, HEADER_MAX))),
        SectionBlock(fields=_fields(card)),
        SectionBlock(
            text=MarkdownTextObject(
                text=shorten(
                    f"*Top drivers*\n{drivers}" if drivers else "No driver stands out.", SECTION_MAX
                )
            )
        ),
        *_footer(card),
    ]
    text = f"{title} as of {card.as_of}; trend {_trend(card)}; renewal {_renewal(card)}"
    return SlackMessage(text=text, blocks=blocks)
