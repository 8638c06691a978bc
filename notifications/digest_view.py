"""The weekly digest on a terminal (`health-agent digest --preview`): Rich tables.

Shows the same facts as the Slack message, without its length limits: the figures at a
glance, the band distribution against last week, band changes, the largest declines with
what moved them, renewals, CSM-vs-data calls, overdue tasks and the CSM scoreboard.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from notifications.digest_facts import BandMove, Decline, DigestFacts
from notifications.digest_message import compact_money
from scoring.team import BookFigures

__all__ = ["print_digest"]

BAND_STYLE = {"green": "green", "yellow": "yellow", "red": "bold red", "unscored": "dim"}


def _band(band: str | None) -> str:
    if band is None:
        return "-"
    return f"[{BAND_STYLE.get(band, '')}]{escape(band)}[/]" if band in BAND_STYLE else escape(band)


def _table(
    console: Console, title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]
) -> None:
    """A compact table; cells are Rich markup (escape data before)."""
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _glance(console: Console, facts: DigestFacts) -> None:
    before, now = facts.bands_before, facts.bands
    rows = [
        [_band(b), str(before.of(b)), str(now.of(b)), f"{now.of(b) - before.of(b):+d}"]
        for b in ("green", "yellow", "red", "unscored")
    ]
    _table(console, "Bands (customers)", ["Band", "Last week", "Now", "Change"], rows)
    acks = facts.alerts
    acked = f"{acks.acknowledged} of {acks.sent}" if acks.sent else "no alerts"
    console.print(
        f"At-risk ARR {compact_money(facts.at_risk_arr)} in {facts.at_risk_accounts} yellow "
        f"and red accounts (ARR {compact_money(facts.arr)}); alerts acknowledged: {acked}; "
        f"overdue playbook tasks: {len(facts.overdue_tasks)}",
        highlight=False,
    )
    console.print("Band changes: " + _moves(facts.moves), highlight=False)
    if facts.money_note:
        console.print(f"[yellow]{escape(facts.money_note)}[/]", highlight=False)


def _moves(moves: Sequence[BandMove]) -> str:
    if not moves:
        return "none"
    return ", ".join(
        f"{_band(m.before) if m.before else 'new'} -> {_band(m.after) if m.after else 'gone'} "
        f"{m.accounts}"
        for m in moves
    )


def _why(decline: Decline) -> str:
    moved = ", ".join(f"{m.measure} {m.points:+.1f}" for m in decline.moves)
    texts = "; ".join(decline.drivers[:1])
    return escape(" | ".join(part for part in (moved, texts) if part))


def _declines(console: Console, facts: DigestFacts) -> None:
    rows = [
        [
            escape(d.name),
            escape(d.csm or ""),
            f"{d.previous_score:.0f} -> {d.score:.0f}",
            f"{d.change:+.1f}",
            f"{_band(d.previous_band)} -> {_band(d.band)}",
            _why(d),
        ]
        for d in facts.declines
    ]
    title = f"Largest score declines ({facts.declines_total} fell in the week)"
    _table(console, title, ["Account", "CSM", "Score", "Change", "Band", "What moved"], rows)


def _renewals(console: Console, facts: DigestFacts) -> None:
    rows = [
        [
            r.renewal_date.isoformat(),
            escape(r.name),
            escape(r.csm or ""),
            compact_money([r.arr]),
            "-" if r.score is None else f"{r.score:.0f}",
            _band(r.band or "unscored"),
        ]
        for r in facts.renewals
    ]
    title = f"Renewals in the next 90 days ({len(rows)})"
    _table(console, title, ["Renewal", "Account", "CSM", "ARR", "Score", "Band"], rows)


def _figures(name: str, f: BookFigures) -> list[str]:
    health = "-" if f.health is None else f"{f.health:.0f}"
    change = "" if f.health_change is None else f" ({f.health_change:+.1f})"
    return [
        escape(name),
        str(f.logos),
        f"{health}{change}",
        f"{f.bands.red}/{f.bands.yellow}/{f.bands.green}",
        f"{f.renewals_won}/{f.renewals_lost}/{f.renewals_due}",
        f"{f.alerts_acknowledged}/{f.alerts_received}",
        f"{f.tasks_on_time}/{f.tasks_due}",
    ]


def _scoreboard(console: Console, facts: DigestFacts) -> None:
    board = facts.scoreboard
    if board is None:
        console.print(f"CSM scoreboard: none ({escape(facts.scoreboard_note)})", highlight=False)
        return
    rows = [_figures(c.name, c.figures) for c in board.csms]
    rows.append([f"[bold]{cell}[/]" for cell in _figures("team", board.total)])
    columns = ["CSM", "Accounts", "Health", "R/Y/G", "Renewals W/L/due", "Alerts acked", "Tasks"]
    _table(console, f"CSM scoreboard, {board.period.label}", columns, rows)


def print_digest(console: Console, facts: DigestFacts, chart: Path | None = None) -> None:
    """The whole digest of one team, in the order of the Slack message."""
    team = facts.team
    to = ", ".join(
        part
        for part in (f"lead {team.lead_email}" if team.lead_email else "", team.channel or "")
        if part
    )
    console.rule(
        f"Weekly digest: {escape(team.name)}, week {facts.week_start} to {facts.week_ending}"
        f" ({facts.accounts} accounts; to {escape(to) or 'nobody: no lead or channel set'})"
    )
    _glance(console, facts)
    _declines(console, facts)
    _renewals(console, facts)
    if facts.disagreements:
        rows = [[escape(d.name), escape(d.csm or ""), escape(d.text)] for d in facts.disagreements]
        _table(console, "CSM call vs data", ["Account", "CSM", "Signal"], rows)
    if facts.overdue_tasks:
        rows = [
            [
                t.due_on.isoformat(),
                escape(t.title),
                escape(t.account or ""),
                escape(t.assignee or ""),
            ]
            for t in facts.overdue_tasks
        ]
        _table(console, "Overdue playbook tasks", ["Due", "Task", "Account", "Assignee"], rows)
    _scoreboard(console, facts)
    if chart is not None:
        console.print(f"Chart of the last {len(facts.history)} weeks: {chart}", highlight=False)
