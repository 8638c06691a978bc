"""The slash commands: `/health ACCOUNT` and `/sentiment ACCOUNT green|yellow|red NOTE`.

Both answer only the person who typed them. `/health` reads the store and answers at once
with the account's score, band, trend over 7, 30 and 90 days, top drivers and renewal.
`/sentiment` checks what was typed at once (a usage line when it cannot be understood, a
one-line answer when no account matches), then records the entry with the person's email
(origin "slack") and confirms through the command's `response_url`.

An account is found the way the CLI finds one: by id, CRM id, domain or exact name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, timedelta
from functools import partial
from typing import Any

from sqlmodel import Session

from notifications.messages import escape
from notifications.serve_blocks import HealthCard, health_message
from notifications.serve_context import Answer, Origin, SlackContext, ephemeral
from scoring import SentimentError, UnknownAccountError, explain, record_sentiment
from scoring.breakdown import StaleAfter, measure_lines
from scoring.trend import WINDOWS, moves, score_on_or_before
from store.lookup import AccountNotFoundError, driver_text, find_account, latest_sentiment
from store.models import Account, HealthScore

__all__ = [
    "HEALTH_USAGE",
    "SENTIMENT_USAGE",
    "handle_command",
    "health_card",
    "parse_sentiment",
    "record_from_slack",
]

HEALTH_USAGE = (
    "Usage: /health ACCOUNT (an account id, CRM id, domain or name), e.g. /health acme.com"
)
SENTIMENT_USAGE = (
    "Usage: /sentiment ACCOUNT green|yellow|red NOTE, e.g. /sentiment acme.com yellow "
    "champion is leaving"
)
_SENTIMENT = re.compile(
    r"^\s*(?P<account>.+?)\s+(?P<value>green|yellow|red)\b(?P<note>.*)$", re.I | re.S
)


def handle_command(ctx: SlackContext, form: Mapping[str, Any]) -> Answer:
    """Answer one slash command (its form fields, as Slack sends them)."""
    if form.get("ssl_check"):  # Slack checking the certificate of the command URL
        return Answer()
    command = str(form.get("command") or "").strip().lower()
    text = str(form.get("text") or "").strip()
    if command == "/health":
        return _health(ctx, text)
    if command == "/sentiment":
        return _sentiment(ctx, text, Origin.of_command(form))
    return Answer(ephemeral(f"This app answers /health and /sentiment, not {escape(command)}."))


def _not_found(needle: str, exc: AccountNotFoundError, command: str) -> str:
    if "several" in str(exc):  # an ambiguous name: the message lists the candidates' ids
        return escape(str(exc))
    return (
        f"No account matches “{escape(needle)}”: type {command} followed by an account id, "
        "CRM id, domain or exact name, e.g. acme.com"
    )


def _health(ctx: SlackContext, needle: str) -> Answer:
    if not needle:
        return Answer(ephemeral(HEALTH_USAGE))
    with Session(ctx.engine) as session:
        try:
            account = find_account(session, needle)
        except AccountNotFoundError as exc:
            return Answer(ephemeral(_not_found(needle, exc, "/health")))
        message = health_message(health_card(session, account, stale_after=ctx.stale_after))
    return Answer(ephemeral(message.text, message.blocks))


def _trend(session: Session, latest: HealthScore) -> tuple[dict[int, float], list[str]]:
    """Change over each window, and the measures that moved most over 30 days."""
    trend: dict[int, float] = {}
    moved: list[str] = []
    for days in WINDOWS:
        then = score_on_or_before(session, latest.account_id, latest.as_of - timedelta(days=days))
        if then is None:
            continue
        trend[days] = round(latest.score - then.score, 1)
        if days == 30 and abs(latest.score - then.score) >= 1:
            moved = [f"{m.measure} {m.points:+.0f}" for m in moves(latest, then)]
    return trend, moved


def health_card(
    session: Session,
    account: Account,
    today: date | None = None,
    stale_after: StaleAfter | None = None,
) -> HealthCard:
    """Everything `/health` shows about `account`, read from the store."""
    assert account.id is not None
    health = explain(session, account.id, history=1)
    entry = latest_sentiment(session, account.id)
    sentiment = None
    if entry is not None:
        sentiment = f"{entry.sentiment} on {entry.recorded_at:%Y-%m-%d}"
        sentiment += f": {entry.note}" if entry.note else ""
    base = HealthCard(
        name=account.name,
        today=today or date.today(),
        renewal_date=account.renewal_date,
        arr_minor=account.arr_minor,
        currency=account.currency,
        owner_email=account.owner_email,
        sentiment=sentiment,
    )
    latest = health.latest
    if latest is None:
        return base
    trend, moved = _trend(session, latest)
    lines = measure_lines(session, latest, None, stale_after=stale_after)
    stale = [line.measure for line in lines if line.stale]
    return replace(
        base,
        score=latest.score,
        band=latest.band,
        as_of=latest.as_of,
        confidence=latest.confidence,
        scorecard_version=latest.scorecard_version,
        trend=trend,
        moved=moved,
        drivers=[driver_text(d) for d in latest.drivers],
        stale=sorted(set(stale)),
    )


def parse_sentiment(text: str) -> tuple[str, str, str] | None:
    """`ACCOUNT green|yellow|red NOTE` -> (account, value, note); None when it is not that.

    The account is everything before the first colour word, so names with spaces work.
    """
    found = _SENTIMENT.match(text)
    if found is None:
        return None
    return found["account"].strip(), found["value"].lower(), found["note"].strip()


def _sentiment(ctx: SlackContext, text: str, origin: Origin) -> Answer:
    parsed = parse_sentiment(text)
    if parsed is None:
        return Answer(ephemeral(SENTIMENT_USAGE))
    needle, value, note = parsed
    with Session(ctx.engine) as session:
        try:
            account = find_account(session, needle)
        except AccountNotFoundError as exc:
            return Answer(ephemeral(_not_found(needle, exc, "/sentiment")))
    assert account.id is not None
    return Answer(later=(partial(record_from_slack, ctx, origin, account.id, value, note),))


def record_from_slack(
    ctx: SlackContext, origin: Origin, account_id: int, value: str, note: str
) -> None:
    """Record a sentiment entry by the person behind `origin` and tell them how it went."""
    author = ctx.people.who(origin.user)
    try:
        record_sentiment(ctx.engine, account_id, value, note, author_email=author, origin="slack")
    except (SentimentError, UnknownAccountError) as exc:
        ctx.reply(origin, f"Nothing was recorded: {escape(str(exc))}.")
        return
    with Session(ctx.engine) as session:
        account = session.get(Account, account_id)
        name = account.name if account is not None else f"account {account_id}"
    said = f": {note}" if note else ""
    ctx.reply(origin, f"Recorded {value} for {escape(name)}{escape(said)}")
