"""A team report on the terminal: one Rich table, a row per CSM under its team's name.

Money is shown in thousands or millions of the report's currency, rates as percentages,
undefined figures as "-"; a line under the table names the currencies left out for want of
an exchange rate. The JSON form is the report's dataclasses as they are.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from scoring.team.results import UNOWNED, BookFigures, TeamReport
from store.money import missing_rates_note

__all__ = ["COLUMNS", "print_team_report"]

COLUMNS = (
    "CSM",
    "Logos",
    "ARR",
    "Health\n(change)",
    "Bands\nR/Y/G",
    "GRR",
    "NRR",
    "Churned\nARR",
    "Expanded\nARR",
    "Renewals\nW/L/due",
    "Alerts\nacked",
    "Hours\nto ack",
    "Tasks\non time",
    "Fresh\nsentiment",
    "TTV\ndays",
)


def _money(minor: int) -> str:
    units = minor / 100
    if abs(units) >= 1_000_000:
        return f"{units / 1_000_000:.2f}M"
    if abs(units) >= 1_000:
        return f"{units / 1_000:.1f}k"
    return f"{units:.0f}"


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def _health(f: BookFigures) -> str:
    if f.health is None:
        return "-"
    change = "" if f.health_change is None else f" {f.health_change:+.1f}"
    return f"{f.health:.0f}{change}"


def _cells(label: str, f: BookFigures) -> list[str]:
    return [
        label,
        str(f.logos),
        _money(f.arr_minor),
        _health(f),
        f"{f.bands.red}/{f.bands.yellow}/{f.bands.green}",
        _number(f.grr, ".0%"),
        _number(f.nrr, ".0%"),
        _money(f.churned_arr_minor),
        _money(f.expanded_arr_minor),
        f"{f.renewals_won}/{f.renewals_lost}/{f.renewals_due}",
        f"{f.alerts_acknowledged}/{f.alerts_received}",
        _number(f.median_hours_to_acknowledge, ".1f"),
        f"{f.tasks_on_time}/{f.tasks_due}",
        _number(f.sentiment_freshness, ".0%"),
        _number(f.time_to_value_days, ".0f"),
    ]


def print_team_report(console: Console, report: TeamReport) -> None:
    """One row per CSM under its team's name, each team's total, and the total of all."""
    period = report.period
    table = Table(
        title=f"Team performance {period.label} ({period.start} to {period.end}), "
        f"money in {report.currency}",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
        show_edge=False,
    )
    table.add_column(COLUMNS[0], min_width=16)
    for name in COLUMNS[1:]:
        table.add_column(name, justify="right", no_wrap=True)
    for team in report.teams:
        if team.name == UNOWNED:
            table.add_row(*_cells(UNOWNED, team.total), end_section=True)
            continue
        table.add_row(f"[bold]{escape(team.name)}[/]")
        for csm in team.csms:
            table.add_row(*map(escape, _cells(f"  {csm.name}", csm.figures)))
        table.add_row(*_cells("  total", team.total), style="bold", end_section=True)
    table.add_row(*map(escape, _cells("All", report.total)), style="bold")
    console.print(table)
    if report.missing_rates:
        note = missing_rates_note(report.missing_rates, report.currency)
        console.print(f"[yellow]{escape(note)}[/]", highlight=False, soft_wrap=True)
