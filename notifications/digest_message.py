"""The weekly digest as a Slack message: Block Kit built with `slack_sdk.models.blocks`.

A header, the week and the book in a context line, the figures at a glance (bands and their
change, at-risk ARR, renewals, alerts acknowledged, overdue tasks, CSM-vs-data calls), then
one section per list: band changes, the largest declines with what moved them, renewals of
the next 90 days (at risk first), CSM-vs-data calls, overdue tasks and the CSM scoreboard.

Slack's limits hold whatever the book: names and texts are shortened, each list shows a few
lines and then "…and N more", and when the whole message is still too long (Slack has
refused messages near 13k characters of blocks) the lists are shown shorter until it fits.
The SDK validates every block; a plain `text` fallback always goes along.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from notifications.digest_facts import BandMove, Decline, DigestFacts, Money, Renewal
from notifications.messages import (
    HEADER_MAX,
    SECTION_MAX,
    SYMBOLS,
    ZERO_DECIMAL,
    SlackMessage,
    escape,
    shorten,
    validated,
)
from scoring.team import BookFigures

__all__ = ["BAND_EMOJI", "build_digest_message", "compact_money", "digest_headline"]

BAND_EMOJI = {
    "green": ":large_green_circle:",
    "yellow": ":large_yellow_circle:",
    "red": ":red_circle:",
    "unscored": ":white_circle:",
}
NAME_MAX, TEXT_MAX = 60, 140
SECTION_ROOM = SECTION_MAX - 60  # leaves room for the "…and N more" line
MAX_DECLINES = 5


@dataclass(frozen=True)
class _Caps:
    """How many lines each list shows."""

    lines: int
    declines: int


CAPS = (_Caps(10, MAX_DECLINES), _Caps(6, MAX_DECLINES), _Caps(3, 3), _Caps(1, 1))


def compact_money(amounts: Sequence[Money]) -> str:
    """`$1.2M`, `€350k` or `$1.2M + €80k`; `$0` when there is nothing."""
    if not amounts:
        return "$0"
    return " + ".join(_compact(m) for m in amounts)


def _compact(money: Money) -> str:
    code = money.currency.upper()
    value = money.minor if code in ZERO_DECIMAL else money.minor / 100
    if abs(value) >= 1_000_000:
        amount = f"{value / 1_000_000:.1f}M"
    elif abs(value) >= 1_000:
        amount = f"{value / 1_000:.0f}k"
    else:
        amount = f"{value:.0f}"
    symbol = SYMBOLS.get(code)
    return f"{symbol}{amount}" if symbol else f"{amount} {code}"


def _day(value: date) -> str:
    return f"{value:%b} {value.day}"


def _name(text: str) -> str:
    return escape(shorten(text, NAME_MAX))


def _who(csm: str | None) -> str:
    return f" ({_name(csm)})" if csm else ""


def digest_headline(facts: DigestFacts) -> str:
    """ "Weekly health digest for Enterprise, week ending 2026-11-22"."""
    return f"Weekly health digest for {facts.team.name}, week ending {facts.week_ending}"


def _fallback(facts: DigestFacts) -> str:
    bands = facts.bands
    parts = [
        f"{bands.green} green, {bands.yellow} yellow, {bands.red} red",
        f"at-risk ARR {compact_money(facts.at_risk_arr)}",
        f"{len(facts.renewals)} renewals in the next 90 days",
    ]
    if facts.declines:
        worst = facts.declines[0]
        parts.append(f"largest decline {worst.name} ({worst.change:+.1f})")
    return shorten(f"{digest_headline(facts)}: " + "; ".join(parts), 3000)


def _bands_field(facts: DigestFacts) -> str:
    now, before = facts.bands, facts.bands_before
    shown = ["green", "yellow", "red"] + (["unscored"] if now.unscored else [])
    cells = []
    for band in shown:
        change = now.of(band) - before.of(band)
        cells.append(f"{BAND_EMOJI[band]} {now.of(band)}" + (f" ({change:+d})" if change else ""))
    return "*Bands now* (change in the week)\n" + "  ".join(cells)


def _glance(facts: DigestFacts) -> SectionBlock:
    total = sum(m.minor for m in facts.arr)
    risky = sum(m.minor for m in facts.at_risk_arr)
    share = f", {risky / total:.0%} of ARR" if total and len(facts.arr) == 1 else ""
    acks = facts.alerts
    at_risk_renewals = sum(r.band != "green" for r in facts.renewals)
    fields = [
        _bands_field(facts),
        f"*At-risk ARR*\n{compact_money(facts.at_risk_arr)} in {facts.at_risk_accounts} "
        f"yellow and red accounts{share}",
        f"*Renewals, next 90 days*\n{len(facts.renewals)}, {at_risk_renewals} not green",
        "*Alerts acknowledged*\n"
        + (f"{acks.acknowledged} of {acks.sent} sent in the week" if acks.sent else "No alerts"),
        f"*Overdue playbook tasks*\n{len(facts.overdue_tasks)}",
        f"*CSM call vs data*\n{len(facts.disagreements)} accounts two bands apart",
    ]
    return SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields])


def _state(state: str | None, *, before: bool) -> str:
    if state is None:
        return "new" if before else "gone"
    return BAND_EMOJI.get(state, state)


def _moves(moves: Sequence[BandMove]) -> str:
    if not moves:
        return "*Band changes*\nNo account changed band in the week."
    parts = [
        f"{_state(m.before, before=True)} → {_state(m.after, before=False)} {m.accounts}"
        for m in moves
    ]
    return "*Band changes*\n" + "   ".join(parts)


def _section(title: str, lines: Sequence[str], cap: int, more: int = 0) -> SectionBlock:
    """A titled list of at most `cap` lines that fits a section, then "…and N more"."""
    text = f"*{title}*"
    shown = 0
    for line in lines[:cap]:
        if len(text) + 1 + len(line) > SECTION_ROOM:
            break
        text += "\n" + line
        shown += 1
    hidden = len(lines) - shown + more
    if hidden > 0:
        text += f"\n…and {hidden} more"
    return SectionBlock(text=MarkdownTextObject(text=shorten(text, SECTION_MAX)))


def _move_text(decline: Decline) -> str:
    parts = []
    for move in decline.moves:
        label = move.measure.replace("_", " ")
        label = f"cap {label}" if move.component == "caps" else label
        parts.append(f"{label} {move.points:+.1f}")
    return ", ".join(parts)


def _decline_line(d: Decline) -> str:
    bands = f"{BAND_EMOJI.get(d.previous_band or '', '')} → {BAND_EMOJI.get(d.band, d.band)}"
    line = (
        f"• *{_name(d.name)}*{_who(d.csm)} {d.previous_score:.0f} → {d.score:.0f} "
        f"({d.change:+.0f}) {bands}"
    )
    if d.moves:
        line += f" · {escape(_move_text(d))}"
    if d.drivers:
        line += f"\n      _{escape(shorten(d.drivers[0], TEXT_MAX))}_"
    return line


def _renewal_line(r: Renewal) -> str:
    health = (
        f"{BAND_EMOJI.get(r.band or '', '')} {r.score:.0f}" if r.score is not None else "unscored"
    )
    return f"• {_day(r.renewal_date)} · *{_name(r.name)}*{_who(r.csm)} {_compact(r.arr)} · {health}"


def _csm_line(name: str, f: BookFigures) -> str:
    health = "-" if f.health is None else f"{f.health:.0f}"
    if f.health_change is not None:
        health += f" ({f.health_change:+.1f})"
    parts = [
        f"{f.logos} accounts",
        f"health {health}",
        f"{f.bands.red} red, {f.bands.yellow} yellow",
    ]
    if f.renewals_due:
        parts.append(f"renewals {f.renewals_won} won, {f.renewals_lost} lost of {f.renewals_due}")
    if f.alerts_received:
        parts.append(f"alerts {f.alerts_acknowledged}/{f.alerts_received} acked")
    if f.tasks_due:
        parts.append(f"tasks {f.tasks_on_time}/{f.tasks_due} on time")
    return f"• *{_name(name)}*: " + ", ".join(parts)


def _lists(facts: DigestFacts, caps: _Caps) -> list[Block]:
    declines = [_decline_line(d) for d in facts.declines[: caps.declines]]
    hidden = max(facts.declines_total, len(facts.declines)) - len(declines)
    renewals = sorted(facts.renewals, key=lambda r: (r.band == "green", r.renewal_date))
    blocks: list[Block] = [
        _section(
            "Largest score declines",
            declines or ["No score fell in the week."],
            len(declines) or 1,
            hidden,
        ),
        _section(
            "Renewals in the next 90 days (not green first)",
            [_renewal_line(r) for r in renewals] or ["No renewal in the next 90 days."],
            caps.lines,
        ),
    ]
    if facts.disagreements:
        lines = [
            f"• *{_name(d.name)}*{_who(d.csm)}: {escape(shorten(d.text, TEXT_MAX))}"
            for d in facts.disagreements
        ]
        blocks.append(_section("CSM call vs data", lines, caps.lines))
    if facts.overdue_tasks:
        lines = [
            f"• due {_day(t.due_on)} · {escape(shorten(t.title, TEXT_MAX))}"
            + (f" — {_name(t.account)}" if t.account else "")
            + _who(t.assignee)
            for t in facts.overdue_tasks
        ]
        blocks.append(_section("Overdue playbook tasks", lines, caps.lines))
    blocks.append(_scoreboard(facts, caps))
    return blocks


def _scoreboard(facts: DigestFacts, caps: _Caps) -> SectionBlock:
    board = facts.scoreboard
    if board is None:
        note = escape(shorten(facts.scoreboard_note or "no team report", TEXT_MAX))
        return SectionBlock(text=MarkdownTextObject(text=f"*CSM scoreboard*\n_None: {note}_"))
    lines = [_csm_line(c.name, c.figures) for c in board.csms]
    return _section(
        f"CSM scoreboard, {board.period.label}", lines or ["No CSM has a book."], caps.lines
    )


def _blocks(facts: DigestFacts, caps: _Caps, chart: bool) -> list[Block]:
    week = f"{_day(facts.week_start)} to {_day(facts.week_ending)}, {facts.week_ending.year}"
    context = f"Week of {week} · {facts.accounts} accounts · health as of the end of the week"
    weeks = len(facts.history)
    closing = f"Health bands over the last {weeks} weeks in the chart below." if chart else ""
    blocks: list[Block] = [
        HeaderBlock(
            text=PlainTextObject(
                text=shorten(f"Weekly health digest: {facts.team.name}", HEADER_MAX)
            )
        ),
        ContextBlock(elements=[MarkdownTextObject(text=escape(context))]),
        _glance(facts),
        SectionBlock(text=MarkdownTextObject(text=_moves(facts.moves))),
        DividerBlock(),
        *_lists(facts, caps),
    ]
    if facts.money_note:
        note = f":warning: {escape(shorten(facts.money_note, TEXT_MAX * 2))}"
        blocks.insert(3, ContextBlock(elements=[MarkdownTextObject(text=note)]))
    if closing:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=closing)]))
    return blocks


def build_digest_message(facts: DigestFacts, *, chart: bool = True) -> SlackMessage:
    """The digest within Slack's limits: lists shortened until the message fits.

    `chart` says a chart follows (a closing line mentions it).
    """
    problem: ValueError | None = None
    for caps in CAPS:
        try:
            return validated(_fallback(facts), _blocks(facts, caps, chart))
        except ValueError as exc:  # too long with these caps: try shorter lists
            problem = exc
    assert problem is not None
    raise problem
