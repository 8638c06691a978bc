"""How the CLI shows things: Rich tables and progress bars on a terminal, plain lines elsewhere.

Nothing here reads the store or talks to a vendor; the commands in `cli.py` hand over the
data and this module decides how it looks. Every string that may carry a configured secret
goes through `scrub` before it is printed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = [
    "BAND_STYLE",
    "ProgressLines",
    "print_json",
    "progress",
    "render_table",
    "scrub",
]

BAND_STYLE = {"green": "green", "yellow": "yellow", "red": "bold red"}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value replaced by asterisks."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "****")
    return text


def print_json(console: Console, data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colour, no wrapping."""
    console.file.write(json.dumps(data, indent=2, default=str) + "\n")


def render_table(
    console: Console,
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    styles: Mapping[int, str] | None = None,
) -> None:
    """A Rich table; cells that are band names get their band colour."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for index, column in enumerate(columns):
        numeric = (styles or {}).get(index) == "number"
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        cells = []
        for value in row:
            text = "" if value is None else str(value)
            style = BAND_STYLE.get(text)
            cells.append(f"[{style}]{text}[/]" if style else text.replace("[", "\\["))
        table.add_row(*cells)
    console.print(table)


def panel(console: Console, title: str, body: str) -> None:
    console.print(Panel(body, title=title, title_align="left", expand=False))


class ProgressLines:
    """Progress for long work: a Rich bar on a terminal, a plain line per step otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()  # sources report from their own threads

    def __enter__(self) -> ProgressLines:
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description:<28}"),
                BarColumn(),
                TextColumn("{task.completed:>6} records"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, label: str, records: int, *, done: bool = False) -> None:
        """Report that `label` has handled `records` so far; `done` closes it."""
        with self._lock:
            self._update(label, records, done=done)

    def _update(self, label: str, records: int, *, done: bool) -> None:
        if self._progress is None:
            if done:
                self.console.print(f"{label}: {records} records", highlight=False)
            return
        if label not in self._tasks:
            self._tasks[label] = self._progress.add_task(label, total=None)
        task = self._tasks[label]
        self._progress.update(task, completed=records)
        if done:
            self._progress.update(task, total=max(records, 1), completed=max(records, 1))
            self._progress.update(task, completed=records)


@contextmanager
def progress(console: Console) -> Iterator[ProgressLines]:
    with ProgressLines(console) as lines:
        yield lines
